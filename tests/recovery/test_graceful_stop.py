"""Ctrl-C (SIGINT) and SIGTERM of a real ``fairpool up`` while a two-worker job runs: the server
says on stderr that it is stopping and that the job's workers keep running, exits (130, 143),
and the next start adopts them: the same attempt of the job, the same processes, runs on to
success. With nothing running it says so."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import Pool, launch, start_pool, stop_pool

# each worker writes its pid, says it started, and ends once the file ``go`` exists
WORKER = """
import os, sys, time
d = sys.argv[1]
rank = os.environ["RANK"]
with open(os.path.join(d, f"pid.{rank}"), "w") as f:
    f.write(str(os.getpid()))
print("worker started", flush=True)
while not os.path.exists(os.path.join(d, "go")):
    time.sleep(0.05)
print("worker done", flush=True)
"""
KEEP = ("stopping: 2 workers of 1 job keep running and will be adopted at the next start "
        "(fairpool up)")


def _stop(pool: Pool, sig: signal.Signals) -> tuple[int, str]:
    """Send ``sig`` to the whole process group of ``fairpool up`` (what a terminal's Ctrl-C
    does) and wait for it; its exit code and what it wrote after the signal."""
    log = pool.data_dir.parent / "server.log"
    before = log.stat().st_size
    os.killpg(pool.proc.pid, sig)
    code = pool.proc.wait(30)
    return code, log.read_bytes()[before:].decode()


def _restart(pool: Pool) -> None:
    pool.proc = launch(pool.data_dir.parent, pool.args, pool.env, pool.url, timeout=60)


def test_stop_says_what_keeps_running_and_the_next_start_adopts_it(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    pool = start_pool(tmp_path, "--simulate-gpus", "2")
    try:
        c = pool.client
        c.create_department(QueueCreate(name="lab", quota=ResourceSpec(gpus=2)))
        c.create_project(ProjectCreate(name="vision", department="lab",
                                       quota=ResourceSpec(gpus=2)))
        job = c.submit(project="vision", gpus=1, workers=2, name="ddp",
                       command=[sys.executable, "-c", WORKER, str(marks)])
        pool.wait(job.id, {"running"})
        pool.until(lambda: len(list(marks.glob("pid.*"))) == 2, what="both workers started")
        pids = {p.name: p.read_text() for p in marks.glob("pid.*")}

        code, said = _stop(pool, signal.SIGINT)
        assert code == 130, said
        assert KEEP in said.splitlines(), said
        assert "Traceback" not in said and "ERROR" not in said, said
        for pid in pids.values():  # the workers outlived the server
            os.kill(int(pid), 0)

        _restart(pool)
        assert c.job(job.id).state == "running"
        code, said = _stop(pool, signal.SIGTERM)  # SIGTERM: the same, exit 143
        assert code == 143, said
        assert KEEP in said.splitlines(), said
        assert "Traceback" not in said and "ERROR" not in said, said

        _restart(pool)
        (marks / "go").touch()
        assert pool.wait(job.id, {"succeeded", "failed", "cancelled", "requeued"}) == "succeeded"
        after = c.job(job.id)
        assert after.attempt == 0  # adopted: never lost, requeued nor started again
        kinds = [e.kind for e in c.events(job.id)]
        assert not {"lost", "requeued", "evicted"} & set(kinds), kinds
        assert {p.name: p.read_text() for p in marks.glob("pid.*")} == pids
        log = c.logs(job.id, rank=0)
        assert "worker started" in log and "worker done" in log, log

        code, said = _stop(pool, signal.SIGINT)
        assert code == 130, said
        assert "stopping: no workers running" in said.splitlines(), said
        _restart(pool)  # for stop_pool
    finally:
        stop_pool(pool)
