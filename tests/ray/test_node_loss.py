"""A Ray node dies mid-job: its jobs are requeued and finish on the nodes that remain, never
running twice at once; a node that joins later is used without restarting fairpool."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ray.conftest import RayPool, gpu_node, ray_node_name, ray_pool

# each worker appends "start <job> <attempt> <pid> <time>" and, if it completes, "end ..." lines
MARKER = """
import os, sys, time
path = sys.argv[1]
def mark(what):
    with open(path, "a") as f:
        f.write(f"{what} {os.environ['FAIRPOOL_JOB_ID']} {os.environ['FAIRPOOL_ATTEMPT']} "
                f"{os.getpid()} {time.time()} {os.environ['FAIRPOOL_NODE']}\\n")
mark("start")
time.sleep(float(sys.argv[2]))
mark("end")
"""


@pytest.fixture(scope="module")
def rp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayPool]:
    yield from ray_pool(tmp_path_factory.mktemp("nodeloss"), gpu_nodes=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_node_joins_then_dies_mid_job(rp: RayPool, tmp_path: Path) -> None:
    pool = rp.pool
    # a third node joins the running pool: it is used without a restart
    doomed = gpu_node(rp.cluster)
    doomed_name = ray_node_name(doomed)
    pool.until(lambda: any(n.name == doomed_name and n.ready for n in pool.client.nodes()),
               timeout=30, what="the new Ray node in the inventory")

    markers = tmp_path / "markers"
    # 6 GPUs, 6 jobs of 30 s: long enough to be running everywhere when the node goes
    jobs = [pool.client.submit(project="vision", gpus=1, command=[
        sys.executable, "-c", MARKER, str(markers), "30"]) for _ in range(6)]
    for job in jobs:
        pool.wait(job.id, {"running"}, timeout=120)
    on_doomed = [j.id for j in jobs
                 if pool.client.job(j.id).placement[0].node == doomed_name]
    assert len(on_doomed) == 2
    pool.until(lambda: markers.exists() and all(
        f"start {j} 0" in markers.read_text() for j in on_doomed), timeout=30,
        what="the doomed workers to start")

    assert all(pool.client.job(j).state == "running" for j in on_doomed)
    killed_at = time.time()
    rp.cluster.remove_node(doomed)  # the raylet and every process of the node die

    for job in jobs:
        assert pool.wait(job.id, {"succeeded", "failed"}, timeout=180) == "succeeded", (
            "\n".join(e.message for e in pool.client.events(job.id)), pool.client.logs(job.id))
    assert not any(n.name == doomed_name and n.ready for n in pool.client.nodes())

    lines = [ln.split() for ln in markers.read_text().splitlines()]
    runs: dict[tuple[str, str], dict[str, list[str]]] = {}
    for what, job_id, attempt, pid, at, node in lines:
        runs.setdefault((job_id, attempt), {})[what] = [pid, at, node]
    for job in jobs:
        detail = pool.client.job(job.id)
        if job.id in on_doomed:
            assert detail.attempt == 1
            first, second = runs[(job.id, "0")], runs[(job.id, "1")]
            assert "end" not in first  # it died with its node
            assert not _alive(int(first["start"][0]))
            assert float(second["start"][1]) > killed_at  # restarted after the loss, not before
            assert second["start"][2] != doomed_name
            kinds = [e.kind for e in pool.client.events(job.id)]
            assert "lost" in kinds and "requeued" in kinds
            lost = next(e for e in pool.client.events(job.id) if e.kind == "lost")
            assert doomed_name in lost.message
        else:
            assert detail.attempt == 0 and (job.id, "1") not in runs
    # every job ran to its end exactly once
    ends = sorted(job_id for what, job_id, *_ in lines if what == "end")
    assert ends == sorted(j.id for j in jobs)
