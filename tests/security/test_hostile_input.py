"""Hostile input against a real ``fairpool up`` process: oversized and deeply nested bodies,
unicode and control characters, path traversal in log requests, shell metacharacters in
commands, the per-user submit rate limit, the per-project cap on waiting jobs, resource requests
no node can hold, and the CLI with a bad token.

Every refusal must be a clear 4xx with a JSON body ``{"error": "<what to fix>"}`` (never a 5xx,
never a traceback, never a control character echoed back into someone's terminal) and must
change nothing: the jobs, the queues and the successful actions in the audit log are compared
before and after. Most cases use the security tests' ``org`` server (4 simulated GPUs); the
limits use a second server, ``tight``, with small limits (1 GPU, 4 KiB bodies, bursts of 3
submits, 2 waiting jobs per project).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import BIN, Pool, start_pool, stop_pool
from tests.security.conftest import LONG, Org, build_org

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FINAL = {"succeeded", "failed", "cancelled"}
MAX_BODY = 4096
#: low enough that a 4th submit right after a burst of 3 is refused however slow the machine
SUBMIT_RATE = 0.1
SUBMIT_BURST = 3
MAX_PENDING = 2


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    """A second pool with small limits; its org is built as the ``org`` fixture's."""
    pool = start_pool(tmp_path_factory.mktemp("tight"), "--simulate-gpus", "1", env_extra={
        "FAIRPOOL_MAX_BODY_BYTES": str(MAX_BODY), "FAIRPOOL_SUBMIT_RATE": str(SUBMIT_RATE),
        "FAIRPOOL_SUBMIT_BURST": str(SUBMIT_BURST),
        "FAIRPOOL_MAX_PENDING_PER_PROJECT": str(MAX_PENDING)})
    try:
        yield build_org(pool)
    finally:
        stop_pool(pool)


# -- helpers -----------------------------------------------------------------------------------
def refused(resp: httpx.Response, *statuses: int) -> str:
    """The response is one of ``statuses`` with a one-message JSON error; returns the message."""
    where = f"{resp.request.method} {resp.request.url}"
    assert resp.status_code in statuses, f"{where}: {resp.status_code} {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("application/json"), where
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (where, body)
    message: str = body["error"]
    assert message.strip(), where
    assert "Traceback" not in resp.text and "internal error" not in message, (where, message)
    assert not CONTROL.search(message), f"{where}: the error echoes control characters"
    return message


def state(pool: Pool) -> tuple[Any, ...]:
    """What a refused request must not change (job states move on by themselves: left out)."""
    admin = pool.client
    jobs = sorted((j.id, j.project, j.name, tuple(j.command), j.submitted_by)
                  for j in admin.jobs(limit=10_000))
    queues = sorted((q.name, q.kind, q.parent, q.quota, q.limit, q.over_quota_weight, q.priority)
                    for q in admin.queues())
    done = [(a.id, a.actor, a.action, a.target) for a in admin.audit(outcome="ok", limit=10_000)]
    return jobs, repr(queues), done


@contextlib.contextmanager
def unchanged(pool: Pool) -> Iterator[None]:
    before = state(pool)
    yield
    assert state(pool) == before, "a refused request changed the pool"


def healthy(pool: Pool) -> None:
    """The server still answers, and nothing reached its catch-all error handler."""
    assert httpx.get(pool.url + "/health", timeout=30).status_code == 200
    log = (pool.data_dir.parent / "server.log").read_text(errors="replace")
    assert "Traceback" not in log and "unexpected error" not in log, log[-3000:]


