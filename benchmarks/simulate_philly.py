"""The whole Philly-derived trace through the simulator, every policy: metrics and wall time.

    python benchmarks/simulate_philly.py [--gpus 768] [--policy all] [--plot out/] [--jobs N]

Setting (../shared/traces/README.md, "Settings for fairpool's simulator benchmarks"): 96 nodes ×
8 GPUs = 768 GPUs; every Philly VC is a project whose quota is its Helios size scaled by
768 / 2,816 (src/fairpool/simulate/configs/philly-helios.yaml); checkpoints every 30 minutes.
Policies run in parallel processes (one per core); ``wall_s`` is each policy's own run time.
Prints one JSON object: per policy the same metrics as ``fairpool simulate --json`` plus
``wall_s``, and ``table``, the metrics as a Markdown table. ``--plot`` also writes the plots.

``--helios`` runs the setting of Helios's published Philly numbers instead: every VC on its own
share of 2,816 GPUs (its Helios size: fairpool's strict quotas), jobs submitted from 2017-10-01
to 2017-11-30, FIFO and SJF inside each VC (policies ``strict-quota`` and ``strict-sjf``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "traces" / "philly.csv"
QUOTAS = ROOT / "src" / "fairpool" / "simulate" / "configs" / "philly-helios.yaml"
ROWS = ("avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "avg_wait_total_s", "makespan_s",
        "utilisation",
        "evictions", "lost_gpu_hours", "guarantee_violation_s", "jain_index", "unfinished",
        "wall_s")


HELIOS_WINDOW = ("2017-10-01 00:00:00", "2017-12-01 00:00:00")


def helios_window(trace: Any) -> Any:
    """The jobs submitted in Helios's window (times in the trace count from its first job)."""
    import csv
    from dataclasses import replace
    from datetime import datetime

    def at(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").timestamp()

    with TRACE.open() as f:
        first = min(at(row["timestamp"]) for row in csv.DictReader(f))
    start, end = (at(t) - first for t in HELIOS_WINDOW)
    jobs = tuple(j for j in trace.jobs if start <= j.submit_s < end)
    return replace(trace, name=trace.name + " (2017-10-01 to 2017-11-30)", jobs=jobs)


def policy(name: str) -> Any:
    from fairpool.scheduler.snapshot import QueueOrder, SchedulerConfig
    from fairpool.simulate.policies import POLICIES, Policy

    if name == "strict-sjf":
        return Policy(name, SchedulerConfig(order=QueueOrder.SHORTEST_FIRST, lend_idle=False,
                                            consolidate=False, reclaim=False, preempt=False),
                      single_queue=False)
    return POLICIES[name]


def run_one(name: str, gpus: int, per_node: int, jobs: int | None, keep: bool, helios: bool
            ) -> tuple[str, dict[str, Any], Any]:
    from fairpool.simulate.engine import ClusterSpec, Simulation
    from fairpool.simulate.metrics import summarize
    from fairpool.simulate.traces import load_trace

    trace = load_trace(TRACE, gpus=gpus, quota_file=QUOTAS, limit=jobs, gpus_per_node=per_node)
    if helios:
        trace = helios_window(trace)
    started = time.perf_counter()
    result = Simulation(trace, policy(name), ClusterSpec(gpus, per_node)).run()
    summary: dict[str, Any] = dict(summarize(result))
    summary["unfinished"] = sum(1 for j in result.jobs if j.finish_s is None)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return name, summary, result if keep else None


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(results)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in ROWS:
        cells = []
        for n in names:
            v = results[n].get(key, 0)
            cells.append(f"{v:,.3f}" if isinstance(v, float) and abs(v) < 10 else f"{v:,.0f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=768)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--policy", default="all")
    ap.add_argument("--jobs", type=int, default=None, help="only the first N jobs")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--helios", action="store_true", help="Helios's setting (see above)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from fairpool.simulate.policies import policy_names

    if args.helios:
        names = ["strict-quota", "strict-sjf"]
        args.gpus = 2816
    else:
        names = policy_names(args.policy)
    out: dict[str, Any] = {"trace": str(TRACE.name), "helios_setting": args.helios,
                           "gpus": args.gpus,
                           "gpus_per_node": args.gpus_per_node, "checkpoint_min": 30}
    summaries: dict[str, dict[str, Any]] = {}
    results: dict[str, Any] = {}
    with ProcessPoolExecutor(max(1, min(args.workers, len(names)))) as pool:
        futures = [pool.submit(run_one, n, args.gpus, args.gpus_per_node, args.jobs,
                               args.plot is not None, args.helios) for n in names]
        for f in futures:
            name, summary, result = f.result()
            summaries[name] = summary
            results[name] = result
            print(f"{name}: {summary['wall_s']} s", file=sys.stderr, flush=True)
    out.update(summaries)
    out["table"] = table(summaries)
    if args.plot is not None:
        from fairpool.simulate.plots import plot_all

        args.plot.mkdir(parents=True, exist_ok=True)
        out["plots"] = [str(p) for p in plot_all(results, args.plot)]
    print(json.dumps(out, allow_nan=False))


if __name__ == "__main__":
    main()
