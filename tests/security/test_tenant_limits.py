"""Issue 16, findings 2, 3 and 8, against a real ``fairpool up`` (SQLite, an OIDC issuer):
tokens buy no extra submits and are capped per user, self-created tokens cannot outlive the
server's maximum or the identity provider's login, disabled users are shut out, and a flood
of refused requests writes a bounded number of audit records that still count them all.

The server has small limits: bursts of 5 submits per user and 8 per project (refilling at
0.01/s, so a burst within a test never refills), and refusals recorded at 1/s per caller in
bursts of 5.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from fairpool.client import Client
from tests.e2e.conftest import BIN, Pool, start_pool, stop_pool
from tests.security.conftest import Org, build_org
from tests.security.test_tls_oidc import Issuer

USER_BURST = 5
PROJECT_BURST = 8
REFUSAL_BURST = 5
DAY = 86400.0
MAX_LIFETIME = 90 * DAY  # the defaults
OIDC_LIFETIME = DAY
SLACK = 60.0  # seconds between the server's clock reading and ours


@dataclass
class Sso:
    org: Org
    issuer: Issuer

    @property
    def pool(self) -> Pool:
        return self.org.pool


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sso]:
    issuer = Issuer()
    pool = start_pool(tmp_path_factory.mktemp("limits"), "--simulate-gpus", "4", env_extra={
        "FAIRPOOL_SUBMIT_RATE": "0.01", "FAIRPOOL_SUBMIT_BURST": str(USER_BURST),
        "FAIRPOOL_PROJECT_SUBMIT_RATE": "0.01",
        "FAIRPOOL_PROJECT_SUBMIT_BURST": str(PROJECT_BURST),
        "FAIRPOOL_AUDIT_REFUSALS_PER_S": "1", "FAIRPOOL_AUDIT_REFUSALS_BURST": str(REFUSAL_BURST),
        "FAIRPOOL_OIDC_ISSUER": issuer.url, "FAIRPOOL_OIDC_AUDIENCE": "fairpool"})
    try:
        yield Sso(build_org(pool), issuer)
    finally:
        stop_pool(pool)
        issuer.server.shutdown()


def _post(pool: Pool, token: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(pool.url + path, json=body, timeout=30,
                      headers={"Authorization": f"Bearer {token}"})


def _who(pool: Pool, token: str) -> httpx.Response:
    return httpx.get(pool.url + "/api/v1/whoami", timeout=30,
                     headers={"Authorization": f"Bearer {token}"})


def _mint(pool: Pool, token: str, user: str, expires_in_s: float | None = 3600
          ) -> httpx.Response:
    return _post(pool, token, "/api/v1/tokens", {"user": user, "expires_in_s": expires_in_s})


def _job(project: str) -> dict[str, object]:
    return {"project": project, "command": [sys.executable, "-c", "pass"]}


# -- finding 2: the submit limit is per user and per project, not per token --------------------
def test_many_tokens_share_one_users_submit_budget(sso: Sso) -> None:
    pool, tokens = sso.pool, sso.org.tokens
    rita = [tokens["rita"]] + [_mint(pool, tokens["rita"], "rita").json()["token"]
                               for _ in range(3)]
    accepted, refusals = 0, []
    for i in range(4 * USER_BURST):  # the attack: round-robin over four tokens of one user
        resp = _post(pool, rita[i % 4], "/api/v1/jobs", _job("p1"))
        if resp.status_code == 201:
            accepted += 1
        else:
            assert resp.status_code == 429, resp.text
            refusals.append(resp.json()["error"])
    assert accepted == USER_BURST, f"{accepted} submits accepted from four tokens of one user"
    assert "too many submit requests from rita" in refusals[0] and "per user" in refusals[0]
    # another user of another project is unaffected
    assert _post(pool, tokens["oscar"], "/api/v1/jobs", _job("p2")).status_code == 201
    # the project's bucket: rita took 5 of p1's 8, so dora (department admin of d1) gets 3
    # more into p1, then is refused for the project, not for herself
    dora = [_post(pool, tokens["dora"], "/api/v1/jobs", _job("p1")) for _ in range(4)]
    assert [r.status_code for r in dora] == [201, 201, 201, 429], [r.text for r in dora]
    assert "too many submit requests to project p1" in dora[-1].json()["error"]
    assert int(dora[-1].headers["retry-after"]) >= 1
    # and she still submits to another project with the rest of her own budget
    assert _post(pool, tokens["dora"], "/api/v1/jobs", _job("p1b")).status_code == 201


def test_live_tokens_per_user_are_capped(sso: Sso) -> None:
    pool, admin = sso.pool, sso.org.tokens["admin"]
    first = _mint(pool, admin, "tina").json()
    made = [first] + [_mint(pool, first["token"], "tina").json() for _ in range(19)]
    assert len({m["id"] for m in made}) == 20
    for attempt in (first["token"], admin):  # the 21st: by tina, and by an admin for her
        resp = _mint(pool, attempt, "tina")
        assert resp.status_code == 409, resp.text
        message = resp.json()["error"]
        assert "holds 20 live tokens" in message and "fairpool token revoke" in message
    # every token within the cap works, and revoking one frees a slot
    assert _who(pool, made[-1]["token"]).json()["user"] == "tina"
    gone = httpx.delete(f"{pool.url}/api/v1/tokens/{made[5]['id']}", timeout=30,
                        headers={"Authorization": f"Bearer {first['token']}"})
    assert gone.status_code == 200, gone.text
    again = _mint(pool, first["token"], "tina")
    assert again.status_code == 201, again.text
    assert _who(pool, again.json()["token"]).json()["user"] == "tina"


# -- finding 3: lifetimes ----------------------------------------------------------------------
def test_non_admin_tokens_live_at_most_the_maximum(sso: Sso) -> None:
    pool, tokens = sso.pool, sso.org.tokens
    vic = _mint(pool, tokens["admin"], "vic", 4 * 365 * DAY).json()["token"]  # by an admin
    for asked in (None, 4 * 365 * DAY):  # the attack: never, or four years
        now = time.time()
        resp = _mint(pool, vic, "vic", asked)
        assert resp.status_code == 201, resp.text
        expires = resp.json()["expires_at"]
        assert expires is not None and expires <= now + MAX_LIFETIME + SLACK, resp.text
        assert expires >= now + MAX_LIFETIME - SLACK
        assert _who(pool, resp.json()["token"]).json()["user"] == "vic"
    now = time.time()  # within the maximum: as asked
    hour = _mint(pool, vic, "vic", 3600).json()
    assert abs(hour["expires_at"] - (now + 3600)) < SLACK
    # and never past the token it was created with: an hour's token cannot buy 90 days
    longer = _mint(pool, hour["token"], "vic", None)
    assert longer.status_code == 201, longer.text
    assert longer.json()["expires_at"] <= hour["expires_at"] + 1e-3
    # the CLI shows the real expiry
    out = subprocess.run([str(BIN), "token", "create", "--user", "vic", "--no-expiry"],
                         env={**pool.env, "FAIRPOOL_TOKEN": vic}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "never expires" not in out.stderr, out.stderr
    assert time.strftime("%Y-%m-%d", time.localtime(time.time() + MAX_LIFETIME)) in out.stderr
    # admins may still create tokens that never expire (for a service account, say)
    forever = _mint(pool, tokens["admin"], "ci-bot", None)
    assert forever.status_code == 201 and forever.json()["expires_at"] is None


def test_tokens_from_an_oidc_login_do_not_outlive_it(sso: Sso) -> None:
    pool, issuer = sso.pool, sso.issuer
    now = time.time()
    long_login = issuer.token(sub="erin", exp=int(now + 2 * DAY))
    made = _mint(pool, long_login, "oidc:erin", None)  # the attack: a permanent token
    assert made.status_code == 201, made.text
    first = made.json()
    assert first["expires_at"] <= now + OIDC_LIFETIME + SLACK, first
    assert first["expires_at"] >= now + OIDC_LIFETIME - SLACK
    # a short login bounds it more: never past the JWT's own expiry
    short_exp = int(time.time() + 300)
    short = _mint(pool, issuer.token(sub="erin", exp=short_exp), "oidc:erin", 30 * DAY).json()
    assert short["expires_at"] <= short_exp + 1, short
    # nor can a token created from the login create a longer-lived one
    chained = _mint(pool, first["token"], "oidc:erin", None).json()
    assert chained["expires_at"] <= first["expires_at"] + 1, chained
    # the legitimate use: those tokens work as the OIDC user
    for token in (first["token"], short["token"], chained["token"]):
        assert _who(pool, token).json()["user"] == "oidc:erin"


# -- finding 3: disabling users ----------------------------------------------------------------
def test_disabling_a_user_revokes_its_tokens_and_refuses_new_ones(sso: Sso) -> None:
    pool, admin = sso.pool, sso.org.tokens["admin"]
    by_admin = _mint(pool, admin, "dave").json()["token"]
    own = _mint(pool, by_admin, "dave").json()["token"]
    assert _who(pool, own).status_code == 200 and _who(pool, by_admin).status_code == 200
    # only admins disable users
    denied = _post(pool, sso.org.tokens["dora"], "/api/v1/users/dave/disable", {})
    assert denied.status_code == 403, denied.text
    assert _who(pool, own).status_code == 200
    out = pool.cli("user", "disable", "dave")
    assert "user dave disabled; 2 tokens revoked" in out.stdout, out.stdout
    for token in (by_admin, own):  # at once, though both were verified moments ago
        resp = _who(pool, token)
        assert resp.status_code == 401 and "dave is disabled" in resp.json()["error"], resp.text
    refused = _mint(pool, admin, "dave")
    assert refused.status_code == 409 and "dave is disabled" in refused.json()["error"]
    again = _post(pool, admin, "/api/v1/users/dave/disable", {})
    assert again.status_code == 409 and "already disabled" in again.json()["error"]
    assert "dave" in pool.cli("user", "disabled").stdout
    bad = pool.cli("user", "disable", "admin", check=False)  # not oneself
    assert bad.returncode != 0 and "cannot disable itself" in bad.stderr
    assert "Traceback" not in bad.stderr
    # enabling lets dave in with new tokens; the old ones stay dead
    pool.cli("user", "enable", "dave")
    for token in (by_admin, own):
        assert _who(pool, token).status_code == 401
    fresh = _mint(pool, admin, "dave")
    assert fresh.status_code == 201 and _who(pool, fresh.json()["token"]).status_code == 200
    actions = {(a.action, a.target) for a in pool.client.audit(actor="admin", limit=200)}
    assert {("user.disable", "dave"), ("user.enable", "dave")} <= actions


def test_a_disabled_oidc_user_cannot_log_in(sso: Sso) -> None:
    pool, issuer = sso.pool, sso.issuer
    login = issuer.token(sub="fay")
    minted = _mint(pool, login, "oidc:fay", 600).json()["token"]
    assert _who(pool, login).status_code == 200 and _who(pool, minted).status_code == 200
    with Client(pool.url, token=pool.token) as admin:
        assert admin.disable_user("oidc:fay").tokens_revoked == 1
        resp = _who(pool, issuer.token(sub="fay"))  # a fresh login, too
        assert resp.status_code == 403 and "oidc:fay is disabled" in resp.json()["error"]
        assert _who(pool, minted).status_code == 401
        admin.enable_user("oidc:fay")
    assert _who(pool, issuer.token(sub="fay")).json()["user"] == "oidc:fay"
    assert _who(pool, minted).status_code == 401


# -- finding 8: a flood of refusals writes a bounded number of audit records -------------------
def test_refused_requests_are_recorded_at_a_bounded_rate(sso: Sso) -> None:
    pool, tokens = sso.pool, sso.org.tokens
    since = time.time() - 1
    flood = 500
    began = time.monotonic()
    with httpx.Client(base_url=pool.url, timeout=30,
                      headers={"Authorization": f"Bearer {tokens['nobody']}"}) as nobody:
        for _ in range(flood):  # the attack: admin-only reads, refused each time
            assert nobody.get("/api/v1/audit").status_code == 403
        elapsed = time.monotonic() - began
        # another caller's refusal is still recorded at once, and others' requests work
        vic = httpx.get(pool.url + "/api/v1/audit", timeout=30,
                        headers={"Authorization": f"Bearer {tokens['vic']}"})
        assert vic.status_code == 403
        assert _who(pool, tokens["rita"]).status_code == 200
        time.sleep(1.1)  # the bucket refills: the next refusal is recorded, with the count
        assert nobody.get("/api/v1/audit").status_code == 403
    rows = pool.client.audit(actor="nobody", outcome="denied", since=since, limit=10_000)
    assert len(rows) <= REFUSAL_BURST + elapsed + 2, f"{len(rows)} rows for {flood} refusals"
    left_out = [int(m.group(1)) for r in rows
                if (m := re.search(r"\((\d+) more refusals of nobody not recorded\)", r.detail))]
    assert left_out, [r.detail for r in rows]
    assert len(rows) + sum(left_out) == flood + 1  # every refusal is recorded or counted
    assert any(r.actor == "vic" for r in pool.client.audit(outcome="denied", since=since))
