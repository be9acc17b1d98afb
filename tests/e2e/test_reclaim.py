"""Borrowing idle GPUs over quota, then a reclaim: the borrower gets SIGTERM and is requeued."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Pool, reclaimed_borrowers, research_pool
from tests.e2e.test_jobs import TRAP


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """A pool of its own: the test needs every GPU free at the start."""
    yield from research_pool(tmp_path_factory.mktemp("reclaim"))


def test_borrow_then_reclaim(pool: Pool, tmp_path: Path) -> None:
    borrowers = [pool.client.submit(project="vision", command=[sys.executable, "-c", TRAP],
                                    gpus=1) for _ in range(4)]
    for job in borrowers:
        pool.wait(job.id, {"running"})
    vision = next(q for q in pool.client.queues() if q.name == "vision")
    assert vision.allocated.gpus == 4 and vision.quota.gpus == 2  # borrowing 2 idle GPUs
    for job in borrowers:
        pool.until(lambda j=job: "started" in pool.client.logs(j.id), what="worker output")

    claim = pool.client.submit(project="nlp", command=["sleep", "3"], gpus=2)
    assert pool.wait(claim.id, {"running", "succeeded"}) in ("running", "succeeded")
    requeued = reclaimed_borrowers(pool, borrowers, "nlp", 2)
    # the reclaimer started only after its victims stopped
    claim_events = pool.client.events(claim.id)
    admitted = next(e for e in claim_events if e.kind == "admitted")
    assert "waits for" in admitted.message

    # while nlp runs, a requeued borrower waits with an actionable reason
    if pool.client.job(claim.id).state == "running":
        waiting = next(j for j in requeued if pool.client.job(j.id).state == "requeued")
        text = pool.cli("explain", waiting.id).stdout
        assert "needs 1 GPU" in text and "cannot reclaim" in text
    pool.wait(claim.id, {"succeeded"})
    # once nlp is done, the borrowers get the GPUs back
    for job in requeued:
        pool.wait(job.id, {"running"})


def test_limit_reason_is_explained(pool: Pool) -> None:
    pool.cli("project", "set-quota", "nlp", "--limit-gpus", "2")
    job = pool.client.submit(project="nlp", command=["true"], gpus=3)
    pool.until(lambda: pool.client.explain(job.id).code is not None, what="a reason")
    text = pool.client.explain(job.id).reason
    assert text.startswith("project nlp is at its limit 2 GPUs")
    pool.client.cancel(job.id)
