"""The control loop's deciders, purely: max runtimes, placements on gone nodes, the breaker's
evidence and cooldown, with hand-made rows and times."""

from __future__ import annotations

from fairpool.control import failures, lost
from fairpool.control.breaker import NodeBreaker
from fairpool.control.effects import Lose, Requeue, Stop, Uncordon
from fairpool.domain import Device, Node
from fairpool.domain.states import StopReason
from fairpool.executors.base import Failure
from fairpool.store.models import JobRow


def _row(job_id: str, state: str, **kw: object) -> JobRow:
    return JobRow(id=job_id, project="p", state=state, **kw)


def _placed(job_id: str, node: str, devices: list[int], phase: str = "running"
            ) -> list[dict[str, object]]:
    return [{"rank": 0, "worker_id": f"{job_id}.0.0", "node": node, "devices": devices,
             "share": 1000, "gpu_memory": 0, "phase": phase, "exit_code": None}]


def test_overdue_stops_only_running_jobs_past_their_max_runtime() -> None:
    rows = [
        _row("late", "running", started_at=100.0, max_runtime_s=60.0),
        _row("edge", "running", started_at=100.0, max_runtime_s=61.0),
        _row("endless", "running", started_at=0.0, max_runtime_s=None),
        _row("stopping", "stopping", started_at=0.0, max_runtime_s=1.0),
        _row("waiting", "queued", started_at=None, max_runtime_s=1.0),
    ]
    stops = failures.overdue(rows, now=161.0)
    assert stops == [Stop("late", StopReason.TIMEOUT, "timeout",
                          "ran longer than its max runtime (60 s): stopping its workers")]
    assert [s.job_id for s in failures.overdue(rows, now=161.5)] == ["late", "edge"]


def test_retry_backoff_doubles_up_to_its_cap() -> None:
    assert [failures.backoff_s(n, 5, 30) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]


def test_placements_on_gone_nodes_or_devices() -> None:
    nodes = [Node("a", devices=(Device(0, 81920),))]
    rows = [
        _row("admitted-gone", "admitted", placement=_placed("admitted-gone", "b", [0],
                                                            "pending")),
        _row("admitted-ok", "admitted", placement=_placed("admitted-ok", "a", [0], "pending")),
        _row("device-gone", "running", placement=_placed("device-gone", "a", [1])),
        _row("node-gone", "stopping", placement=_placed("node-gone", "b", [0])),
        _row("ended", "running", placement=_placed("ended", "b", [0], "exited")),
    ]
    requeue, lose = lost.stale(rows, nodes)
    assert requeue == [Requeue("admitted-gone", "placed but not started: its node or devices "
                                                "are gone")]
    assert [x.worker_id for x in lose] == ["device-gone.0.0", "node-gone.0.0"]
    assert all(isinstance(x, Lose) and "are gone" in x.detail for x in lose)


def test_breaker_counts_machine_faults_for_all_and_own_faults_per_user_and_project() -> None:
    b = NodeBreaker(failures=3, window_s=60, cooldown_s=300)
    # one user's own failures in two projects count once however many there are
    for i in range(5):
        assert b.saw("n", f"r{i}", "rita", "p1" if i % 2 else "p2", Failure.COMMAND,
                     100.0 + i) is None
    # exits and the executor's stops never count
    assert b.saw("n", "x1", "u1", "q1", Failure.EXIT, 110.0) is None
    assert b.saw("n", "x2", "u2", "q2", Failure.STOPPED, 110.0) is None
    # a machine fault counts whoever it hits; the third distinct job trips it
    assert b.saw("n", "m1", "rita", "p1", Failure.LOST, 111.0) is None
    counted = b.saw("n", "o1", "olga", "p3", Failure.SIGNAL, 112.0)
    assert counted is not None and {f.job for f in counted} == {"r0", "m1", "o1"}


def test_breaker_forgets_failures_outside_its_window() -> None:
    b = NodeBreaker(failures=2, window_s=60, cooldown_s=300)
    assert b.saw("n", "a", "u1", "p1", Failure.LOST, 0.0) is None
    assert b.saw("n", "b", "u2", "p2", Failure.LOST, 61.0) is None  # the first has expired
    assert b.saw("n", "c", "u3", "p3", Failure.LOST, 62.0) is not None
    assert b.saw("m", "d", "u4", "p4", Failure.LOST, 62.0) is None  # per node


def test_breaker_lifts_timed_cordons_when_due() -> None:
    b = NodeBreaker()
    cordons = {"timed": 500.0, "later": 900.0, "by-hand": None}
    assert b.due(cordons, 499.0) == []
    assert b.due(cordons, 501.0) == []  # looked at every 5 s at most
    assert b.due(cordons, 504.0) == [Uncordon("timed")]
    assert b.due(cordons, 2000.0) == [Uncordon("later"), Uncordon("timed")]
