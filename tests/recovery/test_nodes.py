"""Node health and operations: cordon/uncordon, drain (its jobs requeued, told they were
preempted), and the circuit breaker that cordons a node whose workers are lost, for a
cooldown, with an event that says why (one project's own failures never cordon it)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import Pool, launch, start_pool, stop_pool

NODES = """
[[node]]
name = "gpu-a"
gpus = 2
pool = "a"
[[node]]
name = "gpu-b"
gpus = 2
pool = "b"
"""
# writes its pid, then waits; tells what stop reason it got on SIGTERM
SLEEPER = ("import os, signal, sys, time\n"
           "def bye(*_):\n"
           "    print('stop reason:', open(os.environ['FAIRPOOL_STOP_FILE']).read().strip(),"
           " flush=True)\n"
           "    sys.exit(0)\n"
           "signal.signal(signal.SIGTERM, bye)\n"
           "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
           "time.sleep(600)\n")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    tmp: Path = tmp_path_factory.mktemp("nodes")
    (tmp / "nodes.toml").write_text(NODES)
    p = start_pool(tmp, "--nodes-file", str(tmp / "nodes.toml"), env_extra={
        "FAIRPOOL_BREAKER_FAILURES": "3", "FAIRPOOL_BREAKER_COOLDOWN_S": "3"})
    try:
        p.client.create_department(QueueCreate(name="infra", quota=ResourceSpec(gpus=4)))
        p.client.create_project(ProjectCreate(name="ops", department="infra",
                                              quota=ResourceSpec(gpus=4)))
        yield p
    finally:
        stop_pool(p)


def node_of(pool: Pool, job_id: str) -> str:
    return pool.client.job(job_id).placement[0].node


def test_cordon_and_drain(pool: Pool, tmp_path: Path) -> None:
    c = pool.client
    c.cordon("gpu-a", "disk replacement")
    listing = pool.cli("nodes").stdout
    assert "cordoned (disk replacement)" in listing
    jobs = [c.submit(project="ops", gpus=1, command=[sys.executable, "-c", SLEEPER,
                                                     str(tmp_path / f"pid{i}")])
            for i in range(2)]
    for job in jobs:
        pool.wait(job.id, {"running"})
        assert node_of(pool, job.id) == "gpu-b"
    c.uncordon("gpu-a")
    out = pool.cli("node", "drain", "gpu-b").stdout
    assert "2 jobs requeued" in out
    for job in jobs:  # moved to the other node, after being told they were preempted
        pool.until(lambda j=job: c.job(j.id).attempt == 1 and c.job(j.id).state == "running",
                   timeout=60, what="the drained job running again")
        assert node_of(pool, job.id) == "gpu-a"
        assert "stop reason: preempted" in c.logs(job.id, attempt=0)
        assert any(e.message.startswith("drain: node gpu-b is being drained by admin")
                   for e in c.events(job.id))
    assert {n.name: n.cordoned for n in c.nodes()} == {"gpu-a": False, "gpu-b": True}
    pool.cli("node", "uncordon", "gpu-b")
    assert not any(n.cordoned for n in c.nodes())
    audit = {a.action for a in c.audit(actor="admin", limit=100)}
    assert {"node.cordon", "node.uncordon", "node.drain"} <= audit
    for job in jobs:
        c.cancel(job.id)
    # only admins operate nodes
    c.grant("nina", "researcher", "ops")
    resp = httpx.post(pool.url + "/api/v1/nodes/gpu-a/cordon", json={}, headers={
        "Authorization": f"Bearer {c.create_token('nina').token}"})
    assert resp.status_code == 403
    missing = pool.cli("node", "cordon", "gpu-z", check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_breaker_cordons_a_node_whose_workers_are_lost(pool: Pool, tmp_path: Path) -> None:
    c = pool.client
    victims = []
    for i in range(3):  # three different jobs on gpu-a, of one project
        pid = tmp_path / f"victim{i}"
        job = c.submit(project="ops", node_pool="a",
                       command=[sys.executable, "-c", SLEEPER, str(pid)])
        pool.until(pid.exists, what="the worker's pid")
        victims.append((job, int(pid.read_text())))
    # the machine loses them while no server watches: supervisors and workers vanish, no exit
    # recorded; the restarted server cannot find them
    pool.proc.kill()
    pool.proc.wait(10)
    for _, pid in victims:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    pool.proc = launch(pool.data_dir.parent, pool.args, pool.env, pool.url, timeout=60)
    pool.until(lambda: next(n for n in c.nodes() if n.name == "gpu-a").cordoned,
               what="gpu-a cordoned")
    node = next(n for n in c.nodes() if n.name == "gpu-a")
    assert node.cordon_until is not None and node.cordon_reason is not None
    assert node.cordon_reason.startswith("workers of 3 jobs failed here within 60 s: 3 lost; "
                                         "cordoned until "), node.cordon_reason
    for job, _ in victims:
        assert job.id not in node.cordon_reason
        assert any(e.kind == "node-cordoned" and "node gpu-a" in e.message
                   for e in c.events(job.id))
        assert c.job(job.id).attempt == 1  # lost: requeued
        # the lost attempt's cgroups (empty: its processes were killed) stay behind, a gap
        # noted in issue 16's note; this test removes what it made
        for group in Path("/sys/fs/cgroup").glob(f"*/fairpool/{job.id}.0.0"):
            with contextlib.suppress(OSError):
                group.rmdir()
    # the cooldown ends by itself, and the requeued jobs run there again
    pool.until(lambda: not next(n for n in c.nodes() if n.name == "gpu-a").cordoned,
               timeout=30, what="the cooldown to end")
    for job, _ in victims:
        pool.wait(job.id, {"running"})
        c.cancel(job.id)
        pool.wait(job.id, {"cancelled"})
    # ordinary failures (exit codes) are the job's business, and so are one project's workers
    # killed by signals the executor did not send: no cordon
    for i in range(3):
        job = c.submit(project="ops", node_pool="a",
                       command=[sys.executable, "-c", "raise SystemExit(1)"])
        assert pool.wait(job.id, {"failed"}) == "failed"
        pid = tmp_path / f"killed{i}"
        job = c.submit(project="ops", node_pool="a",
                       command=[sys.executable, "-c", SLEEPER, str(pid)])
        pool.until(pid.exists, what="the worker's pid")
        os.kill(int(pid.read_text()), signal.SIGKILL)
        assert pool.wait(job.id, {"failed"}) == "failed"
    assert not next(n for n in c.nodes() if n.name == "gpu-a").cordoned
