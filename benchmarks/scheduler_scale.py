"""Scheduler core at scale: time of a full cycle and of a no-change cycle, and peak memory.

Synthetic cluster (defaults: 4,000 nodes × 8 GPUs, 500 projects in 25 departments, 140,000
workers in a mix of single-GPU, multi-GPU, fractional and gang jobs). The running state is what
the scheduler itself produced from an empty cluster and settled over a few cycles; then 2% of
running jobs finish, as many new ones arrive, an hour passes, and the full cycle (snapshot → plan,
all actions) is timed on that state.

    python benchmarks/scheduler_scale.py [--nodes N] [--workers W] [--projects P] [--repeat R]

Prints one JSON object: ``full_cycle_s`` and ``nochange_cycle_s`` (medians), ``peak_rss_mib`` and
details; ``light_churn_cycle_s`` is a full cycle after a quieter minute (0.2% of running jobs
turned over) on the same settled cluster. ``nochange_cycle_s`` is a cycle through
:class:`fairpool.scheduler.Scheduler` on a snapshot whose generation did not change (the control
loop's case); ``nochange_recompute_s`` is the same snapshot fully recomputed, for comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from dataclasses import replace

from fairpool.domain import GPU_UNIT, Job, JobState, Node, Queue, Resources, WorkerRequest
from fairpool.scheduler import Scheduler, SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.apply import apply_plan

SHAPES = [  # (weight, gpus per worker, fraction, workers range)
    (45, 1, None, (1, 1)),
    (12, 0, 0.5, (1, 1)),
    (8, 0, 0.25, (1, 1)),
    (10, 2, None, (1, 1)),
    (6, 4, None, (1, 1)),
    (6, 8, None, (1, 1)),
    (8, 8, None, (2, 8)),
    (5, 4, None, (2, 4)),
]


def build(nodes: int, workers: int, projects: int, seed: int) -> Snapshot:
    rng = random.Random(seed)
    gpus_per_node = 8
    node_list = tuple(
        Node.with_gpus(f"node-{i:05d}", gpus_per_node, pool="a100" if i % 4 else "h100")
        for i in range(nodes)
    )
    capacity = nodes * gpus_per_node
    departments = max(1, projects // 20)
    queues: list[Queue] = []
    per_project = capacity / projects
    for d in range(departments):
        members = [p for p in range(projects) if p % departments == d]
        quotas = [round(per_project * rng.uniform(0.5, 1.0)) for _ in members]
        queues.append(Queue(f"dept-{d:02d}", quota=Resources(gpu=sum(quotas) * GPU_UNIT),
                            over_quota_weight=rng.randint(1, 3)))
        for p, quota in zip(members, quotas, strict=True):
            queues.append(Queue(f"proj-{p:03d}", parent=f"dept-{d:02d}",
                                quota=Resources(gpu=quota * GPU_UNIT),
                                over_quota_weight=rng.randint(1, 3)))
    jobs: list[Job] = []
    total = 0
    weights = [s[0] for s in SHAPES]
    i = 0
    while total < workers:
        _, g, f, (lo, hi) = rng.choices(SHAPES, weights)[0]
        w = min(rng.randint(lo, hi), workers - total)
        request = WorkerRequest(gpus=g) if f is None else WorkerRequest(gpu_fraction=f)
        np = rng.random() < 0.05
        jobs.append(Job(
            f"job-{i:06d}", f"proj-{rng.randrange(projects):03d}", request, workers=w,
            priority=100 if np else rng.choice((50, 50, 50, 60)), preemptible=not np,
            submit_time=float(i), min_runtime_s=rng.choice((0.0, 600.0)),
        ))
        total += w
        i += 1
    return Snapshot(node_list, tuple(queues), tuple(jobs), now=0.0, generation=1)


def churn(snap: Snapshot, rate: float, seed: int, seconds: float = 3600.0) -> Snapshot:
    """Some running jobs finish, as many new jobs arrive; time passes."""
    rng = random.Random(seed)
    now = snap.now + seconds
    kept: list[Job] = []
    arrivals: list[Job] = []
    for job in snap.jobs:
        if job.state == JobState.RUNNING and rng.random() < rate:
            arrivals.append(replace(job, id=job.id + "-next", state=JobState.QUEUED,
                                    placements=(), started_at=None, submit_time=now))
            continue
        kept.append(job)
    gen = (snap.generation or 0) + 1
    return replace(snap, jobs=tuple(kept + arrivals), now=now, generation=gen)


def settle(snap: Snapshot, config: SchedulerConfig, cycles: int = 10) -> Snapshot:
    """Run cycles (an hour apart, so minimum runtimes pass) until one changes nothing."""
    for _ in range(cycles):
        plan = schedule(snap, config)
        if not plan.changes:
            break
        snap = apply_plan(snap, plan)
        snap = replace(snap, now=snap.now + 3600.0)
    return snap


def timed(fn: object, repeat: int) -> tuple[float, object]:
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=140_000)
    ap.add_argument("--projects", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    config = SchedulerConfig()

    snap = build(args.nodes, args.workers, args.projects, args.seed)
    start = time.perf_counter()
    plan = schedule(snap, config)
    cold_s = time.perf_counter() - start
    settled = settle(apply_plan(snap, plan, now=snap.now), config)
    light = churn(settled, 0.002, args.seed + 1, seconds=60.0)
    light_s, _ = timed(lambda: schedule(light, config), args.repeat)
    snap = churn(settled, 0.02, args.seed)

    full_s, plan = timed(lambda: schedule(snap, config), args.repeat)
    steady = settle(apply_plan(snap, plan), config)  # type: ignore[arg-type]
    recompute_s, _ = timed(lambda: schedule(steady, config), max(1, args.repeat // 2))
    scheduler = Scheduler(config)
    scheduler.cycle(steady)
    nochange_s, reused = timed(lambda: scheduler.cycle(steady), args.repeat)

    running = [j for j in snap.jobs if j.state == JobState.RUNNING]
    pending = [j for j in snap.jobs if j.pending]
    result = {
        "nodes": args.nodes,
        "gpus": args.nodes * 8,
        "projects": args.projects,
        "workers": sum(j.workers for j in snap.jobs),
        "running_workers": sum(j.workers for j in running),
        "pending_workers": sum(j.workers for j in pending),
        "full_cycle_s": round(full_s, 4),
        "nochange_cycle_s": round(nochange_s, 6),
        "nochange_recompute_s": round(recompute_s, 4),
        "light_churn_cycle_s": round(light_s, 4),  # 0.2% of jobs turned over in a minute
        "cold_start_cycle_s": round(cold_s, 4),
        "binds_in_full_cycle": len(plan.binds),  # type: ignore[attr-defined]
        "evictions_in_full_cycle": len(plan.evictions),  # type: ignore[attr-defined]
        "nochange_plan_reused": bool(reused.reused),  # type: ignore[attr-defined]
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "repeat": args.repeat,
        "python": sys.version.split()[0],
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
