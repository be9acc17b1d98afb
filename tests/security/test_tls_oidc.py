"""TLS (`fairpool up --tls-cert --tls-key`, certificates verified by default) and OIDC bearer
tokens validated against an issuer's published keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fairpool.client import Client, FairpoolError
from tests.e2e.conftest import BIN, Pool, start_pool, stop_pool


def test_tls_serves_https_and_clients_verify(tmp_path: Path) -> None:
    made = subprocess.run([str(BIN), "tls", "self-signed", "--out", str(tmp_path / "tls")],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert key.stat().st_mode & 0o077 == 0
    pool = start_pool(tmp_path, "--simulate-gpus", "1", "--tls-cert", str(cert), "--tls-key",
                      str(key), tls_cert=cert)
    try:
        assert pool.url.startswith("https://")
        assert pool.client.whoami().user == "admin"
        # no CA given: the self-signed certificate is refused, with a hint
        with (Client(pool.url, token=pool.token, ca="") as untrusting,
              pytest.raises(FairpoolError, match="does not trust")):
            untrusting.whoami()
        # plain HTTP to the TLS port gets nothing
        with pytest.raises(httpx.HTTPError):
            httpx.get(pool.url.replace("https://", "http://") + "/health", timeout=5)
        # `fairpool up` told the local CLI which certificate to trust
        config = json.loads((tmp_path / "config" / "fairpool" / "client.json").read_text())
        assert config["url"].startswith("https://localhost:") and config["ca"] == str(cert)
        env = {k: v for k, v in pool.env.items() if k != "FAIRPOOL_URL"}
        out = subprocess.run([str(BIN), "whoami"], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and "admin" in out.stdout, out.stderr
    finally:
        stop_pool(pool)


def test_tls_needs_both_files(tmp_path: Path) -> None:
    out = subprocess.run([str(BIN), "up", "--data-dir", str(tmp_path), "--tls-cert",
                          str(tmp_path / "c.pem")], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--tls-key" in out.stderr and "Traceback" not in out.stderr


# -- OIDC -------------------------------------------------------------------------------------
class Issuer:
    """A tiny identity provider: a discovery document and a JWKS, served over HTTP."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid="k1", use="sig", alg="RS256")
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks.json"}
                elif self.path == "/jwks.json":
                    body = {"keys": [jwk]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, key: Any = None, alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.url, "aud": "fairpool", "sub": "erin", "groups": ["ml"],
                "iat": now, "exp": now + 300, **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key or self.key,
                          algorithm=alg, headers={"kid": "k1"})


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pool, Issuer]]:
    issuer = Issuer()
    tmp = tmp_path_factory.mktemp("oidc")
    pool = start_pool(tmp, "--simulate-gpus", "1", env_extra={
        "FAIRPOOL_OIDC_ISSUER": issuer.url, "FAIRPOOL_OIDC_AUDIENCE": "fairpool"})
    try:
        yield pool, issuer
    finally:
        stop_pool(pool)
        issuer.server.shutdown()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _who(pool: Pool, token: str) -> httpx.Response:
    return httpx.get(pool.url + "/api/v1/whoami", timeout=30,
                     headers={"Authorization": f"Bearer {token}"})


def test_oidc_tokens_and_group_roles(sso: tuple[Pool, Issuer]) -> None:
    pool, issuer = sso
    admin = pool.client
    from fairpool.schemas.queues import ProjectCreate, QueueCreate

    admin.create_department(QueueCreate(name="ml"))
    admin.create_project(ProjectCreate(name="llm", department="ml"))
    admin.grant("group:ml", "researcher", "llm")
    me = _who(pool, issuer.token())
    assert me.status_code == 200, me.text
    assert me.json()["user"] == "oidc:erin" and me.json()["via"] == "oidc"
    assert me.json()["bindings"] == [{"role": "researcher", "scope": "llm"}]
    with Client(pool.url, token=issuer.token()) as erin:
        job = erin.submit(project="llm", command=["true"])
        assert job.submitted_by == "oidc:erin"
        assert [q.name for q in erin.queues()] == ["llm"]
    # someone outside the group authenticates but sees nothing
    outsider = httpx.get(pool.url + "/api/v1/queues", timeout=30, headers={
        "Authorization": f"Bearer {issuer.token(sub='olga', groups=[])}"})
    assert outsider.status_code == 200 and outsider.json() == []


def test_oidc_names_never_become_local_users_or_groups(sso: tuple[Pool, Issuer]) -> None:
    """Issue 16, finding 9: a ``sub`` of ``admin`` was the local admin, one of ``group:x`` had
    group x's roles. The provider's users are ``oidc:NAME`` now; roles given to them, and to
    their groups, still apply."""
    pool, issuer = sso
    admin = pool.client
    from fairpool.schemas.queues import ProjectCreate, QueueCreate

    admin.create_department(QueueCreate(name="sec"))
    admin.create_project(ProjectCreate(name="vault", department="sec"))
    admin.grant("group:vault-team", "researcher", "vault")
    submit = {"project": "vault", "command": ["true"]}
    for sub in ("admin", "group:vault-team"):  # the attack: take a local name
        token = issuer.token(sub=sub, groups=[])
        me = _who(pool, token)
        assert me.status_code == 200, me.text
        assert me.json()["user"] == f"oidc:{sub}" and me.json()["bindings"] == [], me.text
        headers = {"Authorization": f"Bearer {token}"}
        audit = httpx.get(pool.url + "/api/v1/audit", headers=headers, timeout=30)
        assert audit.status_code in (403, 404), audit.text  # admins only
        job = httpx.post(pool.url + "/api/v1/jobs", json=submit, headers=headers, timeout=30)
        assert job.status_code == 404, job.text  # vault is not visible to it
    # the legitimate uses: a member of the group, and a user bound by its oidc: name
    member = issuer.token(sub="gina", groups=["vault-team"])
    assert _who(pool, member).json()["bindings"] == [{"role": "researcher", "scope": "vault"}]
    admin.grant("oidc:frank", "researcher", "vault")
    frank = issuer.token(sub="frank", groups=[])
    with Client(pool.url, token=frank) as client:
        assert client.submit(project="vault", command=["true"]).submitted_by == "oidc:frank"
        minted = client.create_token("oidc:frank", 3600)  # a token for itself
    with Client(pool.url, token=minted.token) as client:
        assert client.whoami().user == "oidc:frank"
        assert [q.name for q in client.queues()] == ["vault"]
    # the local admin is untouched
    assert admin.whoami().user == "admin"


def test_oidc_refuses_bad_tokens(sso: tuple[Pool, Issuer]) -> None:
    pool, issuer = sso
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": issuer.url, "aud": "fairpool", "sub": "erin", "exp": now + 300}
    cases = {
        "expired": issuer.token(exp=now - 120, iat=now - 600),
        "wrong audience": issuer.token(aud="someone-else"),
        "wrong issuer": issuer.token(iss="https://evil.example"),
        "no expiry": issuer.token(exp=None),
        "signed by another key": issuer.token(key=stranger),
        "alg none": jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"}),
        # the classic key-confusion attack: HMAC keyed with the issuer's public key
        "HS256 with the public key as secret": _hs256(claims, public_pem),
        "no subject": issuer.token(sub=None),
        "garbage": "a.b.c",
    }
    for what, token in cases.items():
        resp = _who(pool, token)
        assert resp.status_code == 401, (what, resp.text)
        assert resp.json()["error"], what
    denied = pool.client.audit(action="login", outcome="denied", limit=100)
    assert any("expired" in a.detail.lower() for a in denied)