def post_raw(http: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return http.post(path, content=body, headers={"content-type": "application/json"})


def submit_json(project: str = "p1", **fields: Any) -> dict[str, Any]:
    return {"project": project, "command": [sys.executable, "-c", "pass"], **fields}


# -- 1. body size --------------------------------------------------------------------------------
def test_oversized_bodies_get_413_declared_or_chunked(tight: Org) -> None:
    big = json.dumps(submit_json(name="x", labels={"pad": "x" * (2 * MAX_BODY)})).encode()

    def chunks(total: int) -> Iterator[bytes]:
        yield b'{"project": "p1", "command": ["true"], "name": "'
        for _ in range(total // 512):
            yield b"x" * 512
        yield b'"}'

    with unchanged(tight.pool), tight.http("admin") as http:
        message = refused(post_raw(http, "/api/v1/jobs", big), 413)
        assert str(MAX_BODY) in message and "send less" in message
        # before authentication too: an anonymous caller cannot make the server buffer it
        with tight.http(None) as anonymous:
            refused(post_raw(anonymous, "/api/v1/jobs", big), 413)

        request = http.build_request("POST", "/api/v1/jobs", content=chunks(4 * MAX_BODY),
                                     headers={"content-type": "application/json"})
        assert "content-length" not in request.headers  # really streamed, in chunks
        assert request.headers["transfer-encoding"] == "chunked"
        message = refused(http.send(request), 413)
        assert str(MAX_BODY) in message
        refused(http.post("/api/v1/departments", content=chunks(4 * MAX_BODY),
                          headers={"content-type": "application/json"}), 413)
        # a chunked body under the limit is read as usual (here: refused for its content)
        small = http.build_request("POST", "/api/v1/jobs", content=chunks(MAX_BODY // 2),
                                   headers={"content-type": "application/json"})
        assert "name: " in refused(http.send(small), 422)
    healthy(tight.pool)


# -- 2. nesting ----------------------------------------------------------------------------------
def test_deeply_nested_json_is_refused_and_the_server_stays_up(org: Org) -> None:
    depth = 100_000
    bodies = [b"[" * depth, b'{"a":' * depth, b"[" * depth + b"]" * depth,
              b'{"project": "p1", "command": ["true"], "labels": ' + b'{"a": ' * depth]
    with unchanged(org.pool), org.http("rita") as http:
        for body in bodies:
            message = refused(post_raw(http, "/api/v1/jobs", body), 400, 413, 422)
            assert "JSON" in message
        # around the depth where the parser gives up: well-formed bodies, deep in one field
        # (a recursive check of the parsed body once made these a 500)
        for levels in (*range(900, 1000, 4), 1500, 3000):
            nested = b'{"a": ' * levels + b"1" + b"}" * levels
            body = b'{"project": "p1", "command": ["true"], "labels": ' + nested + b"}"
            message = refused(post_raw(http, "/api/v1/jobs", body), 400, 422)
            assert "labels" in message or "JSON" in message, message
    healthy(org.pool)


# -- 3. unicode and control characters -----------------------------------------------------------
def test_unicode_in_names_and_arguments_round_trips_exactly(org: Org) -> None:
    # right-to-left script, combining marks and emoji; bidirectional controls are refused in
    # names (tests/security/test_small_leaks.py) but kept in arguments
    name = "🚀 训练 שלום e\u0301 Ω evil"
    argv = [sys.executable, "-c", "pass", "🚀", "مرحبا", "e\u0301", "\u202eRTL", "\u200d",
            "tab\there", "two\nlines", "\U0001f9d1\u200d\U0001f52c"]
    with org.http("rita") as http:
        resp = http.post("/api/v1/jobs", json=submit_json(name=name, command=argv))
        assert resp.status_code == 201, resp.text
        job_id = resp.json()["id"]
        # the same text sent as ASCII JSON, with surrogate pairs for the emoji
        ascii_body = json.dumps(submit_json(name=name, command=argv), ensure_ascii=True)
        assert "\\ud83d\\ude80" in ascii_body
        again = post_raw(http, "/api/v1/jobs", ascii_body.encode())
        assert again.status_code == 201, again.text
    for jid in (job_id, again.json()["id"]):
        job = org.pool.client.job(jid)
        assert job.name == name and job.command == argv
    with org.client("rita") as rita:
        listed = {j.id: j for j in rita.jobs(project="p1")}
    assert listed[job_id].name == name and listed[job_id].command == argv
    healthy(org.pool)


@pytest.mark.parametrize(("what", "body"), [
    ("NUL in the name", json.dumps(submit_json(name="a\x00b")).encode()),
    ("NUL in an argument", json.dumps(submit_json(command=["true", "a\x00b"])).encode()),
    ("NUL in a label", json.dumps(submit_json(labels={"k": "v\x00"})).encode()),
    ("NUL in an environment value", json.dumps(submit_json(env={"K": "\x00"})).encode()),
    ("lone high surrogate in the name",
     b'{"project": "p1", "command": ["true"], "name": "a\\ud800"}'),
    ("lone low surrogate in an argument",
     b'{"project": "p1", "command": ["true", "\\udfff"]}'),
    ("lone surrogate in a label name",
     b'{"project": "p1", "command": ["true"], "labels": {"\\udc00": "v"}}'),
    ("reversed surrogate pair", b'{"project": "p1", "command": ["true", "\\ude80\\ud83d"]}'),
])
def test_nul_and_lone_surrogates_are_rejected(org: Org, what: str, body: bytes) -> None:
    with unchanged(org.pool), org.http("rita") as http:
        message = refused(post_raw(http, "/api/v1/jobs", body), 422)
    assert "NUL" in message or "Unicode" in message or "string" in message, (what, message)


def test_control_characters_in_queue_and_project_names_are_rejected(org: Org) -> None:
    bad = ["d\x1b[31m", "p\x07", "p1\n", "p1\r", "\x1bp1", "p1\x9b"]
    with unchanged(org.pool), org.http("admin") as http:
        for name in bad:
            for path, body in (("/api/v1/departments", {"name": name}),
                               ("/api/v1/projects", {"name": name, "department": "d1"}),
                               ("/api/v1/projects", {"name": "fine", "department": name}),
                               ("/api/v1/jobs", submit_json(project=name))):
                message = refused(http.post(path, json=body), 422)
                assert "pattern" in message or "name" in message, (path, name, message)
            raw = quote(name, safe="")
            refused(http.get(f"/api/v1/queues/{raw}"), 422)
            refused(http.patch(f"/api/v1/queues/{raw}", json={"priority": 1}), 422)
    healthy(org.pool)


@pytest.mark.parametrize(("field", "value"), [
    ("name", "\x1b[2J\x1b[H\x1b[31mred"),  # clear the screen, home, red
    ("name", "bell\x07"),
    ("name", "two\nlines"),
    ("name", "ret\rurn"),
    ("name", "tab\tname"),
    ("name", "del\x7f"),
    ("name", "c1 csi \x9b31m"),
    ("name", "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\"),  # a terminal hyperlink
    ("labels", {"team\x1b[8m": "a"}),
    ("labels", {"team": "a\nb"}),
    ("labels", {"team": "\x85"}),
])
def test_control_characters_in_job_names_and_labels_are_rejected(org: Org, field: str,
                                                                 value: object) -> None:
    with unchanged(org.pool), org.http("rita") as http:
        message = refused(http.post("/api/v1/jobs", json={**submit_json(), field: value}), 422)
    assert field.rstrip("s") in message and "control characters" in message, message


# -- 4. log requests -----------------------------------------------------------------------------
def test_log_requests_cannot_leave_the_logs(org: Org) -> None:
    with org.client("rita") as rita:
        job = rita.submit(project="p1", command=[sys.executable, "-c", "print('hello-log')"])
    with org.client("oscar") as oscar:
        theirs = oscar.submit(project="p2", command=[sys.executable, "-c", "print('secret')"])
    assert org.pool.wait(job.id, FINAL) == "succeeded"
    org.pool.wait(theirs.id, FINAL)
    data_dir = str(org.pool.data_dir)
    paths = [
        "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd/logs",
        "/api/v1/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd/logs",
        "/api/v1/jobs/..%252F..%252Fetc%252Fpasswd/logs",
        "/api/v1/jobs/..%5C..%5Cetc%5Cpasswd/logs",
        f"/api/v1/jobs/{job.id}%2F..%2F..%2F..%2Fetc%2Fpasswd/logs",
        f"/api/v1/jobs/{job.id}%00/logs",
        f"/api/v1/jobs/{job.id}%0A/logs",
        f"/api/v1/jobs/{job.id}/logs/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/api/v1/jobs/{job.id}.0.0.log/logs",
        "/api/v1/jobs/%2Fetc%2Fpasswd/logs",
        "/api/v1/jobs/000000000000/logs",
    ]
    queries = ["rank=-1", "rank=../x", "rank=..%2F..%2Fetc%2Fpasswd", "rank=1", "rank=4096",
               "rank=1e9", "rank=0x0", "attempt=-1", "attempt=1", "attempt=../../etc/passwd",
               "attempt=0%00", "rank=0&rank=../x", "follow=../x"]
    paths += [f"/api/v1/jobs/{job.id}/logs?{q}" for q in queries]
    with unchanged(org.pool), org.http("rita") as http:
        assert http.get(f"/api/v1/jobs/{job.id}/logs").text == "hello-log\n"  # the control
        for path in paths:
            resp = http.get(path)
            refused(resp, 404, 422)
            assert "root:" not in resp.text and data_dir not in resp.text, path
        # another project's job is as absent as one that never existed, logs and all
        for path in (f"/api/v1/jobs/{theirs.id}/logs", f"/api/v1/jobs/{theirs.id}/logs?follow=1",
                     f"/api/v1/jobs/{theirs.id}/logs?rank=-1"):
            resp = http.get(path)
            assert refused(resp, 404) == f"job {theirs.id} does not exist", path
            assert "secret" not in resp.text
    healthy(org.pool)


# -- 5. shell metacharacters ---------------------------------------------------------------------
def test_commands_run_as_argv_without_a_shell(org: Org, tmp_path: Path) -> None:
    out = tmp_path / "argv.txt"
    markers = [tmp_path / f"marker{i}" for i in range(6)]
    args = [f"$(touch {markers[0]})", f"`touch {markers[1]}`", f"; touch {markers[2]}",
            f"| touch {markers[3]}", f"&& touch {markers[4]}", f"\ntouch {markers[5]}\n",
            "; rm -rf /", "`id`", "|", "&&", "*", "'\"'", "$HOME", "${PATH}", "\\", "a b",
            "> /dev/null", "#", "~", "!!", "--", "-c"]
    code = "import sys; open(sys.argv[1], 'w').write(repr(sys.argv[2:]))"
    with org.http("rita") as http:
        resp = http.post("/api/v1/jobs",
                         json=submit_json(command=[sys.executable, "-c", code, str(out), *args]))
    assert resp.status_code == 201, resp.text
    assert org.pool.wait(resp.json()["id"], FINAL) == "succeeded"
    assert ast.literal_eval(out.read_text()) == args
    for marker in markers:
        assert not marker.exists(), f"{marker} was created: the command went through a shell"
    healthy(org.pool)


# -- 6. submit rate --------------------------------------------------------------------------------
def test_submit_rate_is_limited_per_user(tight: Org) -> None:
    admin = tight.pool.client
    admin.grant("rate-a", "researcher", "p1b")
    admin.grant("rate-b", "researcher", "p1b")
    first, second = (admin.create_token(user).token for user in ("rate-a", "rate-b"))
    # a job that cannot end by itself before the cancel below (a trivial one could, and the
    # cancel would then be refused as too late)
    body = submit_json(project="p1b", command=LONG)

    def submit(token: str) -> httpx.Response:
        resp = httpx.post(tight.pool.url + "/api/v1/jobs", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
        if resp.status_code == 201:  # out of the way of the cap on waiting jobs
            admin.cancel(resp.json()["id"])
        return resp

    for _ in range(SUBMIT_BURST):
        resp = submit(first)
        assert resp.status_code == 201, resp.text
    with unchanged(tight.pool):
        resp = submit(first)
        message = refused(resp, 429)
    assert "too many submit requests from rate-a" in message and "retry in" in message
    assert int(resp.headers["retry-after"]) >= 1
    # another user has its own bucket (and the project's is larger)
    assert submit(second).status_code == 201
    healthy(tight.pool)


# -- 7. waiting jobs per project -------------------------------------------------------------------
def test_waiting_jobs_per_project_are_capped(tight: Org) -> None:
    admin = tight.pool.client
    made: list[str] = []
    try:
        # the only GPU is taken (by a job that cannot be preempted), so GPU jobs must wait
        hog = admin.submit(project="p1", command=LONG, gpus=1, preemptible=False)
        made.append(hog.id)
        assert tight.pool.wait(hog.id, {"running"}) == "running"
        with tight.client("rita") as rita:
            for _ in range(MAX_PENDING):
                job = rita.submit(project="p1", command=["true"], gpus=1)
                made.append(job.id)
                assert job.state == "queued"
            with unchanged(tight.pool), tight.http("rita") as http:
                resp = http.post("/api/v1/jobs", json=submit_json(command=["true"], gpus=1))
                message = refused(resp, 429)
        assert "p1" in message and f"{MAX_PENDING} jobs waiting" in message
        assert "cancel" in message
        # another project is not affected
        with tight.client("oscar") as oscar:
            other = oscar.submit(project="p2", command=["true"], gpus=1)
            made.append(other.id)
        assert other.state == "queued"
    finally:
        for job_id in made:
            with contextlib.suppress(Exception):
                admin.cancel(job_id)
    healthy(tight.pool)


# -- 8. resource requests --------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "numbers"), [
    ({"gpus": 5}, ("5 GPUs", "has 4")),
    ({"gpus": 3, "workers": 2, "same_node": True}, ("6 GPUs", "has 4")),
    ({"gpus": 65}, ("64",)),
])
def test_requests_larger_than_any_node_are_rejected_with_the_numbers(
        org: Org, fields: dict[str, Any], numbers: tuple[str, ...]) -> None:
    with unchanged(org.pool), org.http("rita") as http:
        message = refused(http.post("/api/v1/jobs", json=submit_json(**fields)), 422)
    for number in numbers:
        assert number in message, message


# -- 9. the CLI ------------------------------------------------------------------------------------
@pytest.mark.parametrize("token", ["garbage", "fp_000000000000_" + "A" * 43, "tökén",
                                   "bad\x1b[2Jtoken", "garbage\nmore"])
def test_cli_with_a_bad_token_fails_in_one_line(org: Org, tmp_path: Path, token: str) -> None:
    with unchanged(org.pool):
        out = subprocess.run([str(BIN), "submit", "-p", "p1", "--", "true"],
                             env={**org.pool.env, "FAIRPOOL_TOKEN": token}, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert out.stdout == ""
    line = out.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line, out.stderr
    assert "Traceback" not in out.stderr and not CONTROL.search(line)
    assert "token" in line
    assert "is it running" not in line  # the server is; the token is what is wrong


def test_cli_refuses_a_job_name_with_terminal_escapes(org: Org, tmp_path: Path) -> None:
    with unchanged(org.pool):
        out = subprocess.run([str(BIN), "submit", "-p", "p1", "--name", "\x1b[2Jx", "--", "true"],
                             env=org.pool.env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
    assert out.returncode != 0
    line = out.stderr.strip()
    assert line.startswith("error: ") and "\n" not in line and "control characters" in line
    assert "Traceback" not in out.stderr and "\x1b" not in out.stderr
