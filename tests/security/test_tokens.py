"""API tokens: wrong, expired, revoked and malformed tokens are refused (401, audited), and the
database holds only salted hashes of them."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import time

import httpx

from fairpool.client import Client, FairpoolError
from tests.e2e.conftest import BIN
from tests.security.conftest import Org


def _status(org: Org, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}".strip()}
    return httpx.get(org.pool.url + "/api/v1/whoami", headers=headers, timeout=30)


def test_bad_tokens_get_401_with_a_reason(org: Org) -> None:
    good = org.tokens["rita"]
    token_id = good.split("_")[1]
    cases = {
        "no token": None,
        "blank": " ",
        "malformed": "fp_nothex_short",
        "not a fairpool token": "eyJhbGciOi.not.a.jwt",
        "unknown id": "fp_000000000000_" + "A" * 43,
        "wrong secret for a real id": f"fp_{token_id}_" + "B" * 43,
        "truncated": good[:-1],
        "with trailing junk": good + "x",
    }
    for what, token in cases.items():
        resp = _status(org, token)
        assert resp.status_code == 401, (what, resp.text)
        assert resp.json()["error"], what
        assert resp.headers["www-authenticate"].startswith("Bearer"), what
    other_schemes = httpx.get(org.pool.url + "/api/v1/whoami", timeout=30,
                              headers={"Authorization": f"Basic {good}"})
    assert other_schemes.status_code == 401
    assert _status(org, good).json()["user"] == "rita"
    assert httpx.get(org.pool.url + "/health").status_code == 200  # the one open endpoint


def test_expired_and_revoked_tokens_stop_working(org: Org) -> None:
    admin = org.pool.client
    short = admin.create_token("rita", expires_in_s=1.5, description="short-lived")
    assert _status(org, short.token).status_code == 200
    deadline = time.time() + 30
    while time.time() < deadline and _status(org, short.token).status_code == 200:
        time.sleep(0.2)
    expired = _status(org, short.token)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]

    made = admin.create_token("rita", description="to revoke")
    assert _status(org, made.token).status_code == 200  # now cached as valid
    with org.client("rita") as rita:
        rita.revoke_token(made.id)  # owners may revoke their own tokens
        try:
            rita.revoke_token(made.id)
            raise AssertionError("a second revoke must fail")
        except FairpoolError as exc:
            assert exc.status == 409
    revoked = _status(org, made.token)  # at once, despite the cache
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    listed = {t.id: t for t in org.client("rita").tokens()}
    assert listed[made.id].revoked_at is not None

    failures = admin.audit(action="login", outcome="denied", limit=1000)
    details = " | ".join(a.detail for a in failures)
    assert f"expired token {short.id}" in details and f"revoked token {made.id}" in details
    assert "unknown token 000000000000" in details


def test_only_salted_hashes_are_stored(org: Org) -> None:
    db = org.pool.data_dir / "fairpool.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, user, salt, hash FROM api_tokens").fetchall()
        columns = [r[1] for r in conn.execute("PRAGMA table_info(api_tokens)")]
        everything = json.dumps(conn.execute("SELECT * FROM api_tokens").fetchall())
    assert "token" not in columns and "secret" not in columns
    by_id = {r[0]: r for r in rows}
    salts = set()
    for user, token in org.tokens.items():
        _, token_id, secret = token.split("_", 2)
        assert secret not in everything and token not in everything, user
        _, owner, salt, digest = by_id[token_id]
        assert owner == user
        assert digest == hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()
        salts.add(salt)
    assert len(salts) == len(org.tokens)  # every hash has its own salt
    raw = b"".join(p.read_bytes() for p in org.pool.data_dir.glob("fairpool.db*"))
    for token in org.tokens.values():
        assert token.split("_", 2)[2].encode() not in raw


def test_login_keeps_the_token_in_a_private_file(org: Org, tmp_path: object) -> None:
    from pathlib import Path

    home = Path(str(tmp_path))
    env = {k: v for k, v in org.pool.env.items() if k not in ("FAIRPOOL_URL", "FAIRPOOL_TOKEN")}
    env["XDG_CONFIG_HOME"] = str(home / "cfg")
    out = subprocess.run([str(BIN), "login", "--url", org.pool.url, "--token",
                          org.tokens["vic"]], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    config = home / "cfg" / "fairpool" / "client.json"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert json.loads(config.read_text())["token"] == org.tokens["vic"]
    who = subprocess.run([str(BIN), "whoami"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert who.returncode == 0 and "vic" in who.stdout and "viewer@p1" in who.stdout
    bad = subprocess.run([str(BIN), "login", "--url", org.pool.url, "--token", "fp_bad"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "malformed" in bad.stderr and "Traceback" not in bad.stderr
    assert json.loads(config.read_text())["token"] == org.tokens["vic"]  # unchanged


def test_cli_token_create_prints_the_token_once(org: Org) -> None:
    made = org.pool.cli("token", "create", "--user", "tess", "--expires-days", "1")
    token = made.stdout.strip()
    assert token.startswith("fp_") and "not shown again" in made.stderr
    with Client(org.pool.url, token=token) as tess:
        assert tess.whoami().user == "tess" and tess.queues() == []
    listed = org.pool.cli("token", "list").stdout
    assert token.split("_")[1] in listed and token.split("_", 2)[2] not in listed
    denied = subprocess.run([str(BIN), "token", "create", "--user", "someone-else"],
                            env={**org.pool.env, "FAIRPOOL_TOKEN": token}, capture_output=True,
                            text=True, timeout=60)
    assert denied.returncode != 0 and "only for itself" in denied.stderr


def test_recover_admin_with_database_access(org: Org) -> None:
    out = subprocess.run([str(BIN), "recover-admin", "--data-dir", str(org.pool.data_dir)],
                         env=org.pool.env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    with Client(org.pool.url, token=token) as admin:
        assert admin.whoami().user == "admin" and any(
            b["role"] == "admin" for b in admin.whoami().bindings)
    audit = org.pool.client.audit(actor="fairpool recover-admin", limit=10)
    assert any("break-glass" in a.detail for a in audit)
    bad = subprocess.run([str(BIN), "recover-admin", "--db", "mysql://x"], env=org.pool.env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
