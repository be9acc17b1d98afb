"""End-to-end throughput: trivial jobs (``true``) through the REST API, the scheduler and the
local executor, side by side with Slurm on the same machine; and the cost of the sandbox.

    python benchmarks/throughput.py [--jobs 2000] [--gpus 8] [--submitters 4] [--skip-slurm]
        [--container-jobs 100] [--rounds 3] [--skip-isolation] [--skip-container]

fairpool: a fresh ``fairpool up --simulate-gpus 8`` (SQLite, local executor); ``--jobs`` 1-GPU
jobs are submitted over REST by ``--submitters`` threads; the drain rate is jobs / (first submit
→ last job finished). Submit → running latency is measured twice: for the drain (queueing
included) and, the headline, with free capacity (jobs submitted one at a time on an idle pool).
Slurm: ../shared/peers/slurm (slurmctld + slurmd, 8 fake GPUs), ``sbatch --gres=gpu:1 --wrap
true`` for the same number of jobs.

Isolation (``isolated_*`` against ``unisolated_*``): two more servers, run side by side, one with
isolation off (``FAIRPOOL_RUN_AS=server FAIRPOOL_CGROUPS=false``), one with the defaults (on a
root server: a transient uid, a cgroup and bubblewrap per worker); both run ``/bin/true`` in a
directory every account can search. ``isolation_added_p50_ms`` is the difference of their
submit → running medians (free capacity).

Containers (``container_*``): the same job with ``image`` (a busybox image built here with
``podman import`` and removed afterwards; ``FAIRPOOL_IMAGE_PULL=never``) on the default server,
beside ``podman run --rm --pull=never --network=host --log-driver=passthrough IMAGE true`` run
directly (``podman_run_true_*``) with the same ``CONTAINERS_CONF``. A job counts as running once
its worker (here: podman) has been started, so the comparison with ``podman run`` is submit →
finished: ``container_added_over_podman_p50_ms`` is the container job's submit → finished median
minus ``podman run``'s. ``container_run_p50_ms`` is the job's running → finished median.

The samples of all of these are taken in turn (one job of each, the order rotating), the drains
in ``--rounds`` rounds of ``--jobs`` / rounds jobs (``--container-jobs`` / rounds for the
container), alternating; drain rates are the medians of the rounds, latencies are over all
samples. Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT.parent / "shared" / "peers" / "slurm"
FINAL = {"succeeded", "failed", "cancelled"}
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX = "/bin/busybox"
#: what the sandbox settings of the servers below are made of: none of the caller's
SANDBOX_VARS = ("FAIRPOOL_RUN_AS", "FAIRPOOL_CGROUPS", "FAIRPOOL_NAMESPACES",
                "FAIRPOOL_IMAGE_PULL", "FAIRPOOL_ENV_PASSTHROUGH", "CONTAINERS_CONF")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def say(text: str) -> None:
    print(f"throughput: {text}", file=sys.stderr, flush=True)


#: the bearer token of the server started last (its first start's admin token)
HEADERS: dict[str, str] = {}


class Server:
    """A fresh ``fairpool up`` with ``up_args`` (the inventory) and a data directory of its own."""

    def __init__(self, up_args: list[str], workdir: Path, timeout: float = 30,
                 env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / "pool"
        self.headers: dict[str, str] = {}
        # the per-token submit rate limit guards a shared pool against one user; this measures
        # the scheduler, so it is off
        env = dict(os.environ if env is None else env, XDG_CONFIG_HOME=str(workdir / "cfg"),
                   FAIRPOOL_SUBMIT_RATE="0")
        exe = Path(sys.executable).with_name("fairpool")
        self.log = (workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(exe), "up", "--port", str(self.port), "--data-dir", str(workdir / "pool"),
             *up_args], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    token = (workdir / "pool" / "admin-token").read_text().strip()
                    HEADERS["Authorization"] = f"Bearer {token}"
                    self.headers = {"Authorization": f"Bearer {token}"}
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("fairpool did not start; see " + str(workdir / "server.log"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def drain(url: str, jobs: int, submitters: int, project: str = "p",
          body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
          ) -> tuple[float, float, list[dict[str, Any]]]:
    """Submit ``jobs`` trivial 1-GPU jobs (or ``body``) from ``submitters`` threads and wait for
    all to end. Returns (first submit, last submit, the jobs as the API shows them at the end)."""
    body = body or {"project": project, "command": ["true"], "gpus": 1}
    headers = HEADERS if headers is None else headers

    def submit_many(n: int) -> list[str]:
        with httpx.Client(base_url=url, timeout=60, headers=headers) as c:
            return [c.post("/api/v1/jobs", json=body).json()["id"] for _ in range(n)]

    start = time.time()
    share = [jobs // submitters + (1 if i < jobs % submitters else 0) for i in range(submitters)]
    with ThreadPoolExecutor(submitters) as pool:
        ids = {i for part in pool.map(submit_many, share) for i in part}
    submitted = time.time()
    with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
        while True:
            states = http.get("/api/v1/jobs", params={"project": project, "limit": 10_000}
                              ).json()
            mine = [j for j in states if j["id"] in ids]
            if all(j["state"] in FINAL for j in mine):
                return start, submitted, mine
            time.sleep(0.2)


def make_project(url: str, gpus: int, headers: Mapping[str, str] | None = None) -> None:
    with httpx.Client(base_url=url, timeout=60,
                      headers=HEADERS if headers is None else headers) as http:
        http.post("/api/v1/departments", json={"name": "bench", "quota": {"gpus": gpus}})
        http.post("/api/v1/projects", json={"name": "p", "department": "bench",
                                            "quota": {"gpus": gpus}})


def run_fairpool(jobs: int, gpus: int, submitters: int, latency_jobs: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="fairpool-bench-"))
    server = Server(["--simulate-gpus", str(gpus)], workdir)
    try:
        make_project(server.url, gpus)
        http = httpx.Client(base_url=server.url, timeout=60, headers=HEADERS)
        body = {"project": "p", "command": ["true"], "gpus": 1}

        # 1. latency with free capacity: one job at a time on an idle pool
        latencies = []
        for _ in range(latency_jobs):
            job = http.post("/api/v1/jobs", json=body).json()
            while True:
                got = http.get(f"/api/v1/jobs/{job['id']}").json()
                if got["state"] in FINAL:
                    break
                time.sleep(0.002)
            latencies.append((got["started_at"] - got["submitted_at"]) * 1000)

        # 2. drain: submit everything, wait until all finished
        start, submitted, mine = drain(server.url, jobs, submitters)
        end = max(j["finished_at"] for j in mine)
        drained = [(j["started_at"] - j["submitted_at"]) * 1000 for j in mine
                   if j["started_at"] is not None]
        ok = sum(1 for j in mine if j["state"] == "succeeded")
        return {
            "fairpool_jobs": jobs,
            "fairpool_succeeded": ok,
            "fairpool_submit_s": round(submitted - start, 3),
            "fairpool_total_s": round(end - start, 3),
            "fairpool_jobs_per_s": round(jobs / (end - start), 1),
            "submit_to_running_p50_ms": round(statistics.median(latencies), 1),
            "submit_to_running_p99_ms": round(pct(latencies, 0.99), 1),
            "drain_submit_to_running_p50_ms": round(pct(drained, 0.5), 1),
            "drain_submit_to_running_p99_ms": round(pct(drained, 0.99), 1),
        }
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_slurm(jobs: int, gpus: int) -> dict[str, object]:
    env = dict(os.environ, SLURM_GPUS_PER_NODE=str(gpus))
    start = subprocess.run(["bash", str(SLURM / "start.sh")], capture_output=True, text=True,
                           env=env, timeout=900)
    if start.returncode != 0:
        raise RuntimeError(f"slurm start failed: {start.stderr[-2000:]}")
    for line in start.stdout.splitlines():  # start.sh prints `export VAR=...` lines
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.strip("'\"")
    try:
        out = subprocess.run(["bash", str(SLURM / "bench.sh")], capture_output=True, text=True,
                             env=dict(env, JOBS=str(jobs)), timeout=3600)
        if out.returncode != 0:
            raise RuntimeError(f"slurm bench failed: {out.stderr[-2000:]}")
        data = json.loads(out.stdout.strip().splitlines()[-1])
        return {"slurm_jobs_per_s": data["jobs_per_s"], "slurm_completed": data["completed"],
                "slurm_total_s": data["total_s"]}
    finally:
        subprocess.run(["bash", str(SLURM / "stop.sh")], capture_output=True, env=env,
                       timeout=300)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--submitters", type=int, default=4)
    ap.add_argument("--latency-jobs", type=int, default=100)
    ap.add_argument("--skip-slurm", action="store_true")
    args = ap.parse_args()
    result: dict[str, object] = {"gpus": args.gpus, "simulated": True}
    result.update(run_fairpool(args.jobs, args.gpus, args.submitters, args.latency_jobs))
    if args.skip_slurm:
        result.update(slurm_jobs_per_s=None, ratio=None)
    else:
        result.update(run_slurm(args.jobs, args.gpus))
        result["ratio"] = round(float(result["fairpool_jobs_per_s"])  # type: ignore[arg-type]
                                / float(result["slurm_jobs_per_s"]), 2)  # type: ignore[arg-type]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
