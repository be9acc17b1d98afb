"""The pool's pages: the overview (nodes and who holds their GPUs), queues (quota, fair share
and allocation, and allocation over time) and usage (GPU-hours allocated and used). Each shows
only what the caller's roles let it read, through the same filters as the REST API."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from markupsafe import Markup

from fairpool.api import guard
from fairpool.api.context import AppContext
from fairpool.api.dashboard import charts, overview
from fairpool.api.dashboard.palette import DEPARTMENT, Palette
from fairpool.api.dashboard.render import page
from fairpool.api.routes import visible_queues
from fairpool.auth.rbac import Principal
from fairpool.domain.states import HOLDING_VALUES
from fairpool.schemas.queues import QueueOut
from fairpool.services import jobs, nodes, queues, usage

Hours = Annotated[float, Query(gt=0, le=24 * 90, description="the chart's period")]
Days = Annotated[float, Query(gt=0, le=3650, description="the report's period")]
Group = Literal["project", "department", "job"]


@dataclass
class QueueRow:
    queue: QueueOut
    color: str
    bar: Markup

    @property
    def fair(self) -> float | None:
        return None if self.queue.fair_share is None else self.queue.fair_share.gpus


@dataclass
class Department:
    name: str
    row: QueueRow | None  # None: the caller sees only some of its projects
    projects: list[QueueRow]


def scope(ctx: AppContext, who: Principal) -> tuple[set[str] | None, list[QueueOut], Palette]:
    """What the caller may read: queue names (None: all), those queues, their colours."""
    only = visible_queues(ctx, who)
    shown = [q for q in queues.list_queues(ctx.store) if only is None or q.name in only]
    return only, shown, Palette(q.name for q in shown if q.kind == "project")


def _departments(shown: list[QueueOut], palette: Palette) -> list[Department]:
    scale = 1.0
    for q in shown:
        fair = 0.0 if q.fair_share is None else q.fair_share.gpus
        limit = 0.0 if q.limit is None or q.limit.gpus is None else min(q.limit.gpus, 1e6)
        scale = max(scale, q.quota.gpus, fair, q.allocated.gpus + q.pending.gpus, limit)
    scale *= 1.08  # room for the marks at the end

    def row(q: QueueOut, color: str) -> QueueRow:
        return QueueRow(q, color, charts.queue_bar(
            quota=q.quota.gpus, fair=None if q.fair_share is None else q.fair_share.gpus,
            allocated=q.allocated.gpus, pending=q.pending.gpus,
            limit=None if q.limit is None else q.limit.gpus, scale=scale, color=color,
            name=q.name))

    out: dict[str, Department] = {}
    for q in shown:
        if q.kind == "department":
            out.setdefault(q.name, Department(q.name, None, [])).row = row(q, DEPARTMENT)
        elif q.parent is not None:
            dept = out.setdefault(q.parent, Department(q.parent, None, []))
            dept.projects.append(row(q, palette(q.name)))
    return sorted(out.values(), key=lambda d: d.name)


def router(ctx: AppContext) -> APIRouter:
    ui = APIRouter(prefix="/ui", include_in_schema=False)
    signed_in = guard.signed_in(ctx)

    @ui.get("")
    def home(request: Request, who: Principal = signed_in) -> Response:
        only, shown, palette = scope(ctx, who)
        holding = [j for state in HOLDING_VALUES
                   for j in jobs.list_jobs(ctx.store, state=state, limit=10_000, within=only)]
        cards, summary = overview.build(nodes.list_nodes(ctx.store, within=only), holding,
                                        shown, palette)
        return page(request, "overview.html", who, cards=cards, summary=summary,
                    legend=palette.legend(), scoped=only is not None, refresh=True)

    @ui.get("/queues")
    def queue_page(request: Request, hours: Hours = 1.0, who: Principal = signed_in
                   ) -> Response:
        only, shown, palette = scope(ctx, who)
        end = time.time()
        span = hours * 3600
        data = usage.series(ctx.store, end - span, end, 60, within=only)
        capacity = sum(len(n.devices) for n in nodes.list_nodes(ctx.store, within=only))
        chart = charts.area_chart(data, span, palette, float(capacity) or None)
        return page(request, "queues.html", who, departments=_departments(shown, palette),
                    chart=chart, hours=hours, legend=palette.legend(), refresh=True,
                    periods=((0.25, "15 min"), (1, "1 hour"), (6, "6 hours"),
                             (24, "24 hours"), (168, "7 days")))

    @ui.get("/usage")
    def usage_page(request: Request, days: Days = 30.0, by: Group = "project",
                   who: Principal = signed_in) -> Response:
        only, _, palette = scope(ctx, who)
        end = time.time()
        rows = usage.report(ctx.store, end - days * 86400, end, by, within=only)
        if by == "department":
            departments = Palette(r.key for r in rows)
            chart = charts.usage_bars(rows, lambda r: departments(r.key))
        else:
            chart = charts.usage_bars(rows, lambda r: palette(r.project))
        totals = {"jobs": sum(r.jobs for r in rows),
                  "allocated": sum(r.allocated_gpu_hours for r in rows),
                  "used": sum(r.used_gpu_hours for r in rows),
                  "measured": sum(r.measured_gpu_hours for r in rows)}
        return page(request, "usage.html", who, rows=rows, chart=chart, days=days, by=by,
                    totals=totals, periods=((1, "1 day"), (7, "7 days"), (30, "30 days"),
                                            (90, "90 days")))

    @ui.get("/usage.csv")
    def usage_csv(days: Days = 30.0, by: Group = "project", who: Principal = signed_in
                  ) -> Response:
        end = time.time()
        rows = usage.report(ctx.store, end - days * 86400, end, by,
                            within=visible_queues(ctx, who))
        return Response(usage.to_csv(rows, by), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 f'attachment; filename="fairpool-usage-{by}.csv"'})

    return ui
