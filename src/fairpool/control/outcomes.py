"""What workers' reports do to their jobs, in the control loop's write transaction: a worker
running, one failing (the job's other ranks are stopped: the job is *stopping*), one lost, and,
once every worker of the attempt has ended, what the job becomes — as its stop reason says
(:meth:`~fairpool.domain.states.StopReason.outcome`), or from the exit codes: succeeded,
failed, retried or requeued. Every change of state goes through
:func:`fairpool.store.lifecycle.move`; the breaker hears of each failure that may be the
node's."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import STARTED_VALUES, StopReason
from fairpool.executors import logcap
from fairpool.executors.base import WorkerPhase, WorkerStatus
from fairpool.services import usage
from fairpool.store.lifecycle import add_event, move, stop_reason
from fairpool.store.models import JobRow
from fairpool.store.workers import Phase, WorkerRecord, ended, records

from . import failures
from .breaker import NodeBreaker
from .sampling import hold_back

S = JobState


class Outcomes:
    def __init__(self, breaker: NodeBreaker, retry_base_s: float, retry_cap_s: float,
                 stop_sent: set[str]) -> None:
        self.breaker = breaker
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s  # retry backoff
        self.stop_sent = stop_sent  # the loop's: workers told to stop, forgotten once ended

    def apply(self, s: Session, row: JobRow, reports: list[WorkerStatus], now: float,
              seq: int) -> None:
        if row.state not in STARTED_VALUES or not row.placement:
            return  # a late report for a job that is already finished, requeued or cancelled
        workers = records(row.placement)
        by_id = {w["worker_id"]: w for w in workers}
        started = False
        stop = stop_reason(row)
        new_stop: tuple[StopReason, str, str] | None = None  # reason, event kind, message
        for st in reports:
            w = by_id.get(st.worker_id)
            if w is None:  # a worker of an earlier attempt
                continue
            if st.log_truncated is not None:  # a fact the executor saw, not a state change
                add_event(s, row.id, logcap.EVENT, logcap.event_text(w["rank"],
                                                                     st.log_truncated), now)
            if st.phase == WorkerPhase.RUNNING:
                w["phase"] = Phase.RUNNING
                started = True
            elif st.phase == WorkerPhase.EXITED:
                w["phase"], w["exit_code"] = Phase.EXITED, st.exit_code
                w["detail"] = st.detail
                if st.final:
                    w["final"] = True
                if st.exit_code != 0 and stop is None:
                    # whose fault, as the executor tells: the breaker counts only what can be
                    # the node's (a bad image or account, or an ordinary exit, never is)
                    self.breaker.failed(s, w["node"], row, st.fault(), now)
                    stop = StopReason.GANG_FAILED if row.workers > 1 else StopReason.FAILED
                    row.exit_code = st.exit_code  # the first failure is the one to report
                    how = st.detail or f"exited with code {st.exit_code}"
                    new_stop = (stop, "failed", f"rank {w['rank']} {how}" + (
                        "; stopping the other ranks" if row.workers > 1 else ""))
            else:
                w["phase"] = Phase.LOST
                if stop is None:
                    self.breaker.failed(s, w["node"], row, st.fault(), now)
                    stop = StopReason.LOST
                    new_stop = (stop, "lost", f"rank {w['rank']} was lost: {st.detail}")
        row.placement = list(workers)
        if started and row.started_at is None:
            if row.state == S.STARTING.value:
                move(s, row, S.RUNNING, now=now, seq=seq,
                     message=f"running on {nodes_text(workers)}")
            else:  # stopping before it ran: its workers did start, and hold their GPUs
                row.started_at = now
            usage.opened(s, row, now)
        if all(ended(w) for w in workers):  # placement is not empty
            if new_stop is not None:  # it ended as it failed: a fact, then what it becomes
                add_event(s, row.id, new_stop[1], new_stop[2], now)
            self.finish(s, row, workers, stop, now, seq)
        elif new_stop is not None:  # the others are stopped (by the loop, after commit)
            reason, kind, message = new_stop
            move(s, row, S.STOPPING, now=now, seq=seq, stop=reason, kind=kind,
                 message=message)
        else:
            row.seq = seq

    def finish(self, s: Session, row: JobRow, workers: list[WorkerRecord],
               reason: StopReason | None, now: float, seq: int) -> None:
        """Every worker of the attempt has ended: what the job becomes."""
        codes = [w["exit_code"] for w in workers if w["phase"] == Phase.EXITED]
        self.stop_sent.difference_update(w["worker_id"] for w in workers)
        usage.closed(s, row.id, now)
        outcome = reason.outcome() if reason is not None else None
        if outcome == S.CANCELLED:
            move(s, row, S.CANCELLED, now=now, seq=seq, message=(
                "cancelled; all workers stopped" if reason == StopReason.CANCEL
                else "stopped by the idle policy; all workers stopped"))
        elif outcome == S.REQUEUED:
            what = "lost" if reason == StopReason.LOST else "preempted"
            move(s, row, S.REQUEUED, now=now, seq=seq,
                 message=f"{what}; requeued as attempt {row.attempt + 1}")
            if reason == StopReason.IDLE_PREEMPT:  # hold it back, or it takes its GPUs again
                hold_back(s, row, now)
        elif reason == StopReason.TIMEOUT:
            row.exit_code = next((c for c in codes if c is not None and c != 0), None)
            how = "; ".join(f"rank {w['rank']} {w.get('detail')}" for w in workers
                            if w.get("detail"))
            move(s, row, S.FAILED, now=now, seq=seq, kind="finished", message=(
                f"failed: ran longer than its max runtime ({row.max_runtime_s or 0:g} s)"
                + (f"; {how}" if how else "")))
        elif any(c != 0 for c in codes) or reason is not None:
            code = row.exit_code if row.exit_code is not None else next(
                (c for c in codes if c != 0), None)
            why = f"failed with exit code {code}"
            final = next((w.get("detail") or why for w in workers if w.get("final")), None)
            if final is not None:
                if row.max_retries > row.retries:
                    add_event(s, row.id, "retries", f"not retried: {final} (the same would "
                              f"happen again)", now)
            elif failures.retry(s, row, now, seq, why, self.retry_base_s, self.retry_cap_s):
                return
            row.exit_code = code
            move(s, row, S.FAILED, now=now, seq=seq, kind="finished", message=why)
        else:
            row.exit_code = 0
            move(s, row, S.SUCCEEDED, now=now, seq=seq, kind="finished", message="succeeded")


def nodes_text(workers: list[WorkerRecord] | list[dict[str, object]]) -> str:
    counts: dict[str, int] = {}
    for w in workers:
        node = str(w["node"])
        counts[node] = counts.get(node, 0) + 1
    return ", ".join(f"{n} ({c} worker{'s' if c > 1 else ''})" for n, c in sorted(counts.items()))
