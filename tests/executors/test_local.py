"""LocalExecutor with real processes."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from fairpool.executors.base import NodeInfo, WorkerPhase, WorkerSpec, WorkerStatus
from fairpool.executors.gpus import local_node
from fairpool.executors.local import LocalExecutor

TIMEOUT_S = 10.0


@pytest.fixture
def ex() -> Iterator[LocalExecutor]:
    executor = LocalExecutor([local_node(4, name="n0"), local_node(2, name="n1")])
    yield executor
    executor.close()


def spec(tmp_path: Path, command: Sequence[str], worker_id: str = "j1.0.0", *,
         node: str = "n0", devices: tuple[int, ...] = (0, 1), env: dict[str, str] | None = None,
         log: str = "worker.log") -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id, job_id=worker_id.split(".")[0], attempt=0, rank=1, world_size=2,
        local_rank=0, node=node, devices=devices, command=tuple(command), env=env or {},
        master_addr="127.0.0.1", master_port=29511, log_path=str(tmp_path / "logs" / log),
    )


def wait_for(ex: LocalExecutor, worker_id: str, phase: WorkerPhase,
             seen: list[WorkerStatus] | None = None) -> WorkerStatus:
    """Poll until ``worker_id`` reports ``phase``; every status seen is appended to ``seen``."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        batch = ex.poll()
        if seen is not None:
            seen.extend(batch)
        for status in batch:
            if status.worker_id == worker_id and status.phase == phase:
                return status
        time.sleep(0.01)
    raise AssertionError(f"{worker_id} did not report {phase} within {TIMEOUT_S}s")


def wait_file(path: Path) -> str:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text()).endswith("\n"):
            return text
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written within {TIMEOUT_S}s")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(pid), f"process {pid} still alive"


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def test_nodes_is_the_inventory(ex: LocalExecutor) -> None:
    assert [n.name for n in ex.nodes()] == ["n0", "n1"]
    assert all(isinstance(n, NodeInfo) for n in ex.nodes())


