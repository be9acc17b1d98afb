"""The worker host's logic without Ray (the actor class is a plain class)."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from fairpool.executors.ray.host import WorkerHost


def drain(host: WorkerHost, wid: str) -> tuple[bytes, int]:
    out = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data, code, _ = host.next(wid, 0.5)
        out += data
        if code is not None:
            return out, code
    raise AssertionError("no exit")


def test_next_is_idempotent_once_exited() -> None:
    host = WorkerHost()
    started = host.run("a.0.0", ["sh", "-c", "echo hello; exit 4"], {}, None)
    assert "pid" in started
    assert host.run("a.0.0", ["true"], {}, None)["pid"] == started["pid"]  # idempotent
    assert drain(host, "a.0.0") == (b"hello\n", 4)
    assert host.next("a.0.0", 0.1) == (b"", 4, False)  # a lost answer, asked again
    host.stop("a.0.0", 0)  # a late stop changes nothing
    assert host.next("a.0.0", 0.1) == (b"", 4, False)
    host.run("b.0.0", ["true"], {}, None)  # the next worker: the old one is forgotten
    assert drain(host, "b.0.0") == (b"", 0)


def test_stop_before_run_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    host = WorkerHost()
    host.stop("c.0.0", 5)
    assert host.run("c.0.0", ["true"], {}, None)["code"] == -signal.SIGTERM
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Ray sets in an actor that has no CPUs
    script = "import os; print(os.environ.get('OMP_NUM_THREADS'), os.environ['MASTER_PORT'])"
    host.run("d.0.0", [sys.executable, "-c", script], {"MASTER_PORT": "0"}, None)
    out, code = drain(host, "d.0.0")
    omp, port = out.decode().split()
    assert code == 0 and int(port) > 0 and omp == "None"
    host.run("e.0.0", [sys.executable, "-c", script], {"MASTER_PORT": "5", "OMP_NUM_THREADS": "1"},
             None)
    assert drain(host, "e.0.0") == (b"1 5\n", 0)  # the job's own setting is kept
