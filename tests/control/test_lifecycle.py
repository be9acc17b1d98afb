"""The one lifecycle path (``store.lifecycle.move``) and its pure twin (``domain.job.moved``)
refuse every edge the transition table forbids and reset what each state needs."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from fairpool.domain import Job, JobState, WorkerPlacement, WorkerRequest
from fairpool.domain.job import moved
from fairpool.domain.states import (
    FINISHED_STATES,
    HOLDING_STATES,
    LIVE_STATES,
    PENDING_STATES,
    TRANSITIONS,
    IllegalTransition,
    StopReason,
)
from fairpool.store.db import Store
from fairpool.store.lifecycle import move
from fairpool.store.models import JobEventRow, JobRow, QueueRow

S = JobState
ALL = [(a, b) for a in S for b in S]
PLACEMENT = [{"rank": 0, "worker_id": "j.0.0", "node": "n", "devices": [0], "share": 1000,
              "gpu_memory": 0, "phase": "pending", "exit_code": None}]


def _row(state: JobState) -> JobRow:
    return JobRow(id="j", project="p", name="", command=["x"], env={}, workers=1, gpus=1,
                  cpu=0, memory=0, state=state.value, attempt=0, submitted_at=0.0,
                  request_hash="h", placement=PLACEMENT if state in HOLDING_STATES else None,
                  stop_reason="preempt" if state == S.STOPPING else None, labels={},
                  retries=0, max_retries=0, seq=0)


def _extras(target: JobState) -> dict[str, object]:
    if target == S.ADMITTED:
        return {"placement": PLACEMENT}
    if target == S.STOPPING:
        return {"stop": StopReason.CANCEL}
    return {}


@pytest.mark.parametrize(("current", "target"), ALL)
def test_move_takes_exactly_the_tables_edges(store: Store, current: JobState,
                                             target: JobState) -> None:
    with store.writing() as s:
        s.add(QueueRow(name="p", kind="project", created_at=0.0))
        s.flush()
        row = _row(current)
        s.add(row)
        s.flush()
        if target in TRANSITIONS[current]:
            move(s, row, target, now=5.0, seq=7, message="m", **_extras(target))  # type: ignore[arg-type]
            assert row.state == target.value and row.seq == 7
            events = s.execute(select(JobEventRow.kind)).scalars().all()
            assert events == [target.value]
        else:
            with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
                move(s, row, target, now=5.0, seq=7, message="m", **_extras(target))  # type: ignore[arg-type]
            assert row.state == current.value and row.seq == 0
            assert s.execute(select(JobEventRow)).first() is None


def test_move_resets_what_each_state_needs(store: Store) -> None:
    with store.writing() as s:
        s.add(QueueRow(name="p", kind="project", created_at=0.0))
        s.flush()
        row = _row(S.QUEUED)
        row.reason, row.reason_code = "waiting", "quota"
        s.add(row)
        s.flush()
        move(s, row, S.ADMITTED, now=1.0, seq=1, message="m", placement=PLACEMENT,
             waits_for=["other"])
        assert row.admitted_at == 1.0 and row.reason is None and row.waits_for == ["other"]
        move(s, row, S.STARTING, now=2.0, seq=2, message="m")
        assert row.waits_for is None and row.placement[0]["phase"] == "starting"
        move(s, row, S.RUNNING, now=3.0, seq=3, message="m")
        assert row.started_at == 3.0
        with pytest.raises(ValueError, match="needs a stop reason"):
            move(s, row, S.STOPPING, now=4.0, seq=4, message="m")
        move(s, row, S.STOPPING, now=4.0, seq=4, message="m", stop=StopReason.PREEMPT)
        assert row.stop_reason == "preempt"
        row.idle_since, row.idle_flagged = 2.5, True
        move(s, row, S.REQUEUED, now=5.0, seq=5, message="m", cause="reclaim")
        # the attempt ended: everything of it is cleared, on every path back to the queue
        assert (row.attempt, row.placement, row.started_at, row.admitted_at, row.stop_reason,
                row.idle_since, row.idle_flagged) == (1, None, None, None, None, None, False)
        # the run's GPU-seconds (1 GPU from 3 to 5) count as service; it waits again since 5
        assert (row.attained_gpu_s, row.queued_at) == (2.0, 5.0)
        move(s, row, S.ADMITTED, now=6.0, seq=6, message="m", placement=PLACEMENT)
        move(s, row, S.REQUEUED, now=7.0, seq=7, message="m")  # never started: same attempt
        assert (row.attempt, row.admitted_at, row.placement) == (1, None, None)
        assert (row.attained_gpu_s, row.queued_at) == (2.0, 7.0)  # nothing ran
        move(s, row, S.CANCELLED, now=8.0, seq=8, message="m")
        assert row.finished_at == 8.0
        causes = s.execute(select(JobEventRow.cause).where(JobEventRow.kind == "requeued")
                           ).scalars().all()
        assert causes == ["reclaim", None]


def test_stop_reasons_know_their_outcome() -> None:
    for reason in StopReason:
        assert reason.outcome() in TRANSITIONS[S.STOPPING]
    assert StopReason.PREEMPT.outcome() == S.REQUEUED and StopReason.PREEMPT.told == "preempted"
    assert StopReason.CANCEL.outcome() == S.CANCELLED
    assert StopReason.TIMEOUT.outcome() == S.FAILED and not StopReason.TIMEOUT.retryable
    assert StopReason.GANG_FAILED.retryable


def test_state_sets_partition_the_states() -> None:
    assert set(S) == PENDING_STATES | HOLDING_STATES | FINISHED_STATES
    assert not PENDING_STATES & HOLDING_STATES and not HOLDING_STATES & FINISHED_STATES
    assert LIVE_STATES == PENDING_STATES | HOLDING_STATES
    for state in FINISHED_STATES:
        assert not TRANSITIONS[state]


@pytest.mark.parametrize(("current", "target"), ALL)
def test_moved_takes_exactly_the_tables_edges(current: JobState, target: JobState) -> None:
    placed = (WorkerPlacement(0, "n", (0,)),)
    job = Job("j", "p", WorkerRequest(gpus=1), state=current,
              placements=placed if current in HOLDING_STATES else ())
    if target in TRANSITIONS[current]:
        after = moved(job, target, at=3.0, placements=placed)
        assert after.state == target
        assert after.placements == (placed if target in HOLDING_STATES else ())
    else:
        with pytest.raises(IllegalTransition):
            moved(job, target, at=3.0, placements=placed)


def test_moved_counts_a_runs_service_on_requeue() -> None:
    placed = (WorkerPlacement(0, "n", (0, 1)),)  # 2 GPUs
    job = Job("j", "p", WorkerRequest(gpus=2), state=S.RUNNING, placements=placed,
              started_at=10.0, attained_gpu_s=5.0)
    back = moved(moved(job, S.STOPPING, at=40.0), S.REQUEUED, at=50.0)
    # it held its GPUs until it was stopped and requeued, at 50
    assert (back.attained_gpu_s, back.queued_at) == (5.0 + 2 * 40.0, 50.0)

