"""The cap on a worker's log, with real processes and files: the local executor's copier (also
across an executor restart), the Ray executor's :class:`CappedLog`, and reading the last lines
of a log backwards (:func:`fairpool.api.logs.tail_start`)."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from fairpool.api.logs import CHUNK, tail_start
from fairpool.executors import logcap
from fairpool.executors.base import WorkerPhase, WorkerStatus
from fairpool.executors.gpus import local_node
from fairpool.executors.local import LocalExecutor
from tests.executors.test_local import spec, wait_file

CAP = 10_000
NODES = [local_node(2, name="n0")]
MARKER = ("\n" + logcap.marker(CAP) + "\n").encode()


def statuses(ex: LocalExecutor, wid: str, phase: WorkerPhase, timeout: float = 20
             ) -> list[WorkerStatus]:
    """Every report of ``wid`` until one in ``phase``."""
    seen: list[WorkerStatus] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen += [s for s in ex.poll() if s.worker_id == wid]
        if any(s.phase == phase for s in seen):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"{wid}: no {phase} in {seen}")


def writer(nbytes: int, then: str = "") -> list[str]:
    """A worker writing ``nbytes`` of numbered lines, then running ``then``."""
    return [sys.executable, "-c", f"import sys, time\nout = ''.join(f'{{i:09d}}\\n' for i in "
            f"range({nbytes // 10}))\nsys.stdout.write(out)\nsys.stdout.flush()\n{then}"]


@pytest.mark.parametrize("supervised", [False, True])
def test_a_worker_past_the_cap_runs_to_its_end_with_its_log_capped(
        tmp_path: Path, supervised: bool) -> None:
    ex = LocalExecutor(NODES, state_dir=tmp_path / "run" if supervised else None,
                       log_max_bytes=CAP)
    try:
        big = spec(tmp_path, writer(50_000, "sys.exit(3)"), "big.0.0", log="big.log")
        ex.start(big)
        seen = statuses(ex, big.worker_id, WorkerPhase.EXITED)
        assert seen[-1].exit_code == 3  # its own end, not the cap's
        assert [s.log_truncated for s in seen if s.log_truncated is not None] == [CAP]
        data = Path(big.log_path).read_bytes()
        assert data == b"".join(b"%09d\n" % i for i in range(1000)) + MARKER
        small = spec(tmp_path, writer(CAP), "small.0.0", log="small.log")  # exactly the cap
        ex.start(small)
        seen = statuses(ex, small.worker_id, WorkerPhase.EXITED)
        assert seen[-1].exit_code == 0
        assert all(s.log_truncated is None for s in seen)
        assert Path(small.log_path).read_bytes() == b"".join(b"%09d\n" % i for i in range(1000))
    finally:
        ex.close()


def test_a_running_worker_is_reported_truncated_at_once(tmp_path: Path) -> None:
    ex = LocalExecutor(NODES, log_max_bytes=CAP)
    try:
        w = spec(tmp_path, writer(30_000, "time.sleep(60)"))
        ex.start(w)
        deadline = time.time() + 10
        seen: list[WorkerStatus] = []
        while not any(s.log_truncated for s in seen) and time.time() < deadline:
            seen += ex.poll()
            time.sleep(0.05)
        cut = [s for s in seen if s.log_truncated is not None]
        assert [(s.phase, s.log_truncated) for s in cut] == [(WorkerPhase.RUNNING, CAP)]
        ex.stop(w.worker_id, grace_s=1)
        ended = statuses(ex, w.worker_id, WorkerPhase.EXITED)
        assert ended[-1].exit_code == -15 and all(s.log_truncated is None for s in ended)
    finally:
        ex.close()


def test_the_end_is_reported_with_all_of_its_output_in_the_log(tmp_path: Path) -> None:
    ex = LocalExecutor(NODES, log_max_bytes=64 << 20)
    pidfile = tmp_path / "left.pid"
    try:
        w = spec(tmp_path, writer(20 << 20))  # 20 MB through the pipe, then it exits
        ex.start(w)
        statuses(ex, w.worker_id, WorkerPhase.EXITED)
        assert Path(w.log_path).stat().st_size == 20 << 20
        # something left behind that holds the output open delays the report a little only
        left = spec(tmp_path, ["sh", "-c", f"echo bye; sleep 30 & echo $! > {pidfile}"],
                    "left.0.0", log="left.log")
        began = time.monotonic()
        ex.start(left)
        statuses(ex, left.worker_id, WorkerPhase.EXITED)
        assert time.monotonic() - began < logcap.DRAIN_S + 2
        assert Path(left.log_path).read_text() == "bye\n"
    finally:
        ex.close()
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_output_reaches_the_log_as_it_is_written(tmp_path: Path) -> None:
    ex = LocalExecutor(NODES, log_max_bytes=CAP)
    try:
        w = spec(tmp_path, ["sh", "-c", "echo first; sleep 30"])
        ex.start(w)
        assert wait_file(Path(w.log_path)) == "first\n"  # not held back in a buffer
        ex.stop(w.worker_id, grace_s=1)
        statuses(ex, w.worker_id, WorkerPhase.EXITED)
    finally:
        ex.close()


def test_a_restarted_executor_waits_for_an_adopted_copier(tmp_path: Path) -> None:
    state = tmp_path / "run"
    first = LocalExecutor(NODES, state_dir=state, log_max_bytes=CAP)
    w = spec(tmp_path, writer(30_000, "time.sleep(1.5)"))
    first.start(w)
    statuses(first, w.worker_id, WorkerPhase.RUNNING)
    first.close()  # the server died; the worker and its copier run on
    second = LocalExecutor(NODES, state_dir=state, log_max_bytes=CAP)
    try:
        assert logcap.copying(None, second._workers[w.worker_id].record.get("copier"))
        seen = statuses(second, w.worker_id, WorkerPhase.EXITED)
        assert seen[-1].exit_code == 0
        assert [s.log_truncated for s in seen if s.log_truncated] == [CAP]
        assert Path(w.log_path).read_bytes().endswith(MARKER)
        assert Path(w.log_path).stat().st_size == CAP + len(MARKER)
    finally:
        second.close()


def test_capped_log_keeps_the_cap_and_says_so_once(tmp_path: Path) -> None:
    path = tmp_path / "w.log"
    path.write_bytes(b"x" * 4000)  # what the log holds already counts
    log = logcap.CappedLog(path.open("ab", buffering=0), CAP)
    assert log.write(b"a" * 5000) is False
    assert log.write(b"b" * 1000) is False  # exactly the cap
    assert log.write(b"c") is True
    assert log.write(b"d" * 100) is False
    log.close()
    assert path.read_bytes() == b"x" * 4000 + b"a" * 5000 + b"b" * 1000 + MARKER


@pytest.mark.parametrize(("data", "lines", "want"), [
    (b"a\nb\nc\n", 2, b"b\nc\n"),
    (b"a\nb\nc", 2, b"b\nc"),  # a last line without its newline is a line
    (b"a\nb\nc\n", 5, b"a\nb\nc\n"),
    (b"a\nb\nc\n", 0, b""),
    (b"", 3, b""),
    (b"\n\n\n", 2, b"\n\n"),
    (b"x" * 3 * CHUNK + b"\n" + b"y" * CHUNK + b"\n", 1, b"y" * CHUNK + b"\n"),
    (b"".join(b"%d\n" % i for i in range(100_000)), 30_000,
     b"".join(b"%d\n" % i for i in range(70_000, 100_000))),
])
def test_tail_start_finds_the_last_lines(data: bytes, lines: int, want: bytes) -> None:
    f = io.BytesIO(data)
    start = tail_start(f, len(data), lines)
    assert data[start:] == want


def test_tail_start_stops_at_its_floor() -> None:
    data = b"a\n" + b"x" * 1000 + b"\nlast\n"
    f = io.BytesIO(data)
    assert tail_start(f, len(data), 3, floor=500) == 500
    assert tail_start(f, len(data), 1, floor=500) == len(data) - 5
