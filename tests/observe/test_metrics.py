"""/metrics scraped during a scenario (borrowing, a reclaim, a job reporting utilisation): the
values match what the store says through the API."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fairpool.client import Client
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import Pool, start_pool, stop_pool
from tests.observe.test_idle_and_usage import reporter

LONG = [sys.executable, "-c", "import time; time.sleep(600)"]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    tmp: Path = tmp_path_factory.mktemp("metrics")
    p = start_pool(tmp, "--simulate-gpus", "4", env_extra={"FAIRPOOL_SAMPLE_EVERY_S": "0.3"})
    try:
        yield p
    finally:
        stop_pool(p)


def scrape(pool: Pool) -> Samples:
    text = pool.client.metrics()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels`` (0 when absent)."""
    found = [v for (n, ls), v in samples.items()
             if n == name and set(labels.items()) <= set(ls)]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0.0


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and set(labels.items()) <= set(ls))


def matches_store(pool: Pool) -> bool:
    c = pool.client
    queues, jobs = c.queues(), c.jobs(limit=10_000)
    m = scrape(pool)
    if c.queues() != queues or c.jobs(limit=10_000) != jobs:
        return False  # the pool moved while we looked: look again
    for q in queues:
        for name, want in (("fairpool_queue_quota_gpus", q.quota.gpus),
                           ("fairpool_queue_allocated_gpus", q.allocated.gpus),
                           ("fairpool_queue_pending_gpus", q.pending.gpus)):
            assert value(m, name, queue=q.name, kind=q.kind) == pytest.approx(want), name
        if q.fair_share is not None:
            assert value(m, "fairpool_queue_fair_share_gpus", queue=q.name) == pytest.approx(
                q.fair_share.gpus)
    for (project, state), n in Counter((j.project, j.state) for j in jobs).items():
        assert value(m, "fairpool_jobs", project=project, state=state) == n
    held = sum(q.allocated.gpus for q in queues if q.kind == "project")
    assert total(m, "fairpool_device_allocated") == pytest.approx(held)
    evicted = sum(1 for j in jobs for e in c.events(j.id)
                  if e.kind == "evicted" and e.message.startswith("reclaim:"))
    assert value(m, "fairpool_evictions_total", reason="reclaim") == evicted
    return True


def test_metrics_follow_the_store(pool: Pool) -> None:
    c = pool.client
    c.create_department(QueueCreate(name="research", quota=ResourceSpec(gpus=4)))
    c.create_project(ProjectCreate(name="vision", department="research",
                                   quota=ResourceSpec(gpus=2)))
    c.create_project(ProjectCreate(name="nlp", department="research",
                                   quota=ResourceSpec(gpus=2)))
    borrowers = [c.submit(project="vision", command=LONG, gpus=1) for _ in range(3)]
    busy = c.submit(project="vision", command=reporter(0.7), gpus=1)
    for job in (*borrowers, busy):
        pool.wait(job.id, {"running"})
    pool.until(lambda: matches_store(pool), timeout=30, what="metrics equal to the store")
    m = scrape(pool)
    assert value(m, "fairpool_queue_allocated_gpus", queue="vision") == 4
    assert value(m, "fairpool_scheduling_cycle_seconds_count") >= 1
    assert value(m, "fairpool_scheduling_decisions_total", kind="bind",
                 action="allocate") >= 4
    # the job reporting utilisation: its device and the job, labelled simulated
    pool.until(lambda: c.job(busy.id).gpu_util is not None, what="a utilisation reading")
    place = c.job(busy.id).placement[0]
    m = scrape(pool)
    assert value(m, "fairpool_job_gpu_utilization", job=busy.id, simulated="true") == (
        pytest.approx(0.7))
    assert value(m, "fairpool_device_utilization", node=place.node,
                 device=str(place.devices[0]), simulated="true") == pytest.approx(0.7)

    # nlp claims its quota: two of vision's borrowed jobs are reclaimed
    claim = c.submit(project="nlp", command=LONG, gpus=2)
    pool.wait(claim.id, {"running"}, timeout=60)
    pool.until(lambda: matches_store(pool), timeout=30, what="metrics after the reclaim")
    m = scrape(pool)
    assert value(m, "fairpool_evictions_total", reason="reclaim") == 2
    assert value(m, "fairpool_queue_allocated_gpus", queue="nlp") == 2
    assert value(m, "fairpool_scheduling_decisions_total", kind="evict", action="reclaim") == 2


def test_metrics_need_pool_wide_read(pool: Pool) -> None:
    c = pool.client
    assert httpx.get(pool.url + "/metrics").status_code == 401
    c.grant("prom", "viewer", "*")
    with Client(pool.url, token=c.create_token("prom").token) as prom:
        assert "fairpool_jobs" in prom.metrics()
    c.grant("pia", "viewer", "vision")
    resp = httpx.get(pool.url + "/metrics", headers={
        "Authorization": f"Bearer {c.create_token('pia').token}"})
    assert resp.status_code == 403 and "error" in resp.json()
