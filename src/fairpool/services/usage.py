"""Usage accounting: GPU-hours allocated and actually used, per job, project or department,
over any time range.

The control loop writes :class:`~fairpool.store.models.UsageRow` stretches (a job holding some
GPUs at a measured utilisation); a report sums each stretch's overlap with the range. Allocated
GPU-hours count every held GPU; used GPU-hours weigh them by utilisation where it was measured,
and measured GPU-hours say how much of the allocation had a measurement at all. The same
stretches, decayed, are the time-aware fair share's input, and finished jobs give each project
an expected run time (:func:`decayed`, :func:`expected_runtimes`, read by the control loop).
"""

from __future__ import annotations

import csv
import io
import statistics
import time
from collections.abc import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from fairpool.domain import GPU_UNIT
from fairpool.domain.accounting import held
from fairpool.scheduler import SchedulerConfig, usage_share
from fairpool.scheduler.forecast import RECENT_RUNS
from fairpool.schemas.usage import SeriesOut, UsageOut
from fairpool.services.errors import Invalid
from fairpool.store.convert import placements, worker_request
from fairpool.store.db import Store
from fairpool.store.models import JobRow, QueueRow, UsageRow

#: a new stretch starts when utilisation moves by more than this
UTIL_STEP = 0.05
GROUPS = ("job", "project", "department")


def job_gpus(row: JobRow) -> float:
    """GPUs the job holds (:func:`fairpool.domain.accounting.held`: each worker holds its
    ``share`` milli-GPUs of each of its devices), as the scheduler and queue status count them."""
    return held(worker_request(row), placements(row)).gpu / GPU_UNIT


# -- written by the control loop ------------------------------------------------------------
def opened(s: Session, row: JobRow, now: float) -> None:
    """A job started running: it holds its GPUs from now."""
    department = s.execute(select(QueueRow.parent).where(QueueRow.name == row.project)
                           ).scalar() or ""
    s.add(UsageRow(job_id=row.id, project=row.project, department=department,
                   attempt=row.attempt, gpus=job_gpus(row), util=None, simulated=False,
                   start=now, end=now, open=True))


def closed(s: Session, job_id: str, now: float) -> None:
    """A job stopped holding its GPUs."""
    s.execute(update(UsageRow).where(UsageRow.job_id == job_id, UsageRow.open.is_(True))
              .values(end=now, open=False))


def sampled(s: Session, job_id: str, util: float, simulated: bool, now: float) -> None:
    """A utilisation sample of a running job: extend its stretch, or start a new one if the
    utilisation moved."""
    seg = s.execute(select(UsageRow).where(UsageRow.job_id == job_id, UsageRow.open.is_(True))
                    .order_by(UsageRow.id.desc()).limit(1)).scalar_one_or_none()
    if seg is None:
        return
    if seg.util is not None and abs(seg.util - util) <= UTIL_STEP:
        seg.end = now
        return
    seg.end, seg.open = now, False
    if seg.start == now:  # nothing measured in it yet: take the sample as its value
        seg.util, seg.simulated, seg.open = util, simulated, True
        return
    s.add(UsageRow(job_id=job_id, project=seg.project, department=seg.department,
                   attempt=seg.attempt, gpus=seg.gpus, util=util, simulated=simulated,
                   start=now, end=now, open=True))


# -- read by reports ------------------------------------------------------------------------
def _stretches(store: Store, start: float, end: float, within: set[str] | None
               ) -> list[UsageRow]:
    q = select(UsageRow).where(UsageRow.start < end,
                               or_(UsageRow.end > start, UsageRow.open.is_(True)))
    if within is not None:
        q = q.where(UsageRow.project.in_(sorted(within)))
    with store.session() as s:
        return list(s.execute(q).scalars())


def _end(seg: UsageRow, now: float) -> float:
    """A stretch of a job still running lasts until now."""
    return max(seg.end, now) if seg.open else seg.end


def _check_range(start: float, end: float) -> None:
    if not end > start:
        raise Invalid("the range is empty: --to must be after --from")


def report(store: Store, start: float, end: float, by: str = "project",
           within: set[str] | None = None, now: float | None = None) -> list[UsageOut]:
    if by not in GROUPS:
        raise Invalid(f"by must be one of {', '.join(GROUPS)}")
    _check_range(start, end)
    now = time.time() if now is None else now
    acc: dict[str, list[float]] = {}
    meta: dict[str, tuple[str | None, str]] = {}
    jobs: dict[str, set[str]] = {}
    for seg in _stretches(store, start, end, within):
        seg_end = _end(seg, now)
        overlap = min(seg_end, end) - max(seg.start, start)
        if overlap <= 0:
            continue
        key = {"job": seg.job_id, "project": seg.project, "department": seg.department}[by]
        meta[key] = (None if by == "department" else seg.project, seg.department)
        jobs.setdefault(key, set()).add(seg.job_id)
        a = acc.setdefault(key, [0.0, 0.0, 0.0])
        a[0] += seg.gpus * overlap
        if seg.util is not None:
            a[1] += seg.gpus * seg.util * overlap
            a[2] += seg.gpus * overlap
    return [UsageOut(key=k, project=meta[k][0], department=meta[k][1], jobs=len(jobs[k]),
                     allocated_gpu_hours=a[0] / 3600, used_gpu_hours=a[1] / 3600,
                     measured_gpu_hours=a[2] / 3600)
            for k, a in sorted(acc.items(), key=lambda kv: -kv[1][0])]


