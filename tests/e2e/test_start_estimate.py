"""The start-time estimate through a real server: one simulated GPU held by a job with a max
runtime of 10 minutes; the job waiting behind it is expected to start when that one ends, and
`fairpool explain`, the API and the job's page say so with what the estimate rests on. A job
that can start at once, or whose blocker has no known run time, says that instead."""

from __future__ import annotations

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
    pool = start_pool(tmp_path, "--simulate-gpus", "1")
    try:
        pool.cli("department", "create", "lab", "--quota-gpus", "1")
        pool.cli("project", "create", "a", "-d", "lab", "--quota-gpus", "1")
        yield pool
    finally:
        (tmp_path / "go").touch()
        stop_pool(pool)


def test_a_waiting_job_is_told_when_it_is_expected_to_start(one_gpu: Pool,
                                                           tmp_path: Path) -> None:
    pool = one_gpu
    holder = pool.client.submit(project="a", gpus=1, max_runtime_s=600,
                                command=[PY, "-c", HOLD, str(tmp_path / "go")])
    pool.wait(holder.id, {"running"})
    waiting = pool.client.submit(project="a", gpus=1, command=["true"])
    pool.until(lambda: bool(pool.client.job(waiting.id).reason), what="a reason")
    started = pool.client.job(holder.id).started_at or 0.0
    why = pool.client.explain(waiting.id)
    assert why.expected_start_at == pytest.approx(started + 600, abs=2)
    assert why.estimate is not None
    assert why.estimate.startswith("expected to start in about 10 min (estimate, based on "
                                   "1 job ending by their max runtime)"), why.estimate
    out = pool.cli("explain", waiting.id).stdout.splitlines()
    assert out[0].startswith(f"{waiting.id} queued: ") and out[1] == why.estimate
    # the job's page shows it too
    with httpx.Client(base_url=pool.url, follow_redirects=True) as ui:
        ui.post("/ui/login", data={"token": pool.token})
        page = ui.get(f"/ui/jobs/{waiting.id}").text
    assert 'data-field="estimate"' in page and "expected to start in about 10 min" in page
    # a running job has no estimate; neither does one blocked by a job of unknown run time
    assert pool.client.explain(holder.id).estimate is None
    # the next one waits behind `waiting`, which declares no max runtime and whose project
    # has no history yet: it keeps the GPU in the forecast, so there is no start to promise
    other = pool.client.submit(project="a", gpus=1, command=["true"])
    pool.until(lambda: bool(pool.client.job(other.id).reason), what="a reason")
    late = pool.client.explain(other.id)
    assert late.expected_start_at is None and late.estimate is not None
    assert late.estimate.startswith("no start-time estimate: it waits for jobs with no known "
                                    "run time (estimate, based on"), late.estimate
    assert "1 job with no known run time keeping their GPUs" in late.estimate
