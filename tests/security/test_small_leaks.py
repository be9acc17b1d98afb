"""The smaller leaks of issue 16, finding 9, on the security tests' real server (``org``); the
OIDC one (an identity provider's ``sub`` of ``admin``) is in test_tls_oidc.py.

(a) environment variable names with a trailing newline were accepted (``re.match`` and ``$``);
(b) names and labels could hold bidirectional-override and zero-width characters that disguise
what is shown; (d) ``POST /ui/login`` signed a browser in from a form on another site; (e) the
403 of ``/metrics`` named researcher, a role that cannot be granted on ``*``. Each test also
checks that the legitimate use still works.
"""

from __future__ import annotations

import sys

import pytest

from tests.security.conftest import Org

PRINT_ENV = [sys.executable, "-c", "import os; print(os.environ['RUN_MODE'])"]


def test_env_names_with_a_trailing_newline_are_refused(org: Org) -> None:
    with org.http("rita") as http:
        for bad in ("RUN_MODE\n", "A\n", "OK\r\n"):
            resp = http.post("/api/v1/jobs", json={"project": "p1", "command": ["true"],
                                                    "env": {bad: "1"}})
            assert resp.status_code == 422, resp.text
            assert "environment variable name" in resp.json()["error"], resp.text
        good = http.post("/api/v1/jobs", json={"project": "p1", "command": PRINT_ENV,
                                                "env": {"RUN_MODE": "fast"}})
        assert good.status_code == 201, good.text
    job_id = good.json()["id"]
    assert org.pool.wait(job_id, {"succeeded", "failed"}, timeout=30) == "succeeded"
    assert org.pool.client.logs(job_id).strip() == "fast"


@pytest.mark.parametrize(("field", "value", "char", "position"), [
    ("name", "train\u202egnp.sh", "U+202E", 5),       # right-to-left override
    ("name", "a\u2066b", "U+2066", 1),                 # left-to-right isolate
    ("name", "\ufeffjob", "U+FEFF", 0),                # byte order mark
    ("name", "ev\u200bil", "U+200B", 2),               # zero-width space
    ("name", "x\u061c", "U+061C", 1),                  # Arabic letter mark
    ("label value", "team\u200f", "U+200F", 4),        # right-to-left mark
    ("label name", "k\u202a", "U+202A", 1),            # left-to-right embedding
    ("name", "soft\u00adhyphen", "U+00AD", 4),          # soft hyphen
    ("name", "a\u3164b", "U+3164", 1),                  # Hangul filler
    ("name", "tag\U000e0041", "U+E0041", 3),            # a tag character
])
def test_disguising_characters_in_names_are_refused(org: Org, field: str, value: str,
                                                    char: str, position: int) -> None:
    body: dict[str, object] = {"project": "p1", "command": ["true"]}
    if field == "name":
        body["name"] = value
    elif field == "label value":
        body["labels"] = {"team": value}
    else:
        body["labels"] = {value: "v"}
    with org.http("rita") as http:
        before = len(org.pool.client.jobs(project="p1", limit=10_000))
        resp = http.post("/api/v1/jobs", json=body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert char in error and f"at position {position}" in error, error
    assert len(org.pool.client.jobs(project="p1", limit=10_000)) == before


def test_names_in_any_script_are_still_accepted(org: Org) -> None:
    name = "модель-训练 שלום e\u0301 🚀"
    with org.http("rita") as http:
        resp = http.post("/api/v1/jobs", json={"project": "p1", "command": ["true"],
                                                "name": name, "labels": {"équipe": "ναι"}})
        assert resp.status_code == 201, resp.text
        bad = http.post("/api/v1/tokens", json={"user": "rita", "expires_in_s": 3600,
                                                 "description": "ci \u202etoken"})
        assert bad.status_code == 422 and "U+202E" in bad.json()["error"], bad.text
        good = http.post("/api/v1/tokens", json={"user": "rita", "expires_in_s": 3600,
                                                  "description": "ci token – nightly"})
        assert good.status_code == 201, good.text
    assert org.pool.client.job(resp.json()["id"]).name == name


def test_a_login_form_posted_from_another_site_is_refused(org: Org) -> None:
    own = org.pool.url  # http://127.0.0.1:PORT
    form = {"token": org.tokens["rita"], "next": "/ui/jobs"}
    with org.http(None) as http:
        for headers in ({"Origin": "https://evil.example"},
                        {"Origin": "null"},
                        {"Origin": own.replace("127.0.0.1", "localhost")},
                        {"Referer": "https://evil.example/login-csrf.html"}):
            resp = http.post("/ui/login", data=form, headers=headers, follow_redirects=False)
            assert resp.status_code == 403, (headers, resp.text[:300])
            assert "set-cookie" not in resp.headers, headers
            assert "Sign-in refused" in resp.text and "sign in there" in resp.text
        # the dashboard's own form (its Origin, or a Referer of its login page), and a client
        # that sends neither, sign in
        for headers in ({"Origin": own}, {"Referer": f"{own}/ui/login"}, {}):
            resp = http.post("/ui/login", data=form, headers=headers, follow_redirects=False)
            assert resp.status_code == 303, (headers, resp.text[:300])
            assert resp.headers["location"] == "/ui/jobs"
            assert "httponly" in resp.headers["set-cookie"].lower()
        # a proxy in front: the browser's name for the server is in X-Forwarded-Host
        resp = http.post("/ui/login", data=form, follow_redirects=False, headers={
            "Origin": "https://pool.example.com", "X-Forwarded-Host": "pool.example.com"})
        assert resp.status_code == 303, resp.text[:300]


def test_the_metrics_refusal_names_a_role_that_can_be_granted(org: Org) -> None:
    with org.http("rita") as http:
        resp = http.get("/metrics")
    assert resp.status_code == 403, resp.text
    error = resp.json()["error"]
    assert "researcher" not in error, error
    assert "viewer" in error and "admin" in error and "(*)" in error, error
    # doing what it says works
    org.pool.client.grant("prometheus", "viewer", "*")
    token = org.pool.client.create_token("prometheus").token
    org.tokens["prometheus"] = token
    with org.http("prometheus") as http:
        scraped = http.get("/metrics")
    assert scraped.status_code == 200 and "fairpool_queue_quota_gpus" in scraped.text
