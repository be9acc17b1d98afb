"""One accounting everywhere, on a real server with four simulated 80 GiB GPUs: a project running
a 0.5-fraction job and a 20,000 MiB GPU-memory job holds 0.745 GPUs (0.5 + 20000/81920 rounded
up to the next milli-GPU, as placement rounds it) in the scheduler's placements, in `fairpool
queues` (JSON and table), the REST queue list, /metrics (the project's gauge and the sum of its
devices' gauges) and the usage report; a whole-GPU gang and a job waiting at its project's limit
are counted the same way."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fairpool.schemas.jobs import JobOut
from fairpool.schemas.queues import LimitSpec, ProjectCreate, QueueCreate
from tests.e2e.conftest import Pool, start_pool, stop_pool
from tests.observe.test_metrics import scrape, total, value

LONG = [sys.executable, "-c", "import time; time.sleep(600)"]
#: what each project holds (running jobs) and asks (waiting jobs), in GPUs
HELD = {"mixed": 0.745, "gang": 2.0, "capped": 0.0}
ASKED = {"mixed": 0.0, "gang": 0.0, "capped": 0.245}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    tmp: Path = tmp_path_factory.mktemp("accounting")
    p = start_pool(tmp, "--simulate-gpus", "4")
    try:
        yield p
    finally:
        stop_pool(p)


def held_by_placements(job: JobOut) -> float:
    """What the scheduler placed: each worker's share of each of its devices."""
    return sum(w.share * len(w.devices) for w in job.placement)


def test_every_reader_counts_what_the_scheduler_placed(pool: Pool) -> None:
    c = pool.client
    c.create_department(QueueCreate(name="acct"))
    for name in ("mixed", "gang"):
        c.create_project(ProjectCreate(name=name, department="acct"))
    c.create_project(ProjectCreate(name="capped", department="acct", limit=LimitSpec(gpus=0.1)))
    half = c.submit(project="mixed", command=LONG, gpu_fraction=0.5)
    mem = c.submit(project="mixed", command=LONG, gpu_memory_mib=20_000)
    gang = c.submit(project="gang", command=LONG, gpus=1, workers=2)
    for job in (half, mem, gang):
        pool.wait(job.id, {"running"})
    # 20,000 MiB of an 81,920 MiB device, above the project's 0.1 GPU limit: it waits
    waiting = c.submit(project="capped", command=LONG, gpu_memory_mib=20_000)
    pool.until(lambda: c.job(waiting.id).reason_code == "QUEUE_LIMIT",
               what="the capped job waiting at its limit")
    assert c.job(waiting.id).state == "queued"
    t0 = time.time()

    running = {j.id: c.job(j.id) for j in (half, mem, gang)}
    placed = {"mixed": held_by_placements(running[half.id]) + held_by_placements(running[mem.id]),
              "gang": held_by_placements(running[gang.id]), "capped": 0.0}
    assert placed == pytest.approx(HELD, abs=1e-12)
    assert held_by_placements(running[mem.id]) == pytest.approx(0.245, abs=1e-12)

    # queue status over REST (the client and a plain GET) and the CLI's JSON
    listed = {q.name: q for q in c.queues()}
    raw = httpx.get(pool.url + "/api/v1/queues", headers=pool.auth, timeout=10).json()
    cli = json.loads(pool.cli("queues", "--json").stdout)
    for view in ({n: (q.allocated.gpus, q.pending.gpus) for n, q in listed.items()},
                 {q["name"]: (q["allocated"]["gpus"], q["pending"]["gpus"]) for q in raw},
                 {q["name"]: (q["allocated"]["gpus"], q["pending"]["gpus"]) for q in cli}):
        for name in HELD:
            assert view[name] == pytest.approx((HELD[name], ASKED[name]), abs=1e-12), name
        assert view["acct"] == pytest.approx((sum(HELD.values()), sum(ASKED.values())),
                                             abs=1e-12)
    assert (listed["mixed"].running_jobs, listed["capped"].pending_jobs) == (2, 1)

    # the CLI's table: allocated and pending columns of each project
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[1:-1]]
            for line in pool.cli("queues").stdout.splitlines() if line.count("│") > 5}
    assert rows["mixed"][6:8] == ["0.745", "0"]
    assert rows["gang"][6:8] == ["2", "0"]
    assert rows["capped"][6:8] == ["0", "0.245"]
    assert rows["acct"][6:8] == ["2.745", "0.245"]

    # /metrics: each project's gauge, and the devices its jobs hold add up to the same
    m = scrape(pool)
    for name, gpus in HELD.items():
        assert value(m, "fairpool_queue_allocated_gpus", queue=name) == pytest.approx(
            gpus, abs=1e-12), name
        assert value(m, "fairpool_queue_pending_gpus", queue=name) == pytest.approx(
            ASKED[name], abs=1e-12), name
    devices = {(w.node, str(d)) for j in (half, mem) for w in running[j.id].placement
               for d in w.devices}
    assert sum(value(m, "fairpool_device_allocated", node=n, device=d) for n, d in devices) == (
        pytest.approx(HELD["mixed"], abs=1e-12))
    assert total(m, "fairpool_device_allocated") == pytest.approx(sum(HELD.values()), abs=1e-12)

    # usage: GPU-hours over a stretch in which all three ran are the same GPUs times its length
    time.sleep(1.0)
    t1 = time.time()
    usage = {r.key: r.allocated_gpu_hours * 3600 / (t1 - t0) for r in c.usage(t0, t1)}
    assert usage == pytest.approx({"mixed": HELD["mixed"], "gang": HELD["gang"]}, rel=1e-9)
    per_job = {r.key: r.allocated_gpu_hours * 3600 / (t1 - t0)
               for r in c.usage(t0, t1, by="job")}
    assert per_job[mem.id] == pytest.approx(0.245, rel=1e-9)
