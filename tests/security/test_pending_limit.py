"""The pending-jobs limit holds under concurrent submits (issue 16, finding 6), on SQLite and on
PostgreSQL.

A real ``fairpool up`` per database, with ``max_pending_per_project`` 25. Twenty users, each
with a token of their own, submit at the same instant (a barrier before every round) to a
project whose jobs cannot start (its GPU limit is 0, so every job stays waiting): exactly 25
are accepted, every other submit gets 429 saying the project has 25 jobs waiting. The
legitimate side: twenty concurrent submits to a project below the limit all succeed, and once
jobs are cancelled the freed places are taken again, exactly as many as were freed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fairpool.schemas.queues import LimitSpec, ProjectCreate, QueueCreate
from tests.conftest import fresh_pg_database
from tests.e2e.conftest import Pool, start_pool, stop_pool

LIMIT = 25
THREADS = 20
ROUNDS = 3
#: waits forever and starts no process: its project's GPU limit is 0
JOB = {"command": ["true"], "gpus": 1}


def _pool(tmp: Path, db: str | None) -> Pool:
    pool = start_pool(tmp, "--simulate-gpus", "1", db=db, env_extra={
        "FAIRPOOL_MAX_PENDING_PER_PROJECT": str(LIMIT), "FAIRPOOL_SUBMIT_RATE": "0"})
    admin = pool.client
    admin.create_department(QueueCreate(name="lab"))
    for name in ("capped", "roomy"):
        admin.create_project(ProjectCreate(name=name, department="lab",
                                           limit=LimitSpec(gpus=0)))
    return pool


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Pool, list[str]]]:
    tmp = tmp_path_factory.mktemp(f"pending-{request.param}")
    databases = fresh_pg_database() if request.param == "postgresql" else iter([None])
    for db in databases:
        pool = _pool(tmp, db)
        try:
            tokens = []
            for i in range(THREADS):
                user = f"user{i}"
                tokens.append(pool.client.create_token(user).token)
                pool.client.grant(user, "researcher", "lab")
            yield pool, tokens
        finally:
            stop_pool(pool)


def _burst(pool: Pool, tokens: list[str], project: str, rounds: int) -> list[httpx.Response]:
    """Every token submits ``rounds`` jobs to ``project``, all threads at once each round."""
    barrier = threading.Barrier(len(tokens))

    def submitter(token: str) -> list[httpx.Response]:
        out = []
        with httpx.Client(base_url=pool.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http:
            for _ in range(rounds):
                barrier.wait(timeout=60)
                out.append(http.post("/api/v1/jobs", json={"project": project, **JOB}))
        return out

    with ThreadPoolExecutor(len(tokens)) as ex:
        return [r for rs in ex.map(submitter, tokens) for r in rs]


def _waiting(pool: Pool, project: str) -> int:
    return next(q.pending_jobs for q in pool.client.queues() if q.name == project)


def test_concurrent_submits_never_overshoot_the_pending_limit(
        setup: tuple[Pool, list[str]]) -> None:
    pool, tokens = setup
    # the legitimate case first: twenty at once, below the limit, all accepted
    below = _burst(pool, tokens, "roomy", 1)
    assert [r.status_code for r in below] == [201] * THREADS, [r.text for r in below]
    assert _waiting(pool, "roomy") == THREADS

    # the attack: 60 submits in three simultaneous waves against a limit of 25
    answers = _burst(pool, tokens, "capped", ROUNDS)
    accepted = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code != 201]
    assert len(accepted) == LIMIT, f"{len(accepted)} accepted with a limit of {LIMIT}"
    assert len(refused) == THREADS * ROUNDS - LIMIT
    for r in refused:
        assert r.status_code == 429, r.text
        assert r.json()["error"] == (
            f"project capped already has {LIMIT} jobs waiting, the most allowed ({LIMIT}); "
            "wait for some to start or cancel some")
    assert _waiting(pool, "capped") == LIMIT
    assert len({r.json()["id"] for r in accepted}) == LIMIT

    # places freed by cancelling are taken again, exactly as many as were freed
    for r in accepted[:5]:
        pool.client.cancel(r.json()["id"])
    again = _burst(pool, tokens, "capped", 1)
    assert sorted(r.status_code for r in again) == [201] * 5 + [429] * (THREADS - 5)
    assert _waiting(pool, "capped") == LIMIT
