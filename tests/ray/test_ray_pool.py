"""fairpool on a real multi-node Ray cluster: inventory, a DDP gang across two Ray nodes, and
quota with reclaim working as on one machine."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import reclaimed_borrowers
from tests.e2e.test_jobs import TRAP
from tests.ray.conftest import RayPool, ray_node_name

SCRIPT = Path(__file__).parents[2] / "examples" / "ddp_train.py"


def test_inventory_comes_from_ray(rp: RayPool) -> None:
    nodes = {n.name: n for n in rp.pool.client.nodes()}
    for node in rp.nodes:
        info = nodes[ray_node_name(node)]
        assert len(info.devices) == 2 and info.simulated and info.ready
    assert sum(len(n.devices) for n in nodes.values()) == 4  # the head has none
    assert len(nodes) == 3


def test_ddp_gang_across_two_ray_nodes(rp: RayPool) -> None:
    pool = rp.pool
    # two GPUs per worker and two per node: the ranks cannot share a node
    job = pool.client.submit(project="nlp", command=[sys.executable, str(SCRIPT), "--steps",
                                                     "60"], gpus=2, workers=2)
    state = pool.wait(job.id, {"succeeded", "failed"}, timeout=240)
    assert state == "succeeded", [pool.client.logs(job.id, rank=r) for r in (0, 1)]
    placement = pool.client.job(job.id).placement
    assert len({w.node for w in placement}) == 2
    losses, seen_on = [], set()
    for rank in (0, 1):
        text = pool.client.logs(job.id, rank=rank)  # streamed back from the Ray nodes
        found = re.search(rf"rank {rank}/2 local_rank 0 final_loss ([0-9.]+) node (\S+)", text)
        assert found, text
        losses.append(float(found.group(1)))
        seen_on.add(found.group(2))
    assert losses[0] == losses[1] and losses[0] < 0.01
    assert seen_on == {w.node for w in placement} <= {ray_node_name(n) for n in rp.nodes}


def test_quota_and_reclaim_on_ray(rp: RayPool) -> None:
    pool = rp.pool
    borrowers = [pool.client.submit(project="vision", command=[sys.executable, "-c", TRAP],
                                    gpus=1) for _ in range(4)]
    for job in borrowers:
        pool.wait(job.id, {"running"}, timeout=120)
        pool.until(lambda j=job: "started" in pool.client.logs(j.id), what="worker output")
    vision = next(q for q in pool.client.queues() if q.name == "vision")
    assert vision.allocated.gpus == 4 and vision.quota.gpus == 2  # borrowing nlp's share

    claim = pool.client.submit(project="nlp", command=["sleep", "1"], gpus=2)
    assert pool.wait(claim.id, {"running", "succeeded"}, timeout=120) in (
        "running", "succeeded")
    requeued = reclaimed_borrowers(pool, borrowers, "nlp", 2)
    pool.wait(claim.id, {"succeeded"}, timeout=60)
    for job in requeued:  # the borrowers get the GPUs back once nlp is done
        pool.wait(job.id, {"running"}, timeout=120)
    for job in borrowers:
        pool.client.cancel(job.id)
    for job in borrowers:
        pool.wait(job.id, {"cancelled"}, timeout=60)


def test_a_job_in_an_image_runs_in_a_container_on_a_ray_node(rp: RayPool, busybox_image: str,
                                                              tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the test image is in root's podman storage")
    pool = rp.pool
    job = pool.client.submit(project="vision", image=busybox_image, gpus=1, workers=2,
                             workdir=str(tmp_path), env={"MINE": "yes"}, command=[
                                 "sh", "-c", "echo rank=$RANK/$WORLD_SIZE node=$FAIRPOOL_NODE "
                                 "mine=$MINE ray=$(env | grep -c ^RAY_) pwd=$(pwd); "
                                 "cat /etc/passwd | head -1; ls /bin/busybox"])
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=120) == "succeeded", (
        pool.client.logs(job.id), [e.message for e in pool.client.events(job.id)])
    for rank in (0, 1):
        log = pool.client.logs(job.id, rank=rank)
        assert f"rank={rank}/2" in log and "mine=yes" in log and f"pwd={tmp_path}" in log, log
        assert "ray=0 " in log, log  # the host's environment does not reach the worker
        assert "/bin/busybox" in log, log  # the image's files, not the node's
    plain = pool.client.submit(project="vision", command=["sh", "-c", "env | grep -c ^RAY_"])
    assert pool.wait(plain.id, {"succeeded", "failed"}, timeout=60) == "failed"  # grep: none
    assert pool.client.logs(plain.id).strip() == "0"
    missing = pool.client.submit(project="vision", image="localhost/not-there:1", max_retries=2,
                                 command=["true"])
    assert pool.wait(missing.id, {"failed"}, timeout=60) == "failed"
    done = pool.client.job(missing.id)
    assert done.retries == 0, [e.message for e in pool.client.events(missing.id)]
