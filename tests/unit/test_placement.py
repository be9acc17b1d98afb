"""Placement: gangs all or nothing, whole GPUs, fractions, GPU memory, bin-pack, selectors."""

from dataclasses import replace

from fairpool.domain import Job, Node, Queue, WorkerRequest
from fairpool.domain.job import NodeSelector
from fairpool.scheduler import SchedulerConfig, Snapshot, Strategy, schedule
from tests.helpers import frac, job, nodes, project

QUEUES = (Queue("d"), project("p"))


def plan_for(ns, jobs, **cfg):
    return schedule(Snapshot(tuple(ns), QUEUES, tuple(jobs)), SchedulerConfig(**cfg))


def used_devices(plan):
    out = {}
    for b in plan.binds:
        for p in b.placements:
            for d in p.devices:
                out[(p.node, d)] = out.get((p.node, d), 0) + p.share
    return out


def test_gang_all_or_nothing():
    plan = plan_for(nodes(2, 4), [job("big", "p", g=4, workers=3), job("small", "p", g=1, t=1)])
    assert [b.job_id for b in plan.binds] == ["small"]
    assert plan.pending["big"].code == "NO_CAPACITY"
    assert "3 workers × 4 GPUs" in plan.pending["big"].message


def test_gang_spans_nodes_and_gets_distinct_devices():
    plan = plan_for(nodes(2, 4), [job("g", "p", g=2, workers=4)])
    (b,) = plan.binds
    assert len(b.placements) == 4
    assert len({(p.node, d) for p in b.placements for d in p.devices}) == 8


def test_binpack_fills_one_node_first_and_spread_balances():
    jobs = [job(f"j{i}", "p", g=1, t=i) for i in range(4)]
    packed = plan_for(nodes(2, 4), jobs)
    assert {p.node for b in packed.binds for p in b.placements} == {"n0"} or \
        {p.node for b in packed.binds for p in b.placements} == {"n1"}
    spread = plan_for(nodes(2, 4), jobs, strategy=Strategy.SPREAD)
    per_node = {}
    for b in spread.binds:
        for p in b.placements:
            per_node[p.node] = per_node.get(p.node, 0) + 1
    assert per_node == {"n0": 2, "n1": 2}


def test_binpack_prefers_the_tightest_node():
    ns = [Node.with_gpus("big", 8), Node.with_gpus("small", 2)]
    plan = plan_for(ns, [job("j", "p", g=2)])
    assert plan.binds[0].placements[0].node == "small"


def test_fractions_share_a_device_without_overcommit():
    jobs = [frac(f"f{i}", "p", 0.3, t=i) for i in range(7)]
    plan = plan_for(nodes(1, 2), jobs)
    assert len(plan.binds) == 6  # 3 per device (0.9), the 7th would exceed
    assert all(v <= 1000 for v in used_devices(plan).values())
    assert plan.pending["f6"].code == "NO_CAPACITY"


def test_fraction_binpacks_onto_partly_used_device():
    jobs = [frac("a", "p", 0.5, t=0), frac("b", "p", 0.25, t=1), job("w", "p", g=1, t=2)]
    plan = plan_for(nodes(1, 2), jobs)
    devs = {b.job_id: b.placements[0].devices for b in plan.binds}
    assert devs["a"] == devs["b"]  # packed on the same device
    assert devs["w"] != devs["a"]


def test_gpu_memory_request():
    ns = [Node.with_gpus("n", 1, gpu_memory_mib=40000)]
    jobs = [Job(f"m{i}", "p", WorkerRequest(gpu_memory_mib=15000), submit_time=i)
            for i in range(3)]
    plan = plan_for(ns, jobs)
    assert len(plan.binds) == 2
    assert plan.binds[0].placements[0].gpu_memory == 15000
    big = Job("huge", "p", WorkerRequest(gpu_memory_mib=50000))
    plan = plan_for(ns, [big])
    assert plan.pending["huge"].code == "TOO_LARGE"
    assert "40000 MiB" in plan.pending["huge"].message


def test_same_node_constraint():
    plan = plan_for(nodes(2, 4), [job("g", "p", g=2, workers=3, same_node=True)])
    assert plan.pending["g"].code == "TOO_LARGE"
    assert "largest node" in plan.pending["g"].message
    plan = plan_for(nodes(2, 4), [job("g", "p", g=2, workers=2, same_node=True)])
    assert len({p.node for p in plan.binds[0].placements}) == 1


def test_pools_and_labels():
    ns = [Node.with_gpus("a", 4, pool="a100"), Node.with_gpus("h", 4, pool="h100",
                                                              labels={"ib": "yes"})]
    sel = NodeSelector(pool="h100", labels={"ib": "yes"})
    plan = plan_for(ns, [job("j", "p", g=2, selector=sel)])
    assert plan.binds[0].placements[0].node == "h"
    plan = plan_for(ns, [job("j", "p", g=2, selector=NodeSelector(pool="v100"))])
    assert plan.pending["j"].code == "NO_NODES"
    assert "pool=v100" in plan.pending["j"].message


def test_cordoned_and_not_ready_nodes_get_nothing():
    ns = [replace(Node.with_gpus("c", 4), cordoned=True),
          replace(Node.with_gpus("r", 4), ready=False)]
    plan = plan_for(ns, [job("j", "p")])
    assert plan.pending["j"].code == "NO_NODES"


def test_too_large_worker_reason():
    plan = plan_for(nodes(4, 8), [job("j", "p", g=16)])
    assert plan.pending["j"].message.startswith("each worker needs 16 GPUs on one node")


def test_cpu_and_memory_are_respected():
    ns = [Node.with_gpus("n", 4, cpus=8)]
    jobs = [Job(f"c{i}", "p", WorkerRequest(gpus=1, cpu=5000), submit_time=i) for i in range(2)]
    plan = plan_for(ns, jobs)
    assert len(plan.binds) == 1
    assert plan.pending["c1"].code == "NODE_RESOURCES"
