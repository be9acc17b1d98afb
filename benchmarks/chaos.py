"""Chaos: 500 jobs while the server is killed with SIGKILL and workers are killed at random.

    python benchmarks/chaos.py                       # 500 jobs, 8 simulated GPUs
    python benchmarks/chaos.py --jobs 100 --gpus 4   # smaller

Every job writes markers of its own (start, heartbeat, end, per attempt), so the benchmark
checks from the workers' side that no job ran twice at the same time. A few jobs are made to
fail on purpose ("failed as expected"); the others have retries, so a killed worker is retried.
Prints JSON: submitted, completed, failed_expected, failed_unexpected, lost,
concurrent_duplicates, recovery_s_median, recovery_s_max, server_kills, worker_kills,
wall_s.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

WORKER = """
import os, sys, time
d, seconds, code = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
name = os.path.join(d, os.environ["FAIRPOOL_JOB_ID"] + "." + os.environ["FAIRPOOL_ATTEMPT"])
with open(name + ".start", "x") as f:
    f.write(repr(time.time()))
with open(name + ".pid", "w") as f:
    f.write(str(os.getpid()))
end = time.time() + seconds
while time.time() < end:
    with open(name + ".beat", "w") as f:
        f.write(repr(time.time()))
    time.sleep(0.05)
with open(name + ".end", "w") as f:
    f.write(repr(time.time()))
sys.exit(code)
"""
FINAL = {"succeeded", "failed", "cancelled"}


class Server:
    def __init__(self, work: Path, gpus: int) -> None:
        with contextlib.closing(__import__("socket").socket()) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.work = work
        self.args = [str(Path(sys.executable).with_name("fairpool")), "up", "--port",
                     str(self.port), "--data-dir", str(work / "pool"), "--simulate-gpus",
                     str(gpus), "--grace", "2"]
        self.env = dict(os.environ, XDG_CONFIG_HOME=str(work / "cfg"), FAIRPOOL_SUBMIT_RATE="0",
                        FAIRPOOL_RETRY_BACKOFF_S="0.5",
                        # its jobs run this interpreter from a private temporary directory,
                        # which a job's own account could not reach: jobs as the server's
                        FAIRPOOL_RUN_AS="server")
        self.proc = self._launch()
        token = (work / "pool" / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})

    def _launch(self) -> subprocess.Popen[bytes]:
        log = (self.work / "server.log").open("ab")
        proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return proc
            time.sleep(0.05)
        raise RuntimeError(f"fairpool did not start; see {self.work / 'server.log'}")

    def crash(self) -> float:
        """SIGKILL, restart; seconds until it serves again and answers a job listing."""
        self.proc.kill()
        self.proc.wait(10)
        began = time.time()
        self.proc = self._launch()
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/api/v1/jobs", params={"limit": 1}).status_code == 200:
                    return time.time() - began
            time.sleep(0.05)

    def jobs(self) -> list[dict[str, Any]]:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                resp = self.http.get("/api/v1/jobs", params={"limit": 10_000})
                if resp.status_code == 200:
                    return list(resp.json())
            time.sleep(0.2)
        raise RuntimeError("the server does not answer")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def kill_a_worker(markers: Path, rng: random.Random) -> bool:
    """SIGKILL a worker that is running now (its heartbeat is fresh and it has not ended)."""
    now = time.time()
    running = []
    for beat in markers.glob("*.beat"):
        base = str(beat)[:-5]
        with contextlib.suppress(OSError, ValueError):
            if not Path(base + ".end").exists() and now - float(beat.read_text()) < 0.5:
                running.append(int(Path(base + ".pid").read_text()))
    if not running:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(rng.choice(running), signal.SIGKILL)
        return True
    return False


def overlaps(markers: Path, job_id: str, attempts: int) -> bool:
    spans = []
    for attempt in range(attempts + 1):
        base = markers / f"{job_id}.{attempt}"
        with contextlib.suppress(OSError, ValueError):
            start = float(Path(f"{base}.start").read_text())
            last = Path(f"{base}.end") if Path(f"{base}.end").exists() else Path(f"{base}.beat")
            spans.append((start, float(last.read_text()) if last.exists() else start))
    spans.sort()
    return any(s2 < e1 for (_, e1), (s2, _) in itertools.pairwise(spans))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--chaos-s", type=float, default=180.0, help="how long to keep killing")
    ap.add_argument("--fail-share", type=float, default=0.05, help="jobs meant to fail")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fairpool-chaos-"))
    markers = work / "markers"
    markers.mkdir()
    server = Server(work, args.gpus)
    began = time.time()
    try:
        server.http.post("/api/v1/departments", json={"name": "chaos",
                                                      "quota": {"gpus": args.gpus}})
        for name in ("alpha", "beta"):
            server.http.post("/api/v1/projects", json={
                "name": name, "department": "chaos", "quota": {"gpus": args.gpus / 2}})
        meant_to_fail = set()
        for i in range(args.jobs):
            fail = rng.random() < args.fail_share
            body = {"project": ("alpha", "beta")[i % 2], "gpus": 1, "client_key": f"c{i}",
                    "max_retries": 0 if fail else 5,
                    "command": [sys.executable, "-c", WORKER, str(markers),
                                f"{rng.uniform(0.5, 3.0):.2f}", "3" if fail else "0"]}
            job = server.http.post("/api/v1/jobs", json=body).json()
            if fail:
                meant_to_fail.add(job["id"])
        recoveries: list[float] = []
        worker_kills = 0
        deadline = time.time() + args.chaos_s
        while time.time() < deadline:
            time.sleep(rng.uniform(3.0, 8.0))
            if all(j["state"] in FINAL for j in server.jobs()):
                break
            if rng.random() < 0.5:
                recoveries.append(server.crash())
            elif kill_a_worker(markers, rng):
                worker_kills += 1
        settle = time.time() + 600
        while time.time() < settle and not all(j["state"] in FINAL for j in server.jobs()):
            time.sleep(1.0)
        jobs = {j["id"]: j for j in server.jobs()}
        wall = time.time() - began
    finally:
        server.stop()
    final = {i: j for i, j in jobs.items() if j["state"] in FINAL}
    failed = {i for i, j in final.items() if j["state"] == "failed"}
    print(json.dumps({
        "submitted": args.jobs,
        "completed": sum(1 for j in final.values() if j["state"] == "succeeded"),
        "failed_expected": len(failed & meant_to_fail),
        "failed_unexpected": len(failed - meant_to_fail),
        "lost": args.jobs - len(final),
        "concurrent_duplicates": sum(1 for i, j in jobs.items()
                                     if overlaps(markers, i, j["attempt"])),
        "recovery_s_median": round(statistics.median(recoveries), 3) if recoveries else None,
        "recovery_s_max": round(max(recoveries), 3) if recoveries else None,
        "server_kills": len(recoveries),
        "worker_kills": worker_kills,
        "retries": sum(j["retries"] for j in jobs.values()),
        "gpus": args.gpus,
        "wall_s": round(wall, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
