"""The job-array part of ``benchmarks/throughput.py --array``: one array of trivial 1-GPU tasks
(``true``) submitted in one REST call and drained through the local executor, side by side
with Slurm's own job array (``ARRAY=1`` in ../shared/peers/slurm/bench.sh) on the same machine.

fairpool runs in two configurations, each a fresh ``fairpool up --simulate-gpus GPUS``
(SQLite, local executor): the defaults (on a root server every task isolated: a transient uid,
a cgroup and bubblewrap) and with isolation off (``FAIRPOOL_RUN_AS=server
FAIRPOOL_CGROUPS=false``, what Slurm's tasks get here). ``array_submit_s`` is the wall time of
the one ``POST /api/v1/arrays``; the drain rate is tasks / (that call's start → the last task's
``finished_at``). Each configuration and Slurm run ``rounds`` times, in turn; the figures are
the medians of the rounds.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from throughput import FINAL, SANDBOX_VARS, Server, make_project, run_slurm, say

#: isolation off: each task a plain subprocess of the server's account, as Slurm's are
UNISOLATED = {"FAIRPOOL_RUN_AS": "server", "FAIRPOOL_CGROUPS": "false"}


def one_array(tasks: int, gpus: int, env: Mapping[str, str]) -> dict[str, float]:
    """Submit one ``tasks``-task array to a fresh server and wait for every task to end."""
    workdir = Path(tempfile.mkdtemp(prefix="fairpool-array-"))
    server = Server(["--simulate-gpus", str(gpus)], workdir,
                    env={**env, "FAIRPOOL_MAX_PENDING_PER_PROJECT": str(max(tasks, 10_000))})
    try:
        make_project(server.url, gpus, server.headers)
        body: dict[str, Any] = {"project": "p", "name": "bench", "command": ["true"],
                                "gpus": 1, "indices": f"0-{tasks - 1}"}
        with httpx.Client(base_url=server.url, timeout=120, headers=server.headers) as http:
            start = time.time()
            made = http.post("/api/v1/arrays", json=body)
            submitted = time.time()
            made.raise_for_status()
            array_id = made.json()["id"]
            while True:
                counts: dict[str, int] = http.get(f"/api/v1/arrays/{array_id}").json()["counts"]
                if sum(n for state, n in counts.items() if state in FINAL) == tasks:
                    break
                time.sleep(0.5)
            rows = http.get(f"/api/v1/arrays/{array_id}/tasks",
                            params={"limit": tasks}).json()
        end = max(r["finished_at"] for r in rows)
        return {"submit_s": submitted - start, "total_s": end - start,
                "jobs_per_s": tasks / (end - start),
                "succeeded": sum(1 for r in rows if r["state"] == "succeeded")}
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_array(tasks: int, gpus: int, rounds: int, slurm_tasks: int | None) -> dict[str, object]:
    """fairpool (defaults and unisolated) and, unless ``slurm_tasks`` is None, Slurm's array
    of ``slurm_tasks``, ``rounds`` times in turn; medians."""
    base = {k: v for k, v in os.environ.items() if k not in SANDBOX_VARS}
    runs: dict[str, list[dict[str, float]]] = {"array": [], "array_unisolated": [],
                                               "slurm_array": []}
    for r in range(rounds):
        say(f"array round {r + 1}/{rounds}: fairpool, {tasks} tasks")
        runs["array"].append(one_array(tasks, gpus, base))
        say(f"array round {r + 1}/{rounds}: fairpool unisolated, {tasks} tasks")
        runs["array_unisolated"].append(one_array(tasks, gpus, {**base, **UNISOLATED}))
        if slurm_tasks is not None:
            say(f"array round {r + 1}/{rounds}: slurm, {slurm_tasks} tasks")
            got = run_slurm(slurm_tasks, gpus, array=True)
            runs["slurm_array"].append({"jobs_per_s": float(str(got["slurm_jobs_per_s"])),
                                        "total_s": float(str(got["slurm_total_s"])),
                                        "succeeded": float(str(got["slurm_completed"]))})

    def median(kind: str, key: str) -> float:
        return round(statistics.median(x[key] for x in runs[kind]), 3)

    result: dict[str, object] = {"array_tasks": tasks, "array_rounds": rounds, "gpus": gpus,
                                 "simulated": True}
    for kind in ("array", "array_unisolated"):
        result[f"{kind}_submit_s"] = median(kind, "submit_s")
        result[f"{kind}_jobs_per_s"] = median(kind, "jobs_per_s")
        result[f"{kind}_total_s"] = median(kind, "total_s")
        result[f"{kind}_succeeded_min"] = min(int(x["succeeded"]) for x in runs[kind])
    if slurm_tasks is None:
        result.update(slurm_array_jobs_per_s=None, array_ratio=None,
                      array_unisolated_ratio=None)
        return result
    slurm = median("slurm_array", "jobs_per_s")
    result.update(slurm_array_tasks=slurm_tasks, slurm_array_jobs_per_s=slurm,
                  slurm_array_total_s=median("slurm_array", "total_s"),
                  slurm_array_completed_min=min(int(x["succeeded"])
                                                for x in runs["slurm_array"]),
                  array_ratio=round(median("array", "jobs_per_s") / slurm, 2),
                  array_unisolated_ratio=round(median("array_unisolated", "jobs_per_s") / slurm,
                                               2))
    return result
