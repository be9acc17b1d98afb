"""What workers' reports do to their jobs: running, failed (retried or final), lost, finished
(succeeded, failed, cancelled, requeued after a preemption), in the control loop's write
transaction, with an event for each change a person should know of."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import transition
from fairpool.executors import logcap
from fairpool.executors.base import WorkerPhase, WorkerStatus
from fairpool.services import usage
from fairpool.services.jobs import add_event
from fairpool.store.models import JobRow

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

    def apply(self, s: Session, row: JobRow, reports: list[WorkerStatus],
                       now: float) -> None:
        if row.state not in (S.STARTING.value, S.RUNNING.value) or not row.placement:
            return  # a late report for a job that is already finished, requeued or cancelled
        workers = [dict(w) for w in row.placement]
        by_id = {w["worker_id"]: w for w in workers}
        started = False
        for st in reports:
            w = by_id.get(st.worker_id)
            if w is None:  # a worker of an earlier attempt
                continue
            if st.log_truncated is not None:  # a fact the executor saw, not a state change
                add_event(s, row.id, logcap.EVENT, logcap.event_text(w["rank"],
                                                                     st.log_truncated), now)
            if st.phase == WorkerPhase.RUNNING:
                w["phase"] = "running"
                started = True
            elif st.phase == WorkerPhase.EXITED:
                w["phase"], w["exit_code"] = "exited", st.exit_code
                w["detail"] = st.detail
                if st.final:
                    w["final"] = True
                if st.exit_code != 0 and row.stop_reason is None:
                    # whose fault, as the executor tells: the breaker counts only what can be
                    # the node's (a bad image or account, or an ordinary exit, never is)
                    self.breaker.failed(s, w["node"], row, st.fault(), now)
                    row.stop_reason = "gang-failed" if row.workers > 1 else "failed"
                    row.exit_code = st.exit_code  # the first failure is the one to report
                    how = st.detail or f"exited with code {st.exit_code}"
                    add_event(s, row.id, "failed", f"rank {w['rank']} {how}" + (
                        "; stopping the other ranks" if row.workers > 1 else ""), now)
            else:
                w["phase"] = "lost"
                if row.stop_reason is None:
                    self.breaker.failed(s, w["node"], row, st.fault(), now)
                    row.stop_reason = "lost"
                    add_event(s, row.id, "lost", f"rank {w['rank']} was lost: {st.detail}", now)
        row.placement = workers
        state = S(row.state)
        if state == S.STARTING and started:
            row.state = transition(state, S.RUNNING).value
            row.started_at = now
            add_event(s, row.id, "running", f"running on {nodes_text(workers)}", now)
            usage.opened(s, row, now)
        if all(w["phase"] in ("exited", "lost") for w in workers):  # placement is not empty
            self.finish(s, row, workers, now)

    def finish(self, s: Session, row: JobRow, workers: list[dict[str, Any]], now: float
                ) -> None:
        state = S(row.state)
        reason = row.stop_reason
        codes = [w["exit_code"] for w in workers if w["phase"] == "exited"]
        self.stop_sent.difference_update(w["worker_id"] for w in workers)
        usage.closed(s, row.id, now)
        row.idle_since, row.idle_flagged = None, False
        if reason in ("cancel", "idle-stop"):
            row.state = transition(state, S.CANCELLED).value
            add_event(s, row.id, "cancelled", "cancelled; all workers stopped" if reason ==
                      "cancel" else "stopped by the idle policy; all workers stopped", now)
        elif reason in ("preempt", "idle-preempt", "lost"):
            mid = S.LOST if reason == "lost" else S.PREEMPTED
            transition(transition(state, mid), S.REQUEUED)
            if reason == "idle-preempt":  # hold it back, or it would take its GPUs again
                hold_back(s, row, now)
            row.state = S.REQUEUED.value
            failures.next_attempt(row)
            add_event(s, row.id, "requeued", f"{mid.value}; requeued as attempt {row.attempt}",
                      now)
            return
        elif reason == "timeout":
            row.state = transition(state, S.FAILED).value
            row.exit_code = next((c for c in codes if c != 0), None)
            how = "; ".join(f"rank {w['rank']} {w['detail']}" for w in workers
                            if w.get("detail"))
            add_event(s, row.id, "finished", f"failed: ran longer than its max runtime "
                      f"({row.max_runtime_s or 0:g} s)" + (f"; {how}" if how else ""), now)
        elif any(c != 0 for c in codes) or reason in ("failed", "gang-failed"):
            code = row.exit_code if row.exit_code is not None else next(
                (c for c in codes if c != 0), None)
            why = f"failed with exit code {code}"
            final = next((w.get("detail") or why for w in workers if w.get("final")), None)
            if final is not None:
                if row.max_retries > row.retries:
                    add_event(s, row.id, "retries", f"not retried: {final} (the same would "
                              f"happen again)", now)
            elif failures.retry(s, row, now, why, self.retry_base_s, self.retry_cap_s):
                return
            row.state = transition(state, S.FAILED).value
            row.exit_code = code
            add_event(s, row.id, "finished", why, now)
        else:
            row.state = transition(state, S.SUCCEEDED).value
            row.exit_code = 0
            add_event(s, row.id, "finished", "succeeded", now)
        row.finished_at = now
        row.stop_reason = None


def nodes_text(workers: Iterable[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for w in workers:
        counts[w["node"]] = counts.get(w["node"], 0) + 1
    return ", ".join(f"{n} ({c} worker{'s' if c > 1 else ''})" for n, c in sorted(counts.items()))
