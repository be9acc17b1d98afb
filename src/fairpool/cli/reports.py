"""CLI commands of reports and policies: usage accounting and projects' idle-GPU policy."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

import typer

from fairpool.cli.common import WideOpt
from fairpool.cli.output import Col, call, emit_json, fail, plain, show, table
from fairpool.client import Client, FairpoolError
from fairpool.client.api import build
from fairpool.schemas.queues import IdlePolicySpec, QueueUpdate
from fairpool.schemas.usage import UsageOut


def register(app: typer.Typer, project_app: typer.Typer) -> None:
    app.command(name="usage")(usage)
    project_app.command(name="set-idle")(set_idle)
    project_app.command(name="set-max-runtime")(set_max_runtime)
    project_app.command(name="set-order")(set_order)


def parse_time(text: str, option: str) -> float:
    """ISO date or date-time (local time unless it says otherwise), or seconds since the
    epoch."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        fail(f"{option} {text!r}: write a date like 2026-11-01, a time like "
             "2026-11-01T08:00, or seconds since the epoch")


def usage(
    start: Annotated[str | None, typer.Option("--from", help="start (default: 30 days ago)")
                     ] = None,
    end: Annotated[str | None, typer.Option("--to", help="end (default: now)")] = None,
    by: Annotated[str, typer.Option(help="project, department or job")] = "project",
    csv: Annotated[bool, typer.Option("--csv", help="print CSV")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    wide: WideOpt = False,
) -> None:
    """GPU-hours allocated and actually used, per project, department or job."""
    if by not in ("project", "department", "job"):
        fail("--by: use project, department or job")
    hi = time.time() if end is None else parse_time(end, "--to")
    lo = hi - 30 * 86400 if start is None else parse_time(start, "--from")
    with Client() as c:
        if csv:
            plain(call(lambda: c.usage_csv(lo, hi, by)))
            return
        rows = call(lambda: c.usage(lo, hi, by))
    if as_json:
        emit_json(rows)
        return
    title = (f"GPU-hours {datetime.fromtimestamp(lo):%Y-%m-%d %H:%M} → "
             f"{datetime.fromtimestamp(hi):%Y-%m-%d %H:%M}")
    # at 80 columns the measured GPU-hours and a project's department give way
    keys = [Col(name, "id", drop=1 if name == "department" and by != "department" else 0)
            for name in KEYS[by]]
    table(title, [*keys, Col("jobs", "num"), Col("allocated", "num"), Col("used", "num"),
                  Col("measured", "num", drop=2), Col("efficiency", "num")], [
        [*_keys(r, by), str(r.jobs), f"{r.allocated_gpu_hours:.2f}",
         f"{r.used_gpu_hours:.2f}", f"{r.measured_gpu_hours:.2f}",
         f"{r.used_gpu_hours / r.measured_gpu_hours:.0%}" if r.measured_gpu_hours else "-"]
        for r in rows], wide=wide)


#: what says what a row is, per grouping (as the dashboard and the CSV show it)
KEYS = {"job": ("job", "project", "department"), "project": ("project", "department"),
        "department": ("department",)}


def _keys(row: UsageOut, by: str) -> list[str]:
    return {"job": [row.key, row.project or "", row.department],
            "project": [row.key, row.department], "department": [row.key]}[by]


def set_idle(
    name: str,
    action: Annotated[str, typer.Option(help="none, notify, preempt or stop")] = "notify",
    threshold: Annotated[float, typer.Option(help="utilisation below this is idle (0..1)")
                         ] = 0.05,
    after: Annotated[float, typer.Option(help="seconds idle before a job is flagged")] = 1800,
    stop_after: Annotated[float | None, typer.Option(
        help="for --action stop: seconds idle before the job is ended")] = None,
) -> None:
    """Set a project's idle-GPU policy (what happens to jobs whose GPUs stay idle)."""
    try:
        idle = build(IdlePolicySpec, action=action, threshold=threshold, after_s=after,
                     stop_after_s=stop_after)
    except FairpoolError as exc:
        fail(exc.message.replace("_s", "").replace("_", "-"))
    with Client() as c:
        q = call(lambda: c.update_queue(name, QueueUpdate(idle=idle)))
    if q.idle is not None:
        show(f"{q.name}: idle GPUs (below {q.idle.threshold:.0%} for {q.idle.after_s:g} s) → "
             f"{q.idle.action}",
             f", ended after {q.idle.stop_after_s:g} s" if q.idle.stop_after_s else "")



def set_max_runtime(
    name: str,
    seconds: Annotated[float, typer.Argument(help="the default; 0 removes it")],
) -> None:
    """Set the max runtime of a project's jobs that do not set their own (--max-runtime)."""
    if seconds < 0:
        fail("seconds: 0 or more (0 removes the default)")
    with Client() as c:
        q = call(lambda: c.update_queue(name, QueueUpdate(default_max_runtime_s=seconds)))
    show(f"{q.name}: jobs stop after {q.default_max_runtime_s:g} s unless they set "
         "--max-runtime" if q.default_max_runtime_s else f"{q.name}: no default max runtime")


def set_order(
    name: str,
    order: Annotated[str, typer.Argument(
        help="fifo, priority, attained, or default (the pool's)")],
) -> None:
    """Set the order of a project's waiting jobs: fifo (submit time), priority (then submit
    time), or attained (least GPU time received first; long waits are promoted)."""
    try:
        spec = build(QueueUpdate, job_order=order)
    except FairpoolError as exc:
        fail(exc.message.replace("_", "-"))
    with Client() as c:
        q = call(lambda: c.update_queue(name, spec))
    show(f"{q.name}: waiting jobs in {q.job_order} order" if q.job_order
         else f"{q.name}: waiting jobs in the pool's default order")
