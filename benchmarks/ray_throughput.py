"""fairpool on Ray versus plain Ray tasks: the same trivial-job drain, on the same local cluster.

    python benchmarks/ray_throughput.py [--jobs 2000] [--nodes 4] [--gpus-per-node 8]

A local Ray cluster (``ray.cluster_utils.Cluster``): a head without GPUs and ``--nodes`` nodes
with ``--gpus-per-node`` simulated GPUs each (Ray's ``GPU`` resource with no device behind it;
8 logical CPUs per node, so GPUs are the limit for both runs).

1. fairpool: ``fairpool up --ray-address`` on the cluster; ``--jobs`` 1-GPU ``true`` jobs are
   submitted over REST by ``--submitters`` threads (as in benchmarks/throughput.py); the rate is
   jobs / (first submit → last job finished).
2. Ray: after fairpool has stopped, the same number of ``@ray.remote(num_gpus=1)`` tasks, each
   running ``true`` as a subprocess, submitted from one driver; the rate is tasks / (first
   submit → last result). Ray runs each GPU task in a fresh worker process by default
   (``max_calls=1``); a second run with ``max_calls=0`` (workers reused) is reported beside it.

``overhead_ms_per_job`` is the difference of the two per-job times (what fairpool's queueing,
scheduling, bookkeeping and log collection add over Ray's own task path). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from throughput import Server, drain, make_project, pct

NODE_ARGS: dict[str, Any] = {"num_cpus": 8, "object_store_memory": 100 * 1024 * 1024,
                             "include_dashboard": False}


def run_fairpool(address: str, jobs: int, gpus: int, submitters: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="fairpool-raybench-"))
    server = Server(["--ray-address", address], workdir, timeout=180)
    try:
        make_project(server.url, gpus)
        start, submitted, mine = drain(server.url, jobs, submitters)
        end = max(j["finished_at"] for j in mine)
        waits = [(j["started_at"] - j["submitted_at"]) * 1000 for j in mine
                 if j["started_at"] is not None]
        runs = [(j["finished_at"] - j["started_at"]) * 1000 for j in mine
                if j["started_at"] is not None]
        return {
            "fairpool_jobs": jobs,
            "fairpool_succeeded": sum(1 for j in mine if j["state"] == "succeeded"),
            "fairpool_submit_s": round(submitted - start, 3),
            "fairpool_total_s": round(end - start, 3),
            "fairpool_jobs_per_s": round(jobs / (end - start), 1),
            "fairpool_submit_to_running_p50_ms": round(pct(waits, 0.5), 1),
            "fairpool_submit_to_running_p99_ms": round(pct(waits, 0.99), 1),
            "fairpool_running_to_finished_p50_ms": round(statistics.median(runs), 1),
        }
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_ray_tasks(address: str, jobs: int) -> dict[str, Any]:
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        @ray.remote(num_gpus=1)
        def trivial() -> int:
            return subprocess.run(["true"], check=False).returncode

        # Ray's default for GPU tasks is max_calls=1: a fresh worker process per task, so that
        # GPU memory is released; the second run lets workers be reused (max_calls=0)
        result: dict[str, Any] = {"ray_tasks": jobs}
        for key, fn in (("ray", trivial), ("ray_reused_workers", _reused(ray))):
            start = time.time()
            codes = ray.get([fn.remote() for _ in range(jobs)])
            end = time.time()
            result[f"{key}_succeeded"] = sum(1 for c in codes if c == 0)
            result[f"{key}_total_s"] = round(end - start, 3)
            result[f"{key}_tasks_per_s"] = round(jobs / (end - start), 1)
    finally:
        ray.shutdown()
    return result


def _reused(ray: Any) -> Any:
    @ray.remote(num_gpus=1, max_calls=0)
    def trivial_reused() -> int:
        return subprocess.run(["true"], check=False).returncode

    return trivial_reused


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--submitters", type=int, default=4)
    args = ap.parse_args()
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE_ARGS, "num_cpus": 1})
    for _ in range(args.nodes):
        cluster.add_node(num_gpus=args.gpus_per_node, **NODE_ARGS)
    cluster.wait_for_nodes()
    gpus = args.nodes * args.gpus_per_node
    result: dict[str, Any] = {"nodes": args.nodes, "gpus": gpus, "simulated": True,
                              "cpus_of_this_machine": os.cpu_count()}
    try:
        result.update(run_fairpool(cluster.address, args.jobs, gpus, args.submitters))
        result.update(run_ray_tasks(cluster.address, args.jobs))
    finally:
        cluster.shutdown()
    fairpool_ms = 1000 / result["fairpool_jobs_per_s"]
    ray_ms = 1000 / result["ray_tasks_per_s"]
    result["ratio"] = round(result["fairpool_jobs_per_s"] / result["ray_tasks_per_s"], 3)
    result["overhead_ms_per_job"] = round(fairpool_ms - ray_ms, 2)
    reused_ms = 1000 / result["ray_reused_workers_tasks_per_s"]
    result["ratio_vs_reused_workers"] = round(reused_ms / fairpool_ms, 3)
    result["overhead_ms_per_job_vs_reused_workers"] = round(fairpool_ms - reused_ms, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
