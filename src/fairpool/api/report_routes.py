"""Routes of what the pool reports: usage accounting (JSON or CSV) and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from fairpool.api import guard, metrics
from fairpool.api.context import AppContext
from fairpool.api.errors import ERRORS
from fairpool.api.routes import visible_queues
from fairpool.auth.rbac import Perm, Principal
from fairpool.schemas.usage import SeriesOut, UsageOut
from fairpool.services import usage

Epoch = Annotated[float | None, Query(ge=0, le=1e11, description="seconds since the epoch")]


def _range(start: float | None, end: float | None) -> tuple[float, float]:
    end = time.time() if end is None else end
    return (end - 30 * 86400 if start is None else start), end


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(responses=ERRORS)
    signed_in = guard.signed_in(ctx)
    registry = metrics.registry(ctx.store, ctx.stats, ctx.scheduler)

    @api.get("/api/v1/usage", response_model=list[UsageOut],
             responses={200: {"content": {"text/csv": {}}}})
    def usage_report(
        start: Annotated[float | None, Query(alias="from", ge=0, le=1e11,
                                             description="default: 30 days before to")] = None,
        end: Annotated[float | None, Query(alias="to", ge=0, le=1e11,
                                           description="default: now")] = None,
        by: Literal["job", "project", "department"] = "project",
        format: Literal["json", "csv"] = "json",
        who: Principal = signed_in,
    ) -> list[UsageOut] | Response:
        """GPU-hours allocated and used (where measured) over a time range, in the caller's
        projects."""
        lo, hi = _range(start, end)
        rows = usage.report(ctx.store, lo, hi, by, within=visible_queues(ctx, who))
        if format == "csv":
            return Response(usage.to_csv(rows, by), media_type="text/csv; charset=utf-8")
        return rows

    @api.get("/api/v1/usage/series", response_model=SeriesOut)
    def usage_series(
        start: Annotated[float | None, Query(alias="from", ge=0, le=1e11)] = None,
        end: Annotated[float | None, Query(alias="to", ge=0, le=1e11)] = None,
        steps: Annotated[int, Query(ge=1, le=2000)] = 60,
        who: Principal = signed_in,
    ) -> SeriesOut:
        """GPUs held per project over time (the mean of each step), for charts."""
        lo, hi = _range(start, end)
        return usage.series(ctx.store, lo, hi, steps, within=visible_queues(ctx, who))

    @api.get("/metrics", response_class=Response, include_in_schema=True,
             dependencies=[guard.allow(ctx, Perm.READ, guard.pool())],
             responses={200: {"content": {"text/plain": {}}}})
    def prometheus() -> Response:
        """Prometheus metrics (needs read access to the whole pool: a viewer on * or admin)."""
        return Response(metrics.render(registry),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    return api
