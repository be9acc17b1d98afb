"""Job routes: submit (a job, an array, a dry run), list, show, cancel (one, an array, many),
events, explain and logs of jobs, and resolving what people call them. As in
:mod:`fairpool.api.routes`: authorise, validate, call one service function, map the result."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError

from fairpool.api import guard
from fairpool.api import logs as log_reads
from fairpool.api.context import AppContext
from fairpool.api.errors import ERRORS, JSON_ERRORS
from fairpool.api.limits import submit_limited
from fairpool.api.routes import allowed_queues, visible_queues
from fairpool.auth.rbac import Perm, Principal
from fairpool.domain.states import FINISHED_VALUES
from fairpool.schemas.arrays import (
    ArrayOut,
    ArraySubmit,
    BulkCancel,
    BulkCancelOut,
    DryRunOut,
    RefOut,
)
from fairpool.schemas.jobs import EventOut, ExplainOut, JobOut, JobSubmit
from fairpool.services import arrays, dryrun, jobs, selection

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="job id")]
ArrayId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="array id")]


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=ERRORS)
    signed_in = guard.signed_in(ctx)
    job_read = guard.allow(ctx, Perm.READ, guard.job_param())
    job_cancel = guard.allow(ctx, Perm.CANCEL, guard.job_param())
    array_read = guard.allow(ctx, Perm.READ, guard.array_param())
    array_cancel = guard.allow(ctx, Perm.CANCEL, guard.array_param())

    submit_guard = submit_limited(ctx.submit_limiter, guard.allow(
        ctx, Perm.SUBMIT, guard.queue_in_body("project", "project")))

    @api.post("/jobs", status_code=201, response_model=JobOut, responses={200: {
        "model": JobOut, "description": "a job with this client_key exists already: that job"}})
    def submit(spec: JobSubmit, response: Response, request: Request,
               who: Principal = submit_guard) -> JobOut:
        out, created = jobs.submit(ctx.store, spec, ctx.wake, actor=who.user,
                                   max_pending=ctx.max_pending_per_project,
                                   address=guard.address(request),
                                   mount_roots=ctx.mount_roots,
                                   within=visible_queues(ctx, who))
        if not created:
            response.status_code = 200
        return out

    @api.post("/arrays", status_code=201, response_model=ArrayOut, responses={200: {
        "model": ArrayOut,
        "description": "an array with this client_key exists already: that array"}})
    def submit_array(spec: ArraySubmit, response: Response, request: Request,
                     who: Principal = submit_guard) -> ArrayOut:
        """Every task of a job array or sweep, in one request and one transaction."""
        out, created = arrays.submit_array(
            ctx.store, spec, ctx.wake, actor=who.user, max_pending=ctx.max_pending_per_project,
            address=guard.address(request), mount_roots=ctx.mount_roots,
            within=visible_queues(ctx, who))
        if not created:
            response.status_code = 200
        return out

    dry_run_guard = guard.allow(ctx, Perm.SUBMIT, guard.queue_in_body("project", "project"))

    @api.post("/jobs/dry-run", response_model=DryRunOut)
    def dry_run(body: Annotated[dict[str, Any], Body(description=(
            "a job (JobSubmit) or an array (ArraySubmit: with indices or params)"))],
            who: Principal = dry_run_guard) -> DryRunOut:
        """Check a submission against the pool as it is now; nothing is written."""
        kind: type[JobSubmit] = (ArraySubmit if "indices" in body or "params" in body
                                 else JobSubmit)
        try:
            spec = kind.model_validate(body)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        return dryrun.dry_run(ctx.store, spec, actor=who.user, mount_roots=ctx.mount_roots,
                              within=visible_queues(ctx, who), config=ctx.scheduler)

    @api.post("/jobs/cancel", response_model=BulkCancelOut)
    def cancel_many(spec: BulkCancel, request: Request,
                    who: Principal = signed_in) -> BulkCancelOut:
        """Cancel the listed jobs and every live job matching all the filters given, among
        those the caller may cancel (``dry_run``: only say which)."""
        return selection.cancel_many(ctx.store, spec, allowed_queues(ctx, who, Perm.CANCEL),
                                     ctx.wake, actor=who.user, address=guard.address(request))

    @api.get("/resolve", response_model=RefOut)
    def resolve(ref: Annotated[str, Query(min_length=1, max_length=200, description=(
            "a job or array id, a unique id prefix, ARRAY:INDEX, or a name"))],
            who: Principal = signed_in) -> RefOut:
        return selection.resolve(ctx.store, ref, visible_queues(ctx, who))

    @api.get("/arrays", response_model=list[ArrayOut])
    def list_arrays(
        project: Annotated[str | None, Query(max_length=63)] = None,
        user: Annotated[str | None, Query(max_length=253)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
        who: Principal = signed_in,
    ) -> list[ArrayOut]:
        return arrays.list_arrays(ctx.store, project, user, limit,
                                  within=visible_queues(ctx, who))

    @api.get("/arrays/{array_id}", response_model=ArrayOut, dependencies=[array_read])
    def get_array(array_id: ArrayId) -> ArrayOut:
        return arrays.get_array(ctx.store, array_id)

    @api.get("/arrays/{array_id}/tasks", response_model=list[JobOut],
             dependencies=[array_read])
    def array_tasks(array_id: ArrayId,
                    state: Annotated[str | None, Query(max_length=16)] = None,
                    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000) -> list[JobOut]:
        return arrays.tasks(ctx.store, array_id, state, limit)

    @api.post("/arrays/{array_id}/cancel", response_model=ArrayOut)
    def cancel_array(array_id: ArrayId, request: Request,
                     who: Principal = array_cancel) -> ArrayOut:
        return arrays.cancel_array(ctx.store, array_id, ctx.wake, actor=who.user,
                                   address=guard.address(request))

    @api.get("/jobs", response_model=list[JobOut])
    def list_jobs(
        project: Annotated[str | None, Query(max_length=63)] = None,
        state: Annotated[str | None, Query(max_length=16)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
        user: Annotated[str | None, Query(max_length=253, description="submitted by")] = None,
        array: Annotated[str | None, Query(pattern=r"^[0-9a-f]{12}$",
                                           description="only this array's tasks")] = None,
        tasks: Annotated[bool, Query(description="false: leave array tasks out")] = True,
        who: Principal = signed_in,
    ) -> list[JobOut]:
        return jobs.list_jobs(ctx.store, project, state, limit,
                              within=visible_queues(ctx, who), user=user, array=array,
                              tasks=tasks)

    @api.get("/jobs/{job_id}", response_model=JobOut, dependencies=[job_read])
    def get_job(job_id: JobId) -> JobOut:
        return jobs.get_job(ctx.store, job_id)

    @api.post("/jobs/{job_id}/cancel", response_model=JobOut)
    def cancel(job_id: JobId, request: Request,
               who: Principal = job_cancel) -> JobOut:
        return jobs.cancel(ctx.store, job_id, ctx.wake, actor=who.user,
                           address=guard.address(request))

    @api.get("/jobs/{job_id}/events", response_model=list[EventOut], dependencies=[job_read])
    def events(job_id: JobId) -> list[EventOut]:
        return jobs.events(ctx.store, job_id)

    @api.get("/jobs/{job_id}/explain", response_model=ExplainOut, dependencies=[job_read])
    def explain(job_id: JobId) -> ExplainOut:
        return jobs.explain(ctx.store, job_id, ctx.scheduler)

    @api.get("/jobs/{job_id}/logs", response_class=PlainTextResponse, dependencies=[job_read],
             responses={**JSON_ERRORS, 200: log_reads.OK})
    def logs(
        request: Request,
        job_id: JobId,
        rank: Annotated[int, Query(ge=0, le=4095)] = 0,
        attempt: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
        follow: Annotated[bool, Query(description="stream what is written until the job "
                                                  "ends")] = False,
        tail: Annotated[int | None, Query(ge=0, le=log_reads.TAIL_MAX,
                                          description=log_reads.DESCRIBE_TAIL)] = None,
        offset: Annotated[int | None, Query(ge=0, le=log_reads.OFFSET_MAX,
                                            description=log_reads.DESCRIBE_OFFSET)] = None,
        limit: Annotated[int | None, Query(ge=1, le=log_reads.LIMIT_MAX,
                                           description=log_reads.DESCRIBE_LIMIT)] = None,
    ) -> Response:
        """A worker's log, streamed: all of it, a byte range (offset, limit) or the last lines
        (tail); the X-Log-* headers say which bytes came, to read on from or follow."""
        path, job = jobs.log_file(ctx.store, ctx.data_dir, job_id, rank, attempt)
        if not follow:
            return log_reads.read(path, tail, offset, limit)

        async def ended() -> bool:
            state = await asyncio.to_thread(jobs.get_job, ctx.store, job_id)
            return state.state in FINISHED_VALUES or (state.attempt != job.attempt
                                                      and attempt is None)

        return log_reads.follow(request, path, tail, offset, limit, ended)

    return api
