"""kill -9 of ``fairpool up`` in the middle of 200 short jobs from two projects, three times:
afterwards every job has exactly one final state, no worker ran twice at the same time (by the
workers' own marker files) and none was lost."""

from __future__ import annotations

import itertools
import random
import sys
import time
from pathlib import Path

from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import crash_and_restart, start_pool, stop_pool

# each attempt of each job: a start marker (created exclusively: a second start of the same
# attempt fails loudly), a heartbeat while it runs, an end marker when it finishes
WORKER = """
import os, sys, time
d, seconds = sys.argv[1], float(sys.argv[2])
name = os.path.join(d, os.environ["FAIRPOOL_JOB_ID"] + "." + os.environ["FAIRPOOL_ATTEMPT"])
with open(name + ".start", "x") as f:
    f.write(repr(time.time()))
end = time.time() + seconds
while time.time() < end:
    with open(name + ".beat", "w") as f:
        f.write(repr(time.time()))
    time.sleep(0.05)
with open(name + ".end", "w") as f:
    f.write(repr(time.time()))
"""
JOBS = 200
FINAL = {"succeeded", "failed", "cancelled"}


def test_kill_9_three_times_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    pool = start_pool(tmp_path, "--simulate-gpus", "4")
    try:
        c = pool.client
        c.create_department(QueueCreate(name="chaos", quota=ResourceSpec(gpus=4)))
        for name in ("alpha", "beta"):
            c.create_project(ProjectCreate(name=name, department="chaos",
                                           quota=ResourceSpec(gpus=2)))
        rng = random.Random(7)
        ids = [c.submit(project=("alpha", "beta")[i % 2], gpus=1, client_key=f"job-{i}",
                        command=[sys.executable, "-c", WORKER, str(markers),
                                 f"{rng.uniform(0.3, 1.5):.2f}"]).id
               for i in range(JOBS)]
        recoveries = []
        for _ in range(3):
            time.sleep(rng.uniform(2.0, 5.0))
            recoveries.append(crash_and_restart(pool))
            # the restarted server still knows every job
            assert len(c.jobs(limit=10_000)) == JOBS

        def all_final() -> bool:
            return all(j.state in FINAL for j in c.jobs(limit=10_000))

        pool.until(all_final, timeout=300, what="every job final")
        jobs = {j.id: j for j in c.jobs(limit=10_000)}
        assert set(jobs) == set(ids)  # none lost, none made up
        states = {j.state for j in jobs.values()}
        assert states == {"succeeded"}, {j.id: j.state for j in jobs.values()
                                         if j.state != "succeeded"}
        for job_id, job in jobs.items():
            spans = []
            for attempt in range(job.attempt + 1):
                base = markers / f"{job_id}.{attempt}"
                if not Path(f"{base}.start").exists():
                    continue  # an attempt whose worker never started (requeued first)
                start = float(Path(f"{base}.start").read_text())
                last = Path(f"{base}.end") if Path(f"{base}.end").exists() else (
                    Path(f"{base}.beat"))
                end = float(last.read_text()) if last.exists() else start
                spans.append((start, end, attempt))
            assert spans, f"job {job_id} never ran"
            assert Path(markers / f"{job_id}.{job.attempt}.end").exists(), job_id
            spans.sort()
            for (_, e1, a1), (s2, _, a2) in itertools.pairwise(spans):
                assert s2 >= e1, f"job {job_id}: attempts {a1} and {a2} ran at the same time"
            events = [e.kind for e in c.events(job_id)]
            assert events.count("finished") == 1, (job_id, events)
        assert max(recoveries) < 60
    finally:
        stop_pool(pool)
