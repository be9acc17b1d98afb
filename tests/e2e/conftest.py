"""A real ``fairpool up`` process per test module, with simulated GPUs, driven over REST."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from fairpool.client import Client, FairpoolError
from fairpool.schemas.jobs import JobOut

BIN = Path(sys.executable).with_name("fairpool")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pool:
    url: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    client: Client
    token: str  # the first start's admin token
    args: list[str] = field(default_factory=list)  # how it was started

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``fairpool ARGS`` against this pool; ``env`` adds to its environment (COLUMNS)."""
        out = subprocess.run([str(BIN), *args], env={**self.env, **(env or {})},
                             capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise AssertionError(f"fairpool {' '.join(args)} failed: {out.stderr}")
        return out

    def wait(self, job_id: str, states: set[str], timeout: float = 60.0) -> str:
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state = self.client.job(job_id).state
            if state in states:
                return state
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} is {state}, not {states} after {timeout}s")

    def until(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or check}")


def start_pool(tmp: Path, *extra: str, db: str | None = None, timeout: float = 30.0,
               tls_cert: Path | None = None, env_extra: dict[str, str] | None = None,
               isolated: bool = False) -> Pool:
    """A ``fairpool up`` process; with ``tls_cert`` (and ``--tls-cert``/``--tls-key`` among
    ``extra``) it serves HTTPS on localhost and clients trust that certificate.

    Jobs run as the server's own account unless ``isolated``: these tests' jobs run this
    interpreter and scripts in pytest's private temporary directories, which a job's own
    account could not reach (tests/isolation runs the defaults)."""
    port = free_port()
    url = (f"https://localhost:{port}" if tls_cert is not None else f"http://127.0.0.1:{port}")
    env = dict(os.environ)
    env.update(XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
               FAIRPOOL_URL=url, COLUMNS="200", **(env_extra or {}))
    if not isolated:
        env.setdefault("FAIRPOOL_RUN_AS", "server")
    args = [str(BIN), "up", "--port", str(port), "--data-dir", str(tmp / "pool"),
            "--grace", "3", *extra]
    if db is not None:
        args += ["--db", db]
    verify: ssl.SSLContext | bool = True
    if tls_cert is not None:
        verify = ssl.create_default_context(cafile=str(tls_cert))
    proc = launch(tmp, args, env, url, verify, timeout)
    token = (tmp / "pool" / "admin-token").read_text().strip()
    ca = None if tls_cert is None else str(tls_cert)
    pool = Pool(url, tmp / "pool", env, proc, Client(url, token=token, ca=ca), token)
    pool.args = args
    return pool


def launch(tmp: Path, args: list[str], env: dict[str, str], url: str,
           verify: ssl.SSLContext | bool = True, timeout: float = 30.0
           ) -> subprocess.Popen[bytes]:
    """Start ``fairpool up`` (its output appended to tmp/server.log) and wait until it serves."""
    log = (tmp / "server.log").open("ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(url + "/health", timeout=1, verify=verify).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not come up")


def crash_and_restart(pool: Pool) -> float:
    """kill -9 the server (its control loop dies with it; workers live on), start it again on
    the same data and port; returns the seconds until it served again."""
    pool.proc.kill()
    pool.proc.wait(10)
    began = time.time()
    pool.proc = launch(pool.data_dir.parent, pool.args, pool.env, pool.url, timeout=60)
    return time.time() - began


def reclaimed_borrowers(pool: Pool, borrowers: list[JobOut], claimer: str, count: int
                        ) -> list[JobOut]:
    """The borrowers a reclaim by ``claimer`` requeued: exactly ``count`` of them, each told
    with SIGTERM, and with events saying who reclaimed and that it was requeued."""
    requeued = [j for j in borrowers if pool.client.job(j.id).attempt == 1]
    assert len(requeued) == count
    for job in requeued:
        assert "got SIGTERM" in pool.client.logs(job.id, attempt=0)
        events = pool.client.events(job.id)
        assert any(f"reclaimed by project {claimer}" in e.message for e in events)
        assert any(e.kind == "requeued" for e in events)
    return requeued


def stop_pool(pool: Pool) -> None:
    for job in pool.client.jobs(limit=10_000):
        if job.state in ("queued", "requeued", "admitted", "starting", "running"):
            with contextlib.suppress(FairpoolError):  # it may finish meanwhile
                pool.client.cancel(job.id)
    deadline = time.time() + 15
    while time.time() < deadline and any(
        j.state in ("starting", "running") for j in pool.client.jobs(limit=10_000)
    ):
        time.sleep(0.1)
    pool.client.close()
    pool.proc.send_signal(signal.SIGINT)
    try:
        pool.proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(pool.proc.pid, signal.SIGKILL)


def research_pool(tmp: Path) -> Iterator[Pool]:
    """4 simulated GPUs; department research (quota 4) with projects vision and nlp (2 each)."""
    p = start_pool(tmp, "--simulate-gpus", "4")
    try:
        p.cli("department", "create", "research", "--quota-gpus", "4")
        p.cli("project", "create", "vision", "-d", "research", "--quota-gpus", "2")
        p.cli("project", "create", "nlp", "-d", "research", "--quota-gpus", "2")
        yield p
    finally:
        stop_pool(p)


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    yield from research_pool(tmp_path_factory.mktemp("pool"))
