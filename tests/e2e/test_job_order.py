"""The order of a project's waiting jobs through a real server: chosen at create
(``--order``), changed with ``fairpool project set-order`` and over REST, back to the pool's
default (``fairpool up --job-order``), refused with a one-line reason when bad, and obeyed by
the control loop: with one GPU busy, a train job and then a build job wait; in the priority
order the build job starts first, in the fifo order the train job does (it is not preemptible:
priority decides who may preempt whom in every order)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Pool, start_pool, stop_pool

PY = sys.executable
HOLD = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"


@pytest.fixture
def one_gpu(tmp_path: Path) -> Iterator[Pool]:
    pool = start_pool(tmp_path, "--simulate-gpus", "1", "--job-order", "fifo")
    try:
        pool.cli("department", "create", "lab", "--quota-gpus", "1")
        pool.cli("project", "create", "a", "-d", "lab", "--quota-gpus", "1", "--order",
                 "attained")
        yield pool
    finally:
        stop_pool(pool)


def order_of(pool: Pool, name: str) -> str | None:
    found = [q for q in json.loads(pool.cli("project", "list", "--json").stdout)
             if q["name"] == name]
    return found[0]["job_order"]  # type: ignore[no-any-return]


def refused(pool: Pool, *args: str) -> str:
    out = pool.cli(*args, check=False)
    assert out.returncode != 0 and len(out.stderr.splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


def test_the_order_is_set_shown_and_refused_when_bad(one_gpu: Pool) -> None:
    pool = one_gpu
    assert order_of(pool, "a") == "attained"
    table = pool.cli("project", "list").stdout
    assert "attained" in next(ln for ln in table.splitlines() if " a " in f" {ln} ")
    assert pool.cli("project", "set-order", "a", "fifo").stdout.strip() == \
        "a: waiting jobs in fifo order"
    assert order_of(pool, "a") == "fifo"
    assert "pool's default" in pool.cli("project", "set-order", "a", "default").stdout
    assert order_of(pool, "a") is None
    assert "default" in pool.cli("project", "list").stdout
    assert "'fifo', 'priority', 'attained' or 'default'" in refused(
        pool, "project", "set-order", "a", "lifo")
    assert "set per project" in refused(pool, "project", "set-order", "lab", "fifo")
    assert "does not exist" in refused(pool, "project", "set-order", "nope", "fifo")
    bad = pool.cli("project", "create", "b", "-d", "lab", "--order", "lifo", check=False)
    assert bad.returncode == 2 and "lifo" in bad.stderr  # a usage error, from the CLI itself
    # REST: 4xx with what to fix, and the audit trail says what changed
    with httpx.Client(base_url=pool.url, headers=pool.auth) as http:
        r = http.patch("/api/v1/queues/a", json={"job_order": "lifo"})
        assert r.status_code == 422 and "job_order" in r.text and "fifo" in r.text
        r = http.post("/api/v1/projects", json={"name": "c", "department": "lab",
                                                 "job_order": "random"})
        assert r.status_code == 422, r.text
        r = http.patch("/api/v1/queues/a", json={"job_order": "priority"})
        assert r.status_code == 200 and r.json()["job_order"] == "priority"


def test_up_refuses_an_unknown_default_order(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.conftest import BIN

    out = subprocess.run([str(BIN), "up", "--job-order", "lifo", "--data-dir",
                          str(tmp_path / "pool")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "lifo" in out.stderr and "Traceback" not in out.stderr


def first_to_start(pool: Pool, tmp_path: Path, order: str) -> str:
    """Hold the GPU, queue a train job then a build job in project a, release the GPU: which
    of the two started first."""
    pool.cli("project", "set-order", "a", order)
    go = tmp_path / f"go-{order}"
    holder = pool.client.submit(project="a", gpus=1, priority="build",
                                command=[PY, "-c", HOLD, str(go)])
    pool.wait(holder.id, {"running"})
    # (not preemptible: priority still decides who may preempt whom in every order)
    train = pool.client.submit(project="a", gpus=1, priority="train", preemptible=False,
                               command=["true"])
    build = pool.client.submit(project="a", gpus=1, priority="build", command=["true"])
    pool.until(lambda: all(pool.client.job(j.id).reason for j in (train, build)),
               what="both waiting with a reason")
    go.touch()
    for j in (train, build):
        pool.wait(j.id, {"succeeded"})
    started = {name: pool.client.job(j.id).started_at or 0.0
               for name, j in (("train", train), ("build", build))}
    return min(started, key=lambda k: started[k])


def test_the_loop_obeys_the_projects_order(one_gpu: Pool, tmp_path: Path) -> None:
    assert first_to_start(one_gpu, tmp_path, "priority") == "build"
    assert first_to_start(one_gpu, tmp_path, "fifo") == "train"
    assert first_to_start(one_gpu, tmp_path, "default") == "train"  # the pool's: fifo
