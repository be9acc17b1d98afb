"""End-to-end throughput: trivial jobs (``true``) through the REST API, the scheduler and the
local executor, side by side with Slurm on the same machine; and the cost of the sandbox.

    python benchmarks/throughput.py [--jobs 2000] [--gpus 8] [--submitters 4] [--skip-slurm]
        [--container-jobs 100] [--rounds 3] [--skip-isolation] [--skip-container]
    python benchmarks/throughput.py --array [--array-tasks 10000] [--slurm-array-tasks N]
        [--rounds 3] [--gpus 8] [--skip-slurm]

``--array`` measures only job arrays (benchmarks/array_drain.py says how).

fairpool: a fresh ``fairpool up --simulate-gpus 8`` (SQLite, local executor, the default sandbox:
on a root server each job isolated); ``--jobs`` 1-GPU
jobs are submitted over REST by ``--submitters`` threads; the drain rate is jobs / (first submit
→ last job finished). Submit → running latency is measured twice: for the drain (queueing
included) and, the headline, with free capacity (jobs submitted one at a time on an idle pool).
Slurm: ../shared/peers/slurm (slurmctld + slurmd, 8 fake GPUs), ``sbatch --gres=gpu:1 --wrap
true`` for the same number of jobs.

Isolation (``isolated_*`` against ``unisolated_*``): two more servers, run side by side, one with
isolation off (``FAIRPOOL_RUN_AS=server FAIRPOOL_CGROUPS=false``), one with the defaults (on a
root server: a transient uid, a cgroup and bubblewrap per worker); both run ``/bin/true`` in a
directory every account can search. ``isolation_added_p50_ms`` is the difference of their
submit → running medians (free capacity), ``isolation_added_to_finished_p50_ms`` that of their
submit → finished medians (what bubblewrap and setpriv cost the command's own start).

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


# -- the sandbox's cost ----------------------------------------------------------------------

@contextlib.contextmanager
def busybox_image(work: Path, env: Mapping[str, str]) -> Iterator[str]:
    """A tiny OCI image (Debian's static busybox, ``podman import``ed: no registry needed) in
    root's podman storage; removed afterwards."""
    image = f"localhost/fairpool-bench-busybox:{os.getpid()}"
    root = work / "rootfs"
    (root / "bin").mkdir(parents=True)
    for name in ("etc", "tmp", "proc", "sys", "dev"):
        (root / name).mkdir()
    os.chmod(root / "tmp", 0o1777)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "true"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    subprocess.run(["tar", "-C", str(root), "-cf", str(work / "rootfs.tar"), "."], check=True)
    subprocess.run(["podman", "import", "--change", "ENV PATH=/bin", "--change",
                    'CMD ["/bin/sh"]', str(work / "rootfs.tar"), image], check=True,
                   env=dict(env), capture_output=True)
    try:
        yield image
    finally:
        subprocess.run(["podman", "rmi", "-f", image], env=dict(env), capture_output=True)


def podman_run_true(image: str, env: Mapping[str, str]) -> float:
    """Wall time (ms) of one ``podman run --rm IMAGE true`` with the flags of fairpool's own
    (no pull, the host's network, the output passed through)."""
    began = time.perf_counter()
    subprocess.run(["podman", "run", "--rm", "--pull=never", "--network=host",
                    "--log-driver=passthrough", image, "true"], check=True, env=dict(env),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - began) * 1000


class Mode:
    """One way of running the trivial job: a server and the job's body; its samples."""

    #: how often a sample's job is looked at: the timestamps are the server's, so this only
    #: sets how much of the machine the looking takes from the job (2 cores are few)
    POLL_S = 0.1

    def __init__(self, name: str, server: Server, body: dict[str, Any]) -> None:
        self.name, self.server, self.body = name, server, body
        self.http = httpx.Client(base_url=server.url, timeout=60, headers=server.headers)
        self.running: list[float] = []  # submit → running, ms (free capacity)
        self.finished: list[float] = []  # submit → finished, ms
        self.run: list[float] = []  # running → finished, ms
        self.rates: list[float] = []  # drain rate of each round, jobs/s
        self.drained: list[float] = []  # submit → running in the drains, ms
        self.jobs = self.succeeded = 0
        self.failures: list[str] = []

    def one(self) -> dict[str, Any]:
        """Submit one job on an idle pool and wait for its end (the timestamps are the
        server's, so the poll's pace does not count); then for the worker's cleanup."""
        job = self.http.post("/api/v1/jobs", json=self.body).json()
        while True:
            got: dict[str, Any] = self.http.get(f"/api/v1/jobs/{job['id']}").json()
            if got["state"] in FINAL:
                break
            time.sleep(self.POLL_S)
        if got["state"] != "succeeded" and len(self.failures) < 3:
            self.failures.append(f"{got['state']}: {got.get('exit_code')}")
        self.settle()
        return got

    def settle(self, timeout: float = 10) -> None:
        """Wait for the container cleanup (``podman rm``, run after the job has ended) so that
        it does not weigh on the next sample: the worker's env file goes once it is done."""
        run = self.server.data_dir / "run"
        deadline = time.time() + timeout
        while self.body.get("image") and any(run.glob("*.env")) and time.time() < deadline:
            time.sleep(0.01)

    def sample(self) -> None:
        got = self.one()
        if got["started_at"] is None or got["finished_at"] is None:
            return
        self.running.append((got["started_at"] - got["submitted_at"]) * 1000)
        self.finished.append((got["finished_at"] - got["submitted_at"]) * 1000)
        self.run.append((got["finished_at"] - got["started_at"]) * 1000)

    def drain_round(self, jobs: int, submitters: int) -> None:
        start, _, mine = drain(self.server.url, jobs, submitters, body=self.body,
                               headers=self.server.headers)
        self.settle(60)
        end = max(j["finished_at"] or start for j in mine)
        self.rates.append(jobs / (end - start))
        self.drained += [(j["started_at"] - j["submitted_at"]) * 1000 for j in mine
                         if j["started_at"] is not None]
        self.jobs += jobs
        self.succeeded += sum(1 for j in mine if j["state"] == "succeeded")

    def isolation(self) -> str:
        nodes = self.http.get("/api/v1/nodes").json()
        levels = {(n.get("isolation") or {}).get("level") for n in nodes}
        return ",".join(sorted(str(level) for level in levels))

    def result(self) -> dict[str, object]:
        n = self.name
        out: dict[str, object] = {
            f"{n}_isolation": self.isolation(),
            f"{n}_samples": len(self.running),
            f"{n}_submit_to_running_p50_ms": round(pct(self.running, 0.5), 1),
            f"{n}_submit_to_running_p99_ms": round(pct(self.running, 0.99), 1),
            f"{n}_submit_to_finished_p50_ms": round(pct(self.finished, 0.5), 1),
            f"{n}_submit_to_finished_p99_ms": round(pct(self.finished, 0.99), 1),
        }
        if n == "container":
            out[f"{n}_run_p50_ms"] = round(pct(self.run, 0.5), 1)
        out.update({
            f"{n}_jobs": self.jobs,
            f"{n}_succeeded": self.succeeded,
            f"{n}_drain_jobs_per_s": round(statistics.median(self.rates), 1) if self.rates
            else None,
            f"{n}_drain_submit_to_running_p50_ms": round(pct(self.drained, 0.5), 1),
            f"{n}_drain_submit_to_running_p99_ms": round(pct(self.drained, 0.99), 1),
        })
        if self.failures:
            out[f"{n}_failures"] = self.failures
        return out


def run_sandbox(jobs: int, gpus: int, submitters: int, latency_jobs: int, container_jobs: int,
                rounds: int, isolation: bool, container: bool) -> dict[str, object]:
    """Isolation off against the defaults, and a container job against ``podman run``."""
    work = Path(tempfile.mkdtemp(prefix="fairpool-bench-"))
    # the jobs' working directory: every account must reach it (a transient uid's job does)
    jobdir = Path(tempfile.mkdtemp(prefix="fairpool-bench-jobs-"))
    os.chmod(jobdir, 0o755)
    clean = {k: v for k, v in os.environ.items() if k not in SANDBOX_VARS}
    podman_env = {"PATH": ROOT_PATH, "HOME": os.environ.get("HOME", "/root"),
                  "CONTAINERS_CONF": str(work / "containers.conf")}
    servers: list[Server] = []
    modes: list[Mode] = []
    try:
        with contextlib.ExitStack() as stack:
            image = None
            if container:
                from fairpool.executors.sandbox.commands import PODMAN_CONF

                (work / "containers.conf").write_text(PODMAN_CONF)
                (work / "image").mkdir()
                image = stack.enter_context(busybox_image(work / "image", podman_env))
            body = {"project": "p", "command": ["/bin/true"], "gpus": 1, "workdir": str(jobdir)}
            up = ["--simulate-gpus", str(gpus)]

            def server(name: str, env: dict[str, str]) -> Server:
                (work / name).mkdir()
                s = Server(up, work / name, env=env)
                servers.append(s)
                make_project(s.url, gpus, s.headers)
                return s

            default: Server | None = None
            if isolation:
                off = server("unisolated", dict(clean, FAIRPOOL_RUN_AS="server",
                                                FAIRPOOL_CGROUPS="false"))
                modes.append(Mode("unisolated", off, body))
            if isolation or container:
                env = dict(clean)
                if container:
                    env.update(FAIRPOOL_IMAGE_PULL="never",
                               CONTAINERS_CONF=podman_env["CONTAINERS_CONF"])
                default = server("isolated", env)
                if isolation:
                    modes.append(Mode("isolated", default, body))
            boxed: Mode | None = None
            if container and default is not None and image is not None:
                boxed = Mode("container", default, dict(body, image=image))
                modes.append(boxed)
            raw: list[float] = []
            container_samples = min(latency_jobs, container_jobs)

            # warm up: a first job of each (imports, the image's presence, podman's storage)
            for mode in modes:
                mode.one()
            if image is not None:
                podman_run_true(image, podman_env)

            # 1. latency with free capacity: one job at a time, each kind in turn
            say(f"latency: {latency_jobs} samples of {', '.join(m.name for m in modes)}"
                + (f" ({container_samples} of the container and of podman run)" if boxed
                   else ""))
            for i in range(latency_jobs):
                kinds: list[Mode | None] = [m for m in modes if m is not boxed or
                                            i < container_samples]
                if image is not None and i < container_samples:
                    kinds.append(None)  # podman run, directly
                shift = i % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    if kind is None:
                        assert image is not None
                        raw.append(podman_run_true(image, podman_env))
                    else:
                        kind.sample()

            # 2. drains, in rounds, the order rotating
            for r in range(rounds):
                say(f"drain round {r + 1}/{rounds}")
                shift = r % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    total = container_jobs if mode is boxed else jobs
                    n = total // rounds + (1 if r < total % rounds else 0)
                    if n:
                        mode.drain_round(n, submitters)

            result: dict[str, object] = {"sandbox_rounds": rounds}
            for mode in modes:
                result.update(mode.result())
            if isolation:
                bare, isolated = modes[0], modes[1]
                result["isolation_added_p50_ms"] = round(
                    pct(isolated.running, 0.5) - pct(bare.running, 0.5), 1)
                result["isolation_added_to_finished_p50_ms"] = round(
                    pct(isolated.finished, 0.5) - pct(bare.finished, 0.5), 1)
            if boxed is not None:
                result.update({
                    "podman_run_true_p50_ms": round(pct(raw, 0.5), 1),
                    "podman_run_true_p99_ms": round(pct(raw, 0.99), 1),
                    "container_added_over_podman_p50_ms": round(
                        pct(boxed.finished, 0.5) - pct(raw, 0.5), 1),
                })
            return result
    finally:
        for mode in modes:
            mode.http.close()
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(jobdir, ignore_errors=True)


def run_slurm(jobs: int, gpus: int, array: bool = False) -> dict[str, object]:
    """Slurm's bench.sh: ``jobs`` sbatch calls, or (``array``) one job array of ``jobs``."""
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
                             env=dict(env, JOBS=str(jobs), ARRAY="1" if array else "0"),
                             timeout=3600)
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
    ap.add_argument("--container-jobs", type=int, default=100,
                    help="jobs of the container drain (and at most as many latency samples)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds the isolation and container drains are split into")
    ap.add_argument("--skip-isolation", action="store_true")
    ap.add_argument("--skip-container", action="store_true")
    ap.add_argument("--array", action="store_true",
                    help="only the job-array drain (benchmarks/array_drain.py)")
    ap.add_argument("--array-tasks", type=int, default=10_000)
    ap.add_argument("--slurm-array-tasks", type=int, default=None,
                    help="tasks of Slurm's array [default: --array-tasks]")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.array:
        from array_drain import run_array  # beside this file, on sys.path when run as a script
        slurm = None if args.skip_slurm else (args.slurm_array_tasks or args.array_tasks)
        print(json.dumps(run_array(args.array_tasks, args.gpus, args.rounds, slurm)))
        return
    container = not args.skip_container
    if container and (shutil.which("podman") is None or not os.path.exists(BUSYBOX)):
        say(f"no container run: podman or {BUSYBOX} (busybox-static) missing")
        container = False
    result: dict[str, object] = {"gpus": args.gpus, "simulated": True}
    say(f"fairpool: {args.jobs} jobs")
    result.update(run_fairpool(args.jobs, args.gpus, args.submitters, args.latency_jobs))
    if not args.skip_isolation or container:
        result.update(run_sandbox(args.jobs, args.gpus, args.submitters, args.latency_jobs,
                                  args.container_jobs, args.rounds, not args.skip_isolation,
                                  container))
    if args.skip_slurm:
        result.update(slurm_jobs_per_s=None, ratio=None)
    else:
        say(f"slurm: {args.jobs} jobs")
        result.update(run_slurm(args.jobs, args.gpus))
        result["ratio"] = round(float(result["fairpool_jobs_per_s"])  # type: ignore[arg-type]
                                / float(result["slurm_jobs_per_s"]), 2)  # type: ignore[arg-type]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
