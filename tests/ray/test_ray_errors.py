"""``fairpool up --ray-address`` with a bad address or the wrong credentials fails at start with
one line that says what to fix; with the right token it runs jobs on the secured cluster."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port, start_pool, stop_pool
from tests.e2e.test_up_errors import up

RAY = Path(sys.executable).with_name("ray")


def one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> str:
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


@pytest.mark.parametrize(("address", "words"), [
    ("not-an-address", ("invalid Ray address", "host:port")),
    ("127.0.0.1:99999", ("invalid Ray address",)),
])
def test_malformed_address(tmp_path: Path, address: str, words: tuple[str, ...]) -> None:
    one_line_error(up(tmp_path, "--port", str(free_port()), "--ray-address", address), *words)


def test_unreachable_address_fails_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    out = up(tmp_path, "--port", str(free_port()), "--ray-address", f"127.0.0.1:{free_port()}")
    one_line_error(out, "cannot reach Ray at 127.0.0.1:", "Connection refused")
    assert time.monotonic() - started < 30


def test_ray_with_simulated_gpus_is_refused(tmp_path: Path) -> None:
    out = up(tmp_path, "--port", str(free_port()), "--ray-address", "127.0.0.1:6379",
             "--simulate-gpus", "2")
    one_line_error(out, "--ray-address takes the nodes from Ray")


def test_unreadable_token_file(tmp_path: Path) -> None:
    out = up(tmp_path, "--port", str(free_port()), "--ray-address", "127.0.0.1:6379",
             "--ray-token-file", str(tmp_path / "missing"))
    one_line_error(out, "cannot read the Ray token file")


@dataclass
class SecuredHead:
    address: str
    token: str


@pytest.fixture(scope="module")
def secured_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredHead]:
    """A Ray head started the documented way with token authentication on."""
    port = free_port()
    token = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    log = (tmp_path_factory.mktemp("secured") / "ray.log").open("wb")
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
         "--include-dashboard=false", "--disable-usage-stats",
         "--object-store-memory", str(80 * 1024 * 1024)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert proc.poll() is None and time.time() < deadline, "ray start failed"
            time.sleep(0.2)
        yield SecuredHead(f"127.0.0.1:{port}", token)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does to 'ray start --block'

        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_wrong_token_is_named_at_start(tmp_path: Path, secured_head: SecuredHead) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text(uuid.uuid4().hex)
    started = time.monotonic()
    out = up(tmp_path, "--port", str(free_port()), "--ray-address", secured_head.address,
             "--ray-token-file", str(wrong))
    one_line_error(out, "rejected fairpool's credentials", "--ray-token-file")
    assert time.monotonic() - started < 30


def test_missing_token_is_named_at_start(tmp_path: Path, secured_head: SecuredHead) -> None:
    out = up(tmp_path, "--port", str(free_port()), "--ray-address", secured_head.address)
    one_line_error(out, "rejected fairpool's credentials")


def test_right_token_runs_jobs(tmp_path: Path, secured_head: SecuredHead) -> None:
    token = tmp_path / "token"
    token.write_text(secured_head.token + "\n")
    pool = start_pool(tmp_path, "--ray-address", secured_head.address, "--ray-token-file",
                      str(token), timeout=120)
    try:
        pool.cli("department", "create", "ops", "--quota-gpus", "0")
        pool.cli("project", "create", "solo", "-d", "ops", "--quota-gpus", "0")
        pool.until(lambda: len(pool.client.nodes()) == 1, timeout=60, what="the head node")
        job = pool.client.submit(project="solo", command=["sh", "-c", "echo secured-ok"])
        assert pool.wait(job.id, {"succeeded", "failed"}, timeout=120) == "succeeded"
        assert "secured-ok" in pool.client.logs(job.id)
    finally:
        stop_pool(pool)
