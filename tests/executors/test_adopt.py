"""Supervised local workers outlive their executor: a new executor on the same state directory
adopts the running ones and learns how the others ended, and starts none of them again."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fairpool.executors.base import WorkerPhase, WorkerStatus
from fairpool.executors.gpus import local_node
from fairpool.executors.local import LocalExecutor
from tests.executors.test_local import spec

NODES = [local_node(2, name="n0")]


SEEN: dict[str, list[WorkerStatus]] = {}  # every report polled, by worker


def until(ex: LocalExecutor, wid: str, phase: WorkerPhase, timeout: float = 30
          ) -> list[WorkerStatus]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for s in ex.poll():
            SEEN.setdefault(s.worker_id, []).append(s)
        if any(s.phase == phase for s in SEEN.get(wid, [])):
            return SEEN[wid]
        time.sleep(0.05)
    raise AssertionError(f"{wid}: no {phase} in {SEEN.get(wid)}")


def test_supervised_worker_reports_and_records_its_exit(tmp_path: Path) -> None:
    state = tmp_path / "run"
    ex = LocalExecutor(NODES, state_dir=state)
    w = spec(tmp_path, [sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"],
             "a.0.0", env={"SECRET": "hunter2"})
    ex.start(w)
    seen = until(ex, w.worker_id, WorkerPhase.EXITED)
    assert [s.phase for s in seen] == [WorkerPhase.RUNNING, WorkerPhase.EXITED]
    assert seen[-1].exit_code == 3
    assert (state / "a.0.0.exit").read_text().strip() == "3"
    assert "hunter2" not in (state / "a.0.0.spec.json").read_text()
    assert "hi" in Path(w.log_path).read_text()
    missing = spec(tmp_path, ["/no/such/program"], "b.0.0")
    ex.start(missing)
    ended = until(ex, "b.0.0", WorkerPhase.EXITED)[-1]
    assert ended.exit_code == 127 and "cannot start" in ended.detail
    ex.close()


def test_a_new_executor_adopts_running_and_ended_workers(tmp_path: Path) -> None:
    state = tmp_path / "run"
    first = LocalExecutor(NODES, state_dir=state)
    marker = tmp_path / "starts"
    script = ("import sys, time; open(sys.argv[1], 'a').write('x'); "
              "time.sleep(float(sys.argv[2])); sys.exit(int(sys.argv[3]))")
    long = spec(tmp_path, [sys.executable, "-c", script, str(marker), "60", "0"], "long.0.0")
    short = spec(tmp_path, [sys.executable, "-c", script, str(marker), "0.3", "4"], "short.0.0",
                 log="short.log")
    first.start(long)
    first.start(short)
    until(first, "long.0.0", WorkerPhase.RUNNING)
    first.close()  # the server died: nobody polls while the short one ends
    deadline = time.time() + 30
    while not (state / "short.0.0.exit").exists() and time.time() < deadline:
        time.sleep(0.05)

    SEEN.clear()
    second = LocalExecutor(NODES, state_dir=state)
    assert second.known() == {"long.0.0", "short.0.0"} == second.adopted
    second.start(long)  # the loop may ask again: it is running already, nothing starts
    short_seen = until(second, "short.0.0", WorkerPhase.EXITED)
    assert short_seen[-1].exit_code == 4
    assert WorkerPhase.RUNNING not in {s.phase for s in short_seen}
    until(second, "long.0.0", WorkerPhase.RUNNING)
    second.stop("long.0.0", grace_s=5)
    ended = until(second, "long.0.0", WorkerPhase.EXITED)[-1]
    assert ended.exit_code == -15  # SIGTERM, recorded by its supervisor
    assert marker.read_text() == "xx"  # each worker started exactly once
    second.close()
