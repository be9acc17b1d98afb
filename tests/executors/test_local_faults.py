"""Whose fault a local worker's end is, as the node circuit breaker reads it (real processes,
with and without the supervisor): the job's own command or signals, the executor's stops, and
the machine's for a supervisor that ends unrecorded only where the job could not have killed it."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairpool.executors.base import Failure, WorkerPhase
from fairpool.executors.gpus import local_node
from fairpool.executors.local import LocalExecutor
from tests.executors.test_local import kill_quietly, spec, wait_file, wait_for


@pytest.fixture(params=["plain", "supervised"])
def ex(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalExecutor]:
    state = tmp_path / "state" if request.param == "supervised" else None
    executor = LocalExecutor([local_node(2, name="n0")], state_dir=state)
    yield executor
    executor.close()


def ended(ex: LocalExecutor, tmp_path: Path, command: list[str], wid: str) -> Failure | None:
    s = spec(tmp_path, command, wid, devices=())
    ex.start(s)
    return wait_for(ex, s.worker_id, WorkerPhase.EXITED).fault()


def test_the_jobs_own_failures_are_the_jobs(ex: LocalExecutor, tmp_path: Path) -> None:
    assert ended(ex, tmp_path, ["/nonexistent/no-such-binary"], "a.0.0") == Failure.COMMAND
    assert ended(ex, tmp_path, ["sh", "-c", "no-such-command-here"], "b.0.0") == (
        Failure.COMMAND)
    assert ended(ex, tmp_path, ["sh", "-c", "kill -9 $$"], "c.0.0") == Failure.SIGNAL
    assert ended(ex, tmp_path, [sys.executable, "-c", "import os, signal; "
                                "os.kill(os.getpid(), signal.SIGSEGV)"], "d.0.0") == (
        Failure.SIGNAL)
    assert ended(ex, tmp_path, ["sh", "-c", "exit 3"], "e.0.0") == Failure.EXIT
    assert ended(ex, tmp_path, ["true"], "f.0.0") is None


def test_a_stop_is_the_executors(ex: LocalExecutor, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    s = spec(tmp_path, ["sh", "-c", f"echo ok > {ready}; exec sleep 60"], "g.0.0", devices=())
    ex.start(s)
    wait_file(ready)
    ex.stop(s.worker_id, grace_s=30)
    status = wait_for(ex, s.worker_id, WorkerPhase.EXITED)
    assert status.exit_code == -signal.SIGTERM and status.fault() == Failure.STOPPED


def test_an_unrecorded_supervisor_end_is_not_the_machines_when_the_job_shares_its_account(
        tmp_path: Path) -> None:
    """A job running as the server's account can kill its own supervisor (``kill -9 0``): that
    must not read as a lost worker, which would count against the node."""
    ex = LocalExecutor([local_node(2, name="n0")], state_dir=tmp_path / "state")
    pidfile = tmp_path / "pid"
    s = spec(tmp_path, ["sh", "-c", f"echo $$ > {pidfile}; sleep 60"], "h.0.0", devices=())
    ex.start(s)
    pid = int(wait_file(pidfile))
    try:
        group = os.getpgid(pid)
        assert group != pid  # the supervisor leads the group
        os.killpg(group, signal.SIGKILL)  # what `kill -9 0` in the job does
        status = wait_for(ex, s.worker_id, WorkerPhase.EXITED)
        assert status.exit_code == -signal.SIGKILL and status.fault() == Failure.SIGNAL
    finally:
        kill_quietly(pid)
        ex.close()