def test_environment_has_devices_rendezvous_and_user_env(ex: LocalExecutor,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    s = spec(tmp_path, ["sh", "-c", 'env > "$OUT"'], devices=(2, 3),
             env={"OUT": str(out), "MY_SETTING": "x y"})
    ex.start(s)
    assert wait_for(ex, s.worker_id, WorkerPhase.EXITED).exit_code == 0
    env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env["MASTER_ADDR"] == "127.0.0.1"
    assert env["MASTER_PORT"] == "29511"
    assert env["RANK"] == "1"
    assert env["WORLD_SIZE"] == "2"
    assert env["LOCAL_RANK"] == "0"
    assert env["FAIRPOOL_WORKER_ID"] == s.worker_id
    assert env["MY_SETTING"] == "x y"
    assert env["PATH"] == os.environ["PATH"]  # the parent's environment is inherited


def test_output_appended_to_log_across_workers(ex: LocalExecutor, tmp_path: Path) -> None:
    a = spec(tmp_path, ["sh", "-c", "echo out-a; echo err-a >&2"], "a.0.0", log="shared.log")
    ex.start(a)
    wait_for(ex, "a.0.0", WorkerPhase.EXITED)
    b = spec(tmp_path, ["sh", "-c", "echo out-b; echo err-b >&2"], "b.0.0", log="shared.log")
    ex.start(b)
    wait_for(ex, "b.0.0", WorkerPhase.EXITED)
    lines = (tmp_path / "logs" / "shared.log").read_text().splitlines()
    assert lines == ["out-a", "err-a", "out-b", "err-b"]


def test_exit_codes_and_running_reported_once(ex: LocalExecutor, tmp_path: Path) -> None:
    ok = spec(tmp_path, ["sh", "-c", "exit 0"], "ok.0.0")
    bad = spec(tmp_path, ["sh", "-c", "sleep 0.2; exit 3"], "bad.0.0")
    ex.start(ok)
    ex.start(bad)
    seen: list[WorkerStatus] = []
    wait_for(ex, "ok.0.0", WorkerPhase.EXITED, seen)
    wait_for(ex, "bad.0.0", WorkerPhase.EXITED, seen)
    for _ in range(5):  # nothing more is reported
        seen.extend(ex.poll())
        time.sleep(0.01)
    by_worker = {wid: [(st.phase, st.exit_code) for st in seen if st.worker_id == wid]
                 for wid in ("ok.0.0", "bad.0.0")}
    assert by_worker["ok.0.0"] == [(WorkerPhase.RUNNING, None), (WorkerPhase.EXITED, 0)]
    assert by_worker["bad.0.0"] == [(WorkerPhase.RUNNING, None), (WorkerPhase.EXITED, 3)]


def test_start_is_idempotent(ex: LocalExecutor, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    s = spec(tmp_path, ["sh", "-c", f"echo x >> {counter}; sleep 0.3"])
    ex.start(s)
    ex.start(s)  # running, RUNNING not yet reported
    wait_for(ex, s.worker_id, WorkerPhase.RUNNING)
    ex.start(s)  # running, RUNNING reported
    wait_for(ex, s.worker_id, WorkerPhase.EXITED)
    assert counter.read_text() == "x\n"


def test_start_of_exited_unreported_worker_does_nothing(ex: LocalExecutor,
                                                        tmp_path: Path) -> None:
    counter = tmp_path / "count"
    s = spec(tmp_path, ["sh", "-c", f"echo x >> {counter}"])
    ex.start(s)
    wait_file(counter)
    time.sleep(0.1)  # let it exit, but do not poll
    ex.start(s)
    wait_for(ex, s.worker_id, WorkerPhase.EXITED)
    assert counter.read_text() == "x\n"


TRAP_TERM = """
import pathlib, signal, sys, time
def on_term(signum, frame):
    pathlib.Path(sys.argv[1]).write_text("term\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
pathlib.Path(sys.argv[2]).write_text("ready\\n")
time.sleep(60)
"""


def test_stop_graceful_exit(ex: LocalExecutor, tmp_path: Path) -> None:
    marker, ready = tmp_path / "terminated", tmp_path / "ready"
    s = spec(tmp_path, [sys.executable, "-c", TRAP_TERM, str(marker), str(ready)])
    ex.start(s)
    wait_file(ready)
    ex.stop(s.worker_id, grace_s=30)
    status = wait_for(ex, s.worker_id, WorkerPhase.EXITED)
    assert status.exit_code == 0
    assert marker.read_text() == "term\n"


IGNORE_TERM = """
import pathlib, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "60"])  # inherits SIG_IGN for TERM
pathlib.Path(sys.argv[1]).write_text(f"{child.pid}\\n")
time.sleep(60)
"""


def test_stop_kills_ignoring_worker_and_its_group(ex: LocalExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    s = spec(tmp_path, [sys.executable, "-c", IGNORE_TERM, str(pidfile)])
    ex.start(s)
    grandchild = int(wait_file(pidfile))
    try:
        t0 = time.monotonic()
        ex.stop(s.worker_id, grace_s=0.5)
        ex.stop(s.worker_id, grace_s=30)  # a later stop keeps the earliest deadline
        status = wait_for(ex, s.worker_id, WorkerPhase.EXITED)
        assert status.exit_code == -signal.SIGKILL
        assert time.monotonic() - t0 >= 0.5
        wait_gone(grandchild)
    finally:
        kill_quietly(grandchild)


def test_missing_executable_reports_127(ex: LocalExecutor, tmp_path: Path) -> None:
    s = spec(tmp_path, ["/nonexistent/fairpool-no-such-binary", "--flag"])
    ex.start(s)  # does not raise
    status = wait_for(ex, s.worker_id, WorkerPhase.EXITED)
    assert status.exit_code == 127
    assert "fairpool-no-such-binary" in status.detail
    assert "fairpool-no-such-binary" in (tmp_path / "logs" / "worker.log").read_text()


def test_not_executable_reports_126(ex: LocalExecutor, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    if os.access(script, os.X_OK):  # root may execute anything
        pytest.skip("running with permissions that bypass the execute bit")
    s = spec(tmp_path, [str(script)])
    ex.start(s)
    assert wait_for(ex, s.worker_id, WorkerPhase.EXITED).exit_code == 126


def test_unknown_node_rejected(ex: LocalExecutor, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nowhere"):
        ex.start(spec(tmp_path, ["true"], node="nowhere"))


def test_stop_of_unknown_worker_is_ignored(ex: LocalExecutor) -> None:
    ex.stop("no-such-worker", grace_s=1)
    assert ex.poll() == []


def test_close_leaves_workers_running(tmp_path: Path) -> None:
    ex = LocalExecutor([local_node(0, name="n0")])
    pidfile = tmp_path / "pid"
    s = spec(tmp_path, ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"], devices=())
    ex.start(s)
    pid = int(wait_file(pidfile))
    try:
        ex.close()
        time.sleep(0.1)
        assert alive(pid)
    finally:
        kill_quietly(pid)
    wait_gone(pid)
