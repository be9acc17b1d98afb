"""Idle-GPU policy and usage accounting on a real pool with simulated GPUs: workers report
their own utilisation through ``fairpool.report_utilization``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairpool.schemas.queues import IdlePolicySpec, ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import Pool, start_pool, stop_pool

REPORTER = ("import sys, time, fairpool\n"
            "util, seconds = float(sys.argv[1]), float(sys.argv[2])\n"
            "end = time.time() + seconds\n"
            "while time.time() < end:\n"
            "    fairpool.report_utilization(util)\n"
            "    time.sleep(0.1)\n")


def reporter(util: float, seconds: float = 600) -> list[str]:
    return [sys.executable, "-c", REPORTER, str(util), str(seconds)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    tmp: Path = tmp_path_factory.mktemp("idle")
    p = start_pool(tmp, "--simulate-gpus", "2", env_extra={"FAIRPOOL_SAMPLE_EVERY_S": "0.3"})
    try:
        yield p
    finally:
        stop_pool(p)


def _events(pool: Pool, job_id: str) -> str:
    return " | ".join(f"{e.kind}: {e.message}" for e in pool.client.events(job_id))


def test_idle_job_is_flagged_then_preempted_when_others_wait(pool: Pool) -> None:
    c = pool.client
    c.create_department(QueueCreate(name="lab", quota=ResourceSpec(gpus=2)))
    # sleepy's jobs are within its quota, so only the idle policy can free a GPU for eager
    c.create_project(ProjectCreate(name="sleepy", department="lab",
                                   quota=ResourceSpec(gpus=2),
                                   idle=IdlePolicySpec(action="preempt", threshold=0.2,
                                                       after_s=2)))
    c.create_project(ProjectCreate(name="eager", department="lab"))
    idle = c.submit(project="sleepy", command=reporter(0.0), gpus=1)
    busy = c.submit(project="sleepy", command=reporter(0.9), gpus=1)
    pool.wait(idle.id, {"running"})
    pool.wait(busy.id, {"running"})
    pool.until(lambda: c.job(idle.id).idle, timeout=30, what="the idle job flagged")
    flagged = c.job(idle.id)
    assert flagged.gpu_util == 0.0 and flagged.util_simulated and flagged.idle_since is not None
    assert "GPUs idle: utilisation below 20%" in _events(pool, idle.id)
    listing = pool.cli("jobs").stdout
    assert "IDLE" in listing and "sim" in listing
    # nothing waits: the flagged job keeps its GPU
    time.sleep(1.0)
    assert c.job(idle.id).state == "running" and c.job(idle.id).attempt == 0

    waiting = c.submit(project="eager", command=["true"], gpus=1)
    pool.wait(waiting.id, {"succeeded"}, timeout=60)
    after = c.job(idle.id)
    assert after.attempt == 1, _events(pool, idle.id)
    events = _events(pool, idle.id)
    assert "evicted: idle: GPUs idle" in events and "reclaim" not in events
    assert "preempted; requeued as attempt 1" in events
    # the busy one was never flagged nor touched
    busy_now = c.job(busy.id)
    assert busy_now.state == "running" and not busy_now.idle and busy_now.attempt == 0
    assert busy_now.gpu_util is not None and busy_now.gpu_util >= 0.85
    assert "idle" not in {e.kind for e in c.events(busy.id)}
    for job in (idle, busy):
        c.cancel(job.id)


def test_stop_policy_ends_an_idle_job(pool: Pool) -> None:
    c = pool.client
    c.create_project(ProjectCreate(name="strict", department="lab",
                                   idle=IdlePolicySpec(action="stop", threshold=0.1,
                                                       after_s=1, stop_after_s=2)))
    job = c.submit(project="strict", command=reporter(0.02), gpus=1)
    assert pool.wait(job.id, {"cancelled"}, timeout=60) == "cancelled"
    events = _events(pool, job.id)
    assert "stopped by the project's idle policy" in events and "GPUs idle" in events
    # notify only flags
    out = pool.cli("project", "set-idle", "strict", "--action", "notify", "--after", "1")
    assert "notify" in out.stdout
    flagged = c.submit(project="strict", command=reporter(0.0, 6), gpus=1)
    pool.until(lambda: c.job(flagged.id).idle, timeout=30, what="flagged")
    assert pool.wait(flagged.id, {"succeeded"}, timeout=60) == "succeeded"
    bad = pool.cli("project", "set-idle", "strict", "--action", "stop", check=False)
    assert bad.returncode != 0 and "stop-after" in bad.stderr


def test_usage_matches_a_hand_computed_scenario(pool: Pool) -> None:
    c = pool.client
    c.create_department(QueueCreate(name="acct"))
    c.create_project(ProjectCreate(name="ledger", department="acct"))
    c.create_project(ProjectCreate(name="books", department="acct"))
    t0 = time.time()
    two = c.submit(project="ledger", command=[sys.executable, "-c",
                                              "import time; time.sleep(3)"], gpus=2)
    pool.wait(two.id, {"succeeded"}, timeout=60)
    half = c.submit(project="books", command=reporter(0.5, 3), gpu_fraction=0.5)
    pool.wait(half.id, {"succeeded"}, timeout=60)
    t1 = time.time()

    expected: dict[str, float] = {}
    for job, gpus in ((two, 2.0), (half, 0.5)):
        done = c.job(job.id)
        assert done.started_at is not None and done.finished_at is not None
        expected[done.project] = gpus * (done.finished_at - done.started_at)
    rows = {r.key: r for r in c.usage(t0, t1, by="project")}
    assert set(rows) == {"ledger", "books"}
    for project, seconds in expected.items():
        got = rows[project].allocated_gpu_hours * 3600
        assert abs(got - seconds) <= 1.0, (project, got, seconds)
    assert rows["ledger"].measured_gpu_hours == 0  # it reported nothing
    books = rows["books"]
    assert 0 < books.measured_gpu_hours <= books.allocated_gpu_hours
    assert abs(books.used_gpu_hours - 0.5 * books.measured_gpu_hours) < 1e-6
    dept = c.usage(t0, t1, by="department")
    assert len(dept) == 1 and dept[0].key == "acct" and dept[0].jobs == 2
    assert abs(dept[0].allocated_gpu_hours * 3600 - sum(expected.values())) <= 1.0
    # a range that cuts the first job in half counts only its overlap
    mid = (c.job(two.id).started_at or 0) + 1.5
    cut = {r.key: r for r in c.usage(t0, mid, by="project")}
    assert abs(cut["ledger"].allocated_gpu_hours * 3600 - 3.0) <= 0.2
    by_job = {r.key for r in c.usage(t0, t1, by="job")}
    assert by_job == {two.id, half.id}

    csv = pool.cli("usage", "--from", str(t0), "--to", str(t1), "--csv").stdout.splitlines()
    assert csv[0].startswith("project,department,jobs,allocated_gpu_hours")
    parsed = {line.split(",")[0]: float(line.split(",")[3]) for line in csv[1:]}
    for project, row in rows.items():
        assert abs(parsed[project] - row.allocated_gpu_hours) < 1e-5
    table = pool.cli("usage", "--from", str(t0), "--to", str(t1), "--by", "department").stdout
    assert "acct" in table
    bad = pool.cli("usage", "--from", "yesterday", check=False)
    assert bad.returncode != 0 and "write a date" in bad.stderr
