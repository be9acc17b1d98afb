"""End to end through the real server process and real worker subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import BIN, Pool

TRAP = ("import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), "
        "sys.exit(0)))\n"
        "print('started', flush=True)\n"
        "time.sleep(120)\n")


def test_submit_run_logs_exit_code(pool: Pool) -> None:
    out = pool.cli("submit", "-p", "vision", "--gpus", "1", "--json", "--", "sh", "-c",
                   "echo hello gpu=$CUDA_VISIBLE_DEVICES rank=$RANK/$WORLD_SIZE; echo oops >&2")
    job = json.loads(out.stdout)
    assert job["state"] == "queued"
    assert pool.wait(job["id"], {"succeeded", "failed"}) == "succeeded"
    logs = pool.cli("logs", job["id"]).stdout
    assert "hello gpu=" in logs and "rank=0/1" in logs and "oops" in logs
    detail = json.loads(pool.cli("job", job["id"], "--json").stdout)
    assert detail["exit_code"] == 0 and detail["placement"][0]["phase"] == "exited"
    kinds = [e.kind for e in pool.client.events(job["id"])]
    assert kinds == ["submitted", "admitted", "starting", "running", "finished"]

    failing = pool.client.submit(project="vision", command=["sh", "-c", "exit 3"], gpus=1)
    assert pool.wait(failing.id, {"succeeded", "failed"}) == "failed"
    assert pool.client.job(failing.id).exit_code == 3


def test_follow_logs_streams_until_the_job_ends(pool: Pool) -> None:
    job = pool.client.submit(project="vision", command=[
        sys.executable, "-c",
        "import time\nfor i in range(3):\n print('tick', i, flush=True); time.sleep(0.3)"])
    out = pool.cli("logs", "-f", job.id)
    assert [line for line in out.stdout.splitlines() if line.startswith("tick")] == [
        "tick 0", "tick 1", "tick 2"]


def test_cancel_sends_sigterm_and_records_the_state(pool: Pool) -> None:
    job = pool.client.submit(project="vision", command=[sys.executable, "-c", TRAP], gpus=1)
    pool.wait(job.id, {"running"})
    pool.until(lambda: "started" in pool.client.logs(job.id), what="worker output")
    pool.cli("cancel", job.id)
    assert pool.wait(job.id, {"cancelled"}) == "cancelled"
    assert "got SIGTERM" in pool.client.logs(job.id)
    again = pool.cli("cancel", job.id, check=False)
    assert again.returncode != 0 and "already finished" in again.stderr


def test_idempotent_resubmit(pool: Pool) -> None:
    body = {"project": "vision", "command": ["true"], "client_key": "nightly-42"}
    first = httpx.post(pool.url + "/api/v1/jobs", json=body, headers=pool.auth)
    second = httpx.post(pool.url + "/api/v1/jobs", json=body, headers=pool.auth)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    other = httpx.post(pool.url + "/api/v1/jobs", json={**body, "command": ["false"]},
                       headers=pool.auth)
    assert other.status_code == 409
    assert "already used" in other.json()["error"]
    pool.wait(first.json()["id"], {"succeeded"})


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(pool: Pool) -> None:
    before = len(pool.client.jobs(limit=10_000))
    url = pool.url + "/api/v1/jobs"
    ok = {"project": "vision", "command": ["true"]}
    cases = [
        ({**ok, "gpus": -1}, 422, "gpus"),
        ({**ok, "gpus": 65}, 422, "gpus"),
        ({**ok, "gpus": 8}, 422, "largest node"),
        ({**ok, "gpu_fraction": 1.5}, 422, "gpu_fraction"),
        ({**ok, "gpus": 1, "gpu_fraction": 0.5}, 422, "not several"),
        ({**ok, "workers": 0}, 422, "workers"),
        ({**ok, "project": "nope"}, 404, "project nope does not exist"),
        ({**ok, "colour": "red"}, 422, "unknown field"),
        ({**ok, "command": []}, 422, "command"),
        ({**ok, "command": ["x" * 70_000]}, 422, "command"),
        ({**ok, "command": ["a"] * 2000}, 422, "command"),
        ({**ok, "priority": "urgent"}, 422, "known classes"),
        ({**ok, "env": {"1BAD": "x"}}, 422, "not valid"),
    ]
    for body, status, words in cases:
        resp = httpx.post(url, json=body, headers=pool.auth)
        assert resp.status_code == status, (body, resp.text)
        assert words in resp.json()["error"], (body, resp.json())
    bad_json = httpx.post(url, content=b'{"project": "vision", ', headers={
        "content-type": "application/json", **pool.auth})
    assert bad_json.status_code == 422 and "not valid JSON" in bad_json.json()["error"]
    hostile = [  # values JSON can carry but a job must not: each a 422, never a 500
        '{"project": "vision", "command": ["true"], "cpus": NaN}',
        '{"project": "vision", "command": ["true"], "gpus": Infinity}',
        '{"project": "vision", "command": ["\\ud800"]}',
        '{"project": "vision", "command": ["true"], "name": "a\\u0000b"}',
        '{"project": "vision", "command": ["true"], "env": {"\\ud800": "x"}}',
    ]
    for body in hostile:
        resp = httpx.post(url, content=body.encode(), headers={
            "content-type": "application/json", **pool.auth})
        assert resp.status_code == 422, (body, resp.text)
        assert resp.json()["error"]
    assert httpx.get(pool.url + "/api/v1/jobs/zzz", headers=pool.auth).status_code == 422
    assert httpx.get(pool.url + "/api/v1/jobs/0123456789ab", headers=pool.auth).status_code == 404
    assert len(pool.client.jobs(limit=10_000)) == before

    cli = pool.cli("submit", "-p", "nope", "--", "true", check=False)
    assert cli.returncode != 0
    assert cli.stderr.strip().startswith("error: project nope does not exist")
    assert len(cli.stderr.strip().splitlines()) == 1
    neg = pool.cli("submit", "-p", "vision", "--gpus", "-2", "--", "true", check=False)
    assert neg.returncode != 0 and "gpus" in neg.stderr and "Traceback" not in neg.stderr


def test_read_commands_have_json(pool: Pool) -> None:
    queues = json.loads(pool.cli("queues", "--json").stdout)
    assert {q["name"] for q in queues} >= {"research", "vision", "nlp"}
    nodes = json.loads(pool.cli("nodes", "--json").stdout)
    assert nodes[0]["simulated"] and len(nodes[0]["devices"]) == 4
    assert "simulated" in pool.cli("nodes").stdout
    assert isinstance(json.loads(pool.cli("jobs", "--json").stdout), list)
    docs = httpx.get(pool.url + "/openapi.json").json()
    assert "/api/v1/jobs" in docs["paths"]


def test_workers_start_where_the_job_was_submitted(pool: Pool, tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("import os\nprint('cwd', os.getcwd())\n")
    out = subprocess.run([str(BIN), "submit", "-p", "vision", "--json", "--", sys.executable,
                          "hello.py"], cwd=tmp_path, env=pool.env, capture_output=True,
                         text=True, timeout=60, check=True)
    job = json.loads(out.stdout)
    assert job["workdir"] == str(tmp_path.resolve())
    assert pool.wait(job["id"], {"succeeded", "failed"}) == "succeeded"
    assert f"cwd {tmp_path.resolve()}" in pool.client.logs(job["id"])
    gone = pool.client.submit(project="vision", command=["true"], workdir="/nonexistent/dir")
    assert pool.wait(gone.id, {"succeeded", "failed"}) == "failed"
    assert "/nonexistent/dir" in pool.client.logs(gone.id)
