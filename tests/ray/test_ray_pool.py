"""fairpool on a real multi-node Ray cluster: inventory, a DDP gang across two Ray nodes, and
quota with reclaim working as on one machine."""

from __future__ import annotations

import re
import sys
from pathlib import Path

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
