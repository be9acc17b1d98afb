"""What one hostile tenant can still do to the pool through legitimate API requests, measured.

    python benchmarks/tenant_abuse.py [--log-mib 300] [--readers 8] [--storm-s 5] [--rounds 5]

One fresh ``fairpool up --simulate-gpus 4`` (SQLite, local executor; submit limit 20/s, bursts
of 50 per user, the project's 5× that), a project ``p`` with researchers ``rita`` (the
attacker) and ``sam`` (a bystander in another project ``q``), and ``nobody`` (no role).

* **Token storm** (``storm_*``): rita mints 3 tokens and submits from 3 threads, one per token,
  for ``--storm-s`` seconds; ``storm_accepted_per_s`` is what got through, against
  ``storm_limit_per_s`` (the per-user rate plus the burst spread over the storm; before the
  per-user limit it was 3× the per-token rate).
* **Refusal flood** (``flood_*``): sam's submit latency, measured side by side in ``--rounds``
  alternating rounds quietly and while ``nobody`` sends refused reads (403) from 4 threads;
  ``flood_submit_p50_ms`` / ``quiet_submit_p50_ms`` is their ratio, and
  ``flood_audit_rows_per_refusal`` the audit rows written per refused request (bounded by the
  per-caller refusal throttle).
* **Log reads** (``log_*``): a finished job's log is replaced by a ``--log-mib`` MiB file
  written straight into the data directory; ``--readers`` clients read all of it at once while
  the server's resident memory is sampled (``log_rss_idle_mib``, ``log_rss_peak_mib``);
  ``log_tail_p50_ms`` is the median time of ``tail=100`` on that log (read backwards, not whole).

Prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

FINAL = {"succeeded", "failed", "cancelled"}


def say(text: str) -> None:
    print(f"tenant_abuse: {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = workdir / "pool"
        env = dict(os.environ, XDG_CONFIG_HOME=str(workdir / "cfg"), FAIRPOOL_SUBMIT_RATE="20",
                   FAIRPOOL_SUBMIT_BURST="50", FAIRPOOL_RUN_AS="server")
        self.log = (workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("fairpool")), "up", "--port", str(self.port),
             "--data-dir", str(self.data), "--simulate-gpus", "4"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    self.token = (self.data / "admin-token").read_text().strip()
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"fairpool did not start; see {workdir / 'server.log'}")

    def http(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120,
                            headers={"Authorization": f"Bearer {token or self.token}"})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def setup(server: Server) -> dict[str, str]:
    with server.http() as admin:
        admin.post("/api/v1/departments", json={"name": "d", "quota": {"gpus": 4}})
        for name in ("p", "q"):
            admin.post("/api/v1/projects", json={"name": name, "department": "d",
                                                 "quota": {"gpus": 2}}).raise_for_status()
        tokens = {}
        for user, project in (("rita", "p"), ("sam", "q"), ("nobody", None)):
            got = admin.post("/api/v1/tokens", json={"user": user})
            got.raise_for_status()
            tokens[user] = got.json()["token"]
            if project is not None:
                admin.post("/api/v1/role-bindings", json={
                    "subject": user, "role": "researcher", "scope": project}).raise_for_status()
    return tokens


JOB = {"command": ["true"], "gpus": 0, "cpus": 0.01}


def token_storm(server: Server, rita: str, seconds: float) -> dict[str, Any]:
    with server.http(rita) as c:
        minted = [c.post("/api/v1/tokens", json={"user": "rita"}).json()["token"]
                  for _ in range(3)]
    stop_at = time.time() + seconds
    # hold the jobs so that they do not run: the storm measures admission, not the executor
    body = dict(JOB, project="p", command=["sleep", "600"], gpus=4)

    def storm(token: str) -> tuple[int, int]:
        ok = refused = 0
        with server.http(token) as c:
            while time.time() < stop_at:
                r = c.post("/api/v1/jobs", json=body)
                ok += r.status_code == 201
                refused += r.status_code == 429
        return ok, refused

    start = time.time()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(storm, minted))
    took = time.time() - start
    accepted = sum(a for a, _ in results)
    with server.http() as admin:  # out of the way of what follows
        for job in admin.get("/api/v1/jobs", params={"project": "p", "limit": 10_000}).json():
            if job["state"] not in FINAL:
                admin.post(f"/api/v1/jobs/{job['id']}/cancel")
    return {"storm_tokens": 3, "storm_s": round(took, 2), "storm_accepted": accepted,
            "storm_refused_429": sum(r for _, r in results),
            "storm_accepted_per_s": round(accepted / took, 1),
            "storm_limit_per_s": round(20 + 50 / took, 1)}


def refusal_rows(server: Server) -> int:
    """How many refusals of ``nobody`` the audit log holds."""
    with server.http() as admin:
        got = admin.get("/api/v1/audit", params={"actor": "nobody", "outcome": "denied",
                                                 "limit": 10_000})
        got.raise_for_status()
        return len(got.json())


def flood(server: Server, token: str, stop: threading.Event, counts: list[int], i: int
          ) -> None:
    """Refused reads (``token`` has no role: the audit log is the admins') until ``stop``."""
    with server.http(token) as c:
        while not stop.is_set():
            assert c.get("/api/v1/audit").status_code == 403
            counts[i] += 1


def refusal_flood(server: Server, tokens: dict[str, str], rounds: int) -> dict[str, Any]:
    quiet: list[float] = []
    loud: list[float] = []
    refusals = 0
    before = refusal_rows(server)

    def sam_submits(n: int) -> list[float]:
        out = []
        with server.http(tokens["sam"]) as c:
            for _ in range(n):
                t = time.perf_counter()
                r = c.post("/api/v1/jobs", json=dict(JOB, project="q"))
                r.raise_for_status()
                out.append((time.perf_counter() - t) * 1000)
                time.sleep(0.06)  # under sam's own rate limit
        return out

    for _ in range(rounds):
        quiet += sam_submits(15)
        stop = threading.Event()
        counts = [0] * 4
        threads = [threading.Thread(target=flood, args=(server, tokens["nobody"], stop,
                                                        counts, i)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        loud += sam_submits(15)
        stop.set()
        for t in threads:
            t.join()
        refusals += sum(counts)
    written = refusal_rows(server) - before
    q, f = statistics.median(quiet), statistics.median(loud)
    return {"quiet_submit_p50_ms": round(q, 2), "flood_submit_p50_ms": round(f, 2),
            "flood_over_quiet_p50": round(f / q, 2), "flood_refusals": refusals,
            "flood_audit_rows": written,
            "flood_audit_rows_per_refusal": round(written / max(1, refusals), 4)}


def log_reads(server: Server, tokens: dict[str, str], mib: int, readers: int,
              rounds: int) -> dict[str, Any]:
    with server.http(tokens["rita"]) as c:
        job = c.post("/api/v1/jobs", json=dict(JOB, project="p")).json()
        while c.get(f"/api/v1/jobs/{job['id']}").json()["state"] not in FINAL:
            time.sleep(0.05)
    path = server.data / "logs" / f"{job['id']}.0.0.log"
    line = b"step 000000 loss 0.123456 lr 0.001 throughput 1234.5 samples/s\n"
    with path.open("wb") as f:
        block = line * (1024 * 1024 // len(line))
        for _ in range(mib):
            f.write(block)
    size = path.stat().st_size
    time.sleep(1)
    idle = rss_mib(server.proc.pid)
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(server.proc.pid))
            time.sleep(0.02)

    def read_all(_: int) -> int:
        n = 0
        with server.http(tokens["rita"]) as c, c.stream(
                "GET", f"/api/v1/jobs/{job['id']}/logs") as r:
            for chunk in r.iter_bytes():
                n += len(chunk)
        return n

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.time()
    with ThreadPoolExecutor(readers) as pool:
        got = list(pool.map(read_all, range(readers)))
    took = time.time() - start
    done.set()
    sampler.join()
    tails = []
    with server.http(tokens["rita"]) as c:
        for _ in range(rounds * 4):
            t = time.perf_counter()
            r = c.get(f"/api/v1/jobs/{job['id']}/logs", params={"tail": 100})
            tails.append((time.perf_counter() - t) * 1000)
            assert r.text.count("\n") == 100, "tail=100 did not give 100 lines"
    path.unlink()
    return {"log_mib": round(size / 2**20), "log_readers": readers,
            "log_all_read_completely": all(n == size for n in got),
            "log_read_s": round(took, 2), "log_rss_idle_mib": round(idle, 1),
            "log_rss_peak_mib": round(peak, 1),
            "log_rss_added_mib": round(peak - idle, 1),
            "log_tail_p50_ms": round(statistics.median(tails), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log-mib", type=int, default=300)
    ap.add_argument("--readers", type=int, default=8)
    ap.add_argument("--storm-s", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fairpool-abuse-"))
    server = Server(workdir)
    try:
        tokens = setup(server)
        say("token storm")
        out: dict[str, Any] = token_storm(server, tokens["rita"], args.storm_s)
        say("refusal flood")
        out |= refusal_flood(server, tokens, args.rounds)
        say("log reads")
        out |= log_reads(server, tokens, args.log_mib, args.readers, args.rounds)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
