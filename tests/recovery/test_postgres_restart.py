"""PostgreSQL restarted while jobs run (on a database of this test's own): the server
reconnects, and every job still ends exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fairpool.client import FairpoolError
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.conftest import fresh_pg_database
from tests.e2e.conftest import start_pool, stop_pool

JOBS = 40


def restart_postgres() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-t", "60"], check=True,
                   capture_output=True, timeout=90)


@pytest.fixture
def database() -> Iterator[str]:
    yield from fresh_pg_database()


def test_server_survives_a_postgres_restart(tmp_path: Path, database: str) -> None:
    pool = start_pool(tmp_path, "--simulate-gpus", "4", db=database)
    try:
        c = pool.client
        c.create_department(QueueCreate(name="db", quota=ResourceSpec(gpus=4)))
        c.create_project(ProjectCreate(name="pg", department="db", quota=ResourceSpec(gpus=4)))
        ids = [c.submit(project="pg", gpus=1, client_key=f"k{i}", command=[
            sys.executable, "-c", "import time; time.sleep(0.5)"]).id for i in range(JOBS)]
        time.sleep(1.0)
        restart_postgres()

        def settled() -> bool:
            try:
                return all(j.state in ("succeeded", "failed", "cancelled")
                           for j in c.jobs(limit=10_000))
            except FairpoolError:
                return False  # the API's first requests after the restart may fail

        pool.until(settled, timeout=180, what="every job final after the restart")
        jobs = {j.id: j for j in c.jobs(limit=10_000)}
        assert set(jobs) == set(ids)
        assert {j.state for j in jobs.values()} == {"succeeded"}
        for job_id in ids:
            assert [e.kind for e in c.events(job_id)].count("finished") == 1
        # and new work is taken as before
        late = c.submit(project="pg", command=["true"])
        assert pool.wait(late.id, {"succeeded"}) == "succeeded"
        assert httpx.get(pool.url + "/health").status_code == 200
        assert pool.proc.poll() is None  # neither process gave up
    finally:
        stop_pool(pool)
