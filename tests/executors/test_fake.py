"""FakeExecutor: the in-memory executor for control-loop tests."""

from __future__ import annotations

from fairpool.executors.base import DeviceInfo, NodeInfo, WorkerPhase, WorkerSpec, WorkerStatus
from fairpool.executors.fake import FakeExecutor

NODES = [NodeInfo("n0", (DeviceInfo(0, 81920, "simulated-gpu"),), cpu=8000, memory=65536)]


def spec(worker_id: str = "j.0.0") -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id, job_id="j", attempt=0, rank=0, world_size=1, local_rank=0,
        node="n0", devices=(0,), command=("train",), env={}, master_addr="127.0.0.1",
        master_port=29500, log_path="/dev/null",
    )


def test_nodes_and_start_reports_running_once() -> None:
    ex = FakeExecutor(NODES)
    assert ex.nodes() == NODES
    ex.start(spec())
    ex.start(spec())  # idempotent
    assert ex.started == {"j.0.0": spec()}
    assert ex.poll() == [WorkerStatus("j.0.0", WorkerPhase.RUNNING)]
    ex.start(spec())
    assert ex.poll() == []
    assert ex.running == {"j.0.0"}


def test_finish_reports_exit_once() -> None:
    ex = FakeExecutor(NODES)
    ex.start(spec())
    ex.poll()
    ex.finish("j.0.0", exit_code=3)
    assert ex.poll() == [WorkerStatus("j.0.0", WorkerPhase.EXITED, 3)]
    assert ex.poll() == []
    assert ex.running == set()


def test_finish_before_first_poll_reports_running_then_exit() -> None:
    ex = FakeExecutor(NODES)
    ex.start(spec())
    ex.finish("j.0.0")
    assert [(s.phase, s.exit_code) for s in ex.poll()] == [
        (WorkerPhase.RUNNING, None), (WorkerPhase.EXITED, 0)]


def test_lose() -> None:
    ex = FakeExecutor(NODES)
    ex.start(spec())
    ex.poll()
    ex.lose("j.0.0")
    assert [s.phase for s in ex.poll()] == [WorkerPhase.LOST]


def test_stop_terminates_unless_ignored() -> None:
    ex = FakeExecutor(NODES)
    ex.start(spec("a.0.0"))
    ex.start(spec("b.0.0"))
    ex.ignore_term.add("b.0.0")
    ex.poll()
    ex.stop("a.0.0", 5.0)
    ex.stop("b.0.0", 1.0)
    ex.stop("unknown", 2.0)
    assert ex.stopped == [("a.0.0", 5.0), ("b.0.0", 1.0), ("unknown", 2.0)]
    [status] = ex.poll()
    assert (status.worker_id, status.phase, status.exit_code) == (
        "a.0.0", WorkerPhase.EXITED, -15)
    assert ex.running == {"b.0.0"}
    ex.finish("b.0.0", -9)
    assert ex.poll() == [WorkerStatus("b.0.0", WorkerPhase.EXITED, -9)]


def test_close_is_noop() -> None:
    ex = FakeExecutor(NODES)
    ex.start(spec())
    ex.close()
    assert [s.phase for s in ex.poll()] == [WorkerPhase.RUNNING]
