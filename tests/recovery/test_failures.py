"""Failure paths, each with an event a person can read: a worker killed by a signal, a job past
its max runtime (that ignores SIGTERM), a gang with a crashing rank retried as a whole, and
retries exhausted with a doubling backoff."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import Pool, start_pool, stop_pool

# attempt 0 writes its pid and waits to be killed; later attempts succeed
KILL_ME = ("import os, sys, time\n"
           "if os.environ['FAIRPOOL_ATTEMPT'] == '0':\n"
           "    open(sys.argv[1], 'w').write(str(os.getpid()))\n"
           "    time.sleep(600)\n")
STUBBORN = ("import signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: print('ignoring SIGTERM', flush=True))\n"
            "time.sleep(600)\n")
# rank 1 crashes on attempt 0; every rank of every attempt leaves a marker
GANG = ("import os, sys, time\n"
        "rank, attempt = os.environ['RANK'], os.environ['FAIRPOOL_ATTEMPT']\n"
        "open(os.path.join(sys.argv[1], f'{attempt}.{rank}'), 'w').close()\n"
        "if rank == '1' and attempt == '0':\n"
        "    sys.exit(3)\n"
        "time.sleep(0.5 if attempt != '0' else 600)\n")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    tmp: Path = tmp_path_factory.mktemp("failures")
    p = start_pool(tmp, "--simulate-gpus", "4", env_extra={"FAIRPOOL_RETRY_BACKOFF_S": "0.5"})
    try:
        p.client.create_department(QueueCreate(name="ops", quota=ResourceSpec(gpus=4)))
        p.client.create_project(ProjectCreate(name="train", department="ops",
                                              quota=ResourceSpec(gpus=4)))
        yield p
    finally:
        stop_pool(p)


def events(pool: Pool, job_id: str) -> str:
    return "\n".join(f"{e.kind}: {e.message}" for e in pool.client.events(job_id))


def test_worker_killed_by_a_signal_is_retried(pool: Pool, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    job = pool.client.submit(project="train", gpus=1, max_retries=1,
                             command=[sys.executable, "-c", KILL_ME, str(pid_file)])
    pool.until(pid_file.exists, what="the worker's pid")
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    assert pool.wait(job.id, {"succeeded", "failed"}) == "succeeded"
    done = pool.client.job(job.id)
    assert done.attempt == 1 and done.retries == 1
    text = events(pool, job.id)
    assert "rank 0 killed by SIGKILL" in text and "retry 1 of 1" in text
    assert "attempt 0 failed with exit code -9" in text


def test_a_job_past_its_max_runtime_is_stopped_even_if_it_ignores_sigterm(pool: Pool) -> None:
    job = pool.client.submit(project="train", gpus=1, max_runtime_s=1.0,
                             command=[sys.executable, "-c", STUBBORN])
    assert pool.wait(job.id, {"failed", "succeeded"}, timeout=60) == "failed"
    text = events(pool, job.id)
    assert "ran longer than its max runtime (1 s)" in text
    assert "killed by SIGKILL after the stop grace period" in text
    assert "ignoring SIGTERM" in pool.client.logs(job.id)
    # the project's default applies to jobs that set none
    pool.cli("project", "set-max-runtime", "train", "1")
    default = pool.client.submit(project="train", command=[sys.executable, "-c", STUBBORN])
    assert pool.client.job(default.id).max_runtime_s == 1.0
    assert pool.wait(default.id, {"failed", "succeeded"}, timeout=60) == "failed"
    pool.cli("project", "set-max-runtime", "train", "0")
    assert pool.client.submit(project="train", command=["true"]).max_runtime_s is None


def test_a_gang_with_a_crashing_rank_is_stopped_and_retried_whole(pool: Pool,
                                                                  tmp_path: Path) -> None:
    job = pool.client.submit(project="train", gpus=1, workers=2, max_retries=1,
                             command=[sys.executable, "-c", GANG, str(tmp_path)])
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=60) == "succeeded"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.0", "0.1", "1.0", "1.1"]
    text = events(pool, job.id)
    assert "rank 1 exited with code 3; stopping the other ranks" in text
    assert "retry 1 of 1" in text
    assert "got SIGTERM" in pool.client.logs(job.id, rank=0, attempt=0) or (
        pool.client.job(job.id).attempt == 1)


def test_retries_exhausted(pool: Pool) -> None:
    began = time.time()
    job = pool.client.submit(project="train", max_retries=2,
                             command=[sys.executable, "-c", "import sys; sys.exit(2)"])
    assert pool.wait(job.id, {"failed", "succeeded"}, timeout=60) == "failed"
    done = pool.client.job(job.id)
    assert done.attempt == 2 and done.retries == 2 and done.exit_code == 2
    text = events(pool, job.id)
    assert "retry 1 of 2 in 0.5 s" in text and "retry 2 of 2 in 1 s" in text
    assert "failed with exit code 2; no retries left (2 used)" in text
    assert time.time() - began >= 1.5  # the backoffs were waited
    for attempt in range(3):
        pool.client.logs(job.id, attempt=attempt)  # every attempt's log is kept