def series(store: Store, start: float, end: float, steps: int = 60,
           within: set[str] | None = None, now: float | None = None) -> SeriesOut:
    """GPUs held per project over time, for charts."""
    _check_range(start, end)
    steps = max(1, min(steps, 2000))
    now = time.time() if now is None else now
    step = (end - start) / steps
    out: dict[str, list[float]] = {}
    for seg in _stretches(store, start, end, within):
        seg_end = _end(seg, now)
        line = out.setdefault(seg.project, [0.0] * steps)
        first = max(0, int((seg.start - start) // step))
        for i in range(first, steps):
            lo, hi = start + i * step, start + (i + 1) * step
            if lo >= seg_end:
                break
            overlap = min(hi, seg_end) - max(lo, seg.start)
            if overlap > 0:
                line[i] += seg.gpus * overlap / step
    return SeriesOut(start=start, step_s=step, series=out)


def key_columns(by: str) -> tuple[str, ...]:
    """The columns that say what a row of a report ``by`` job, project or department is (as
    the dashboard's table shows them): the grouping, then what it belongs to."""
    return {"job": ("job", "project", "department"), "project": ("project", "department"),
            "department": ("department",)}[by]


def key_values(row: UsageOut, by: str) -> list[str]:
    """The values of ``key_columns(by)`` of a row."""
    return {"job": [row.key, row.project or "", row.department],
            "project": [row.key, row.department], "department": [row.key]}[by]


def to_csv(rows: Iterable[UsageOut], by: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*key_columns(by), "jobs", "allocated_gpu_hours", "used_gpu_hours",
                     "measured_gpu_hours"])
    for r in rows:
        writer.writerow([*key_values(r, by), r.jobs, f"{r.allocated_gpu_hours:.6f}",
                         f"{r.used_gpu_hours:.6f}", f"{r.measured_gpu_hours:.6f}"])
    return buf.getvalue()


def decayed(store: Store, now: float, half_life_s: float, window_s: float | None
            ) -> dict[str, float]:
    """Each project's decayed GPU-seconds (the time-aware fair share's input; see
    :mod:`fairpool.scheduler.usage_share`), from the stretches of the window."""
    start = 0.0 if window_s is None else now - window_s
    spans = [(seg.project, seg.gpus, seg.start, _end(seg, now))
             for seg in _stretches(store, start, now + 1.0, None)]
    return usage_share.decayed_gpu_s(spans, now, half_life_s, window_s)




#: successful runs read at most, newest first (the index ix_jobs_state_finished serves it)
SCANNED_RUNS = 50 * RECENT_RUNS


def expected_runtimes(store: Store, now: float, window_s: float) -> dict[str, float]:
    """Each project's expected run time (seconds): the median of its jobs that succeeded in
    the window (the most recent :data:`RECENT_RUNS`, among the pool's latest
    :data:`SCANNED_RUNS`); a project with none has no estimate."""
    q = (select(JobRow.project, JobRow.started_at, JobRow.finished_at)
         .where(JobRow.state == "succeeded", JobRow.finished_at >= now - window_s,
                JobRow.started_at.is_not(None))
         .order_by(JobRow.finished_at.desc()).limit(SCANNED_RUNS))
    runs: dict[str, list[float]] = {}
    with store.session() as s:
        for project, started, finished in s.execute(q):
            got = runs.setdefault(project, [])
            if len(got) < RECENT_RUNS and finished is not None and started is not None:
                got.append(max(0.0, finished - started))
    return {p: statistics.median(v) for p, v in runs.items() if v}


#: how far back expected run times look when the fair share has no window (seconds)
RUNTIME_WINDOW_S = 30 * 86400.0


def past(store: Store, now: float, cfg: SchedulerConfig
         ) -> tuple[dict[str, float], dict[str, float]]:
    """What the core reads of the past: each project's decayed usage (only when the time-aware
    fair share is on) and its expected run time, with the config's half-life and window."""
    used = (decayed(store, now, cfg.usage_half_life_s, cfg.usage_window_s)
            if cfg.usage_k > 0 else {})
    return used, expected_runtimes(store, now, cfg.usage_window_s or RUNTIME_WINDOW_S)
