"""A start-time estimate for every waiting job: the pool simulated forward from a snapshot with
the same core, as if nothing else were submitted.

Each job's *run time* is its ``max_runtime_s``, else its project's expected run time from
history (``Snapshot.runtime_estimates``), else unknown. A running job ends at its start plus
its run time; one past its max runtime ends now (it is about to be stopped), one that outran its
project's usual run time runs as long again as it has run so far, one being stopped ends
:data:`STOPPING_S` from now. A job the forecast starts ends its run time after. A job of
unknown run time never ends in the forecast: it keeps its GPUs. From ``now`` the forecast runs
a cycle (:func:`fairpool.scheduler.cycle.schedule`), carries the plan out
(:func:`fairpool.scheduler.apply.apply_plan`), moves time to the next end (or to when the plan
may change by itself, ``Plan.valid_until``), lets the jobs that end there go, and repeats,
until every waiting job has started, nothing more can change, ``horizon_s`` has passed or
``max_cycles`` cycles ran. A job started in the forecast gets that time; a job evicted in the
forecast keeps the time it first started (it did start).

Each estimate says what it rests on (:attr:`Estimate.basis`): how many of the jobs that end
before it starts end by their max runtime and how many by their project's history, and, when
jobs of unknown run time hold GPUs when it starts (or, if it does not, when the forecast ends),
that they are assumed to keep them. Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from fairpool.domain.job import Job
from fairpool.domain.states import HOLDING_STATES, JobState
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.cycle import schedule
from fairpool.scheduler.reservations import run_time
from fairpool.scheduler.snapshot import SchedulerConfig, Snapshot

HORIZON_S = 14 * 86400.0
MAX_CYCLES = 200
#: a project's expected run time is the median of its latest this many successful runs (the
#: control loop reads them from the store, the simulator keeps them as it goes)
RECENT_RUNS = 200
#: a job being stopped gives its GPUs back this much later (its grace period, about)
STOPPING_S = 30.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """When a waiting job is expected to start (None: not within the forecast) and why."""
    start: float | None
    by_max_runtime: int  # jobs ending before it starts, by their max runtime
    by_history: int  # … by their project's expected run time
    unknown_holders: int  # jobs of unknown run time holding GPUs when it starts (or at the end)
    #: how far the forecast looked (the time it stopped at; inf: to where nothing changes)
    until: float = math.inf

    @property
    def basis(self) -> str:
        parts = []
        if self.by_max_runtime:
            parts.append(f"{_jobs(self.by_max_runtime)} ending by their max runtime")
        if self.by_history:
            parts.append(f"{_jobs(self.by_history)} ending as their projects' jobs usually do")
        if self.unknown_holders:
            parts.append(f"{_jobs(self.unknown_holders)} with no known run time keeping "
                         "their GPUs")
        if not parts:
            parts.append("the pool as it is now")
        return ", ".join(parts)


def _jobs(n: int) -> str:
    return f"{n} job" + ("" if n == 1 else "s")


def forecast(snapshot: Snapshot, config: SchedulerConfig | None = None,
             horizon_s: float = HORIZON_S, max_cycles: int = MAX_CYCLES,
             more: Callable[[], bool] | None = None) -> dict[str, Estimate]:
    """Estimates for the snapshot's waiting jobs (see the module doc); ``more``, asked before
    every cycle after the first, may stop the forecast early (the caller's time budget)."""
    now0 = snapshot.now
    waiting = {j.id for j in snapshot.jobs if j.pending}
    ends: dict[str, tuple[float, bool | None]] = {}  # job → (end, from history; None: unknown)
    for j in snapshot.jobs:
        if j.state in HOLDING_STATES:
            ends[j.id] = _end(snapshot, j, j.started_at if j.started_at is not None else now0)
    started: dict[str, float] = {}
    unknown_at: dict[str, int] = {}  # job → jobs of unknown run time holding GPUs when it starts
    ended: list[tuple[float, bool]] = []  # (when, by history) of every job let go
    state = _let_go(snapshot, ends, ended, now0)  # (those past their run time end now)
    now = now0
    for n in range(max_cycles):
        if n and more is not None and not more():
            break
        plan = schedule(state, config)
        holding_unknown = sum(1 for _, how in ends.values() if how is None)
        if plan.changes:
            state = apply_plan(state, plan, now)
            for e in plan.evictions:
                ends.pop(e.job_id, None)
            by_id = {j.id: j for j in state.jobs} if plan.binds else {}
            for b in plan.binds:
                ends[b.job_id] = _end(snapshot, by_id[b.job_id], now)
                if b.job_id in waiting and b.job_id not in started:
                    started[b.job_id] = now
                    unknown_at[b.job_id] = holding_unknown
        if waiting <= started.keys():
            break
        upcoming = [t for t, _ in ends.values() if now < t < math.inf]
        if now < plan.valid_until < math.inf:
            upcoming.append(plan.valid_until)
        if not upcoming and not plan.changes:
            now = math.inf  # nothing will end and nothing waits on time: it stays as it is
            break
        nxt = min(upcoming) if upcoming else now
        if nxt - now0 > horizon_s:
            break
        state = _let_go(state, ends, ended, nxt)
        now = nxt
    unknown_at_end = sum(1 for _, how in ends.values() if how is None)
    out: dict[str, Estimate] = {}
    for job_id in waiting:
        start = started.get(job_id)
        until = start if start is not None else math.inf
        before = [how for t, how in ended if t <= until]
        out[job_id] = Estimate(start, sum(1 for h in before if not h),
                               sum(1 for h in before if h), unknown_at.get(job_id,
                                                                           unknown_at_end), now)
    return out


def _let_go(state: Snapshot, ends: dict[str, tuple[float, bool | None]],
            ended: list[tuple[float, bool]], at: float) -> Snapshot:
    """The state at ``at`` with the jobs that end by then gone (recorded in ``ended``)."""
    gone = {j for j, (t, _) in ends.items() if t <= at}
    for j in gone:
        ended.append((ends[j][0], bool(ends[j][1])))
        del ends[j]
    jobs = tuple(j for j in state.jobs if j.id not in gone) if gone else state.jobs
    return replace(state, jobs=jobs, now=at, generation=None)


def _end(snapshot: Snapshot, job: Job, since: float) -> tuple[float, bool | None]:
    now = snapshot.now
    if job.state == JobState.STOPPING:
        return now + STOPPING_S, False  # it is being stopped: its GPUs come back soon
    seconds, from_history = run_time(snapshot, job)
    if seconds is None:
        return math.inf, None
    if from_history and since + seconds <= now:
        # it outran what its project's jobs usually take: expect it to run as long again
        return now + (now - since), True
    return max(now, since + seconds), from_history
