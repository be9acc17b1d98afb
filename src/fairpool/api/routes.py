"""Routers: validate, call one service function, map the result. Nothing else lives here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from fairpool.api.context import AppContext
from fairpool.domain.states import TERMINAL_STATES, JobState
from fairpool.services import jobs, nodes, queues
from fairpool.services.specs import (
    EventOut,
    ExplainOut,
    JobOut,
    JobSubmit,
    NodeOut,
    ProjectCreate,
    QueueCreate,
    QueueOut,
    QueueUpdate,
)

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="job id")]
QueueName = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
FINAL = {s.value for s in (*TERMINAL_STATES, JobState.FAILED)}


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1")

    @api.post("/departments", status_code=201, response_model=QueueOut)
    def create_department(spec: QueueCreate) -> QueueOut:
        return queues.create_department(ctx.store, spec)

    @api.post("/projects", status_code=201, response_model=QueueOut)
    def create_project(spec: ProjectCreate) -> QueueOut:
        return queues.create_project(ctx.store, spec)

    @api.patch("/queues/{name}", response_model=QueueOut)
    def update_queue(name: QueueName, spec: QueueUpdate) -> QueueOut:
        out = queues.update_queue(ctx.store, name, spec)
        ctx.wake()
        return out

    @api.get("/queues", response_model=list[QueueOut])
    def list_queues() -> list[QueueOut]:
        return queues.list_queues(ctx.store)

    @api.get("/queues/{name}", response_model=QueueOut)
    def get_queue(name: QueueName) -> QueueOut:
        return queues.queue_status(ctx.store, name)

    @api.post("/jobs", status_code=201, response_model=JobOut)
    def submit(spec: JobSubmit, response: Response) -> JobOut:
        out, created = jobs.submit(ctx.store, spec, ctx.wake)
        if not created:
            response.status_code = 200
        return out

    @api.get("/jobs", response_model=list[JobOut])
    def list_jobs(
        project: Annotated[str | None, Query(max_length=63)] = None,
        state: Annotated[str | None, Query(max_length=16)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[JobOut]:
        return jobs.list_jobs(ctx.store, project, state, limit)

    @api.get("/jobs/{job_id}", response_model=JobOut)
    def get_job(job_id: JobId) -> JobOut:
        return jobs.get_job(ctx.store, job_id)

    @api.post("/jobs/{job_id}/cancel", response_model=JobOut)
    def cancel(job_id: JobId) -> JobOut:
        return jobs.cancel(ctx.store, job_id, ctx.wake)

    @api.get("/jobs/{job_id}/events", response_model=list[EventOut])
    def events(job_id: JobId) -> list[EventOut]:
        return jobs.events(ctx.store, job_id)

    @api.get("/jobs/{job_id}/explain", response_model=ExplainOut)
    def explain(job_id: JobId) -> ExplainOut:
        return jobs.explain(ctx.store, job_id)

    @api.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
    def logs(
        request: Request,
        job_id: JobId,
        rank: Annotated[int, Query(ge=0, le=4095)] = 0,
        attempt: Annotated[int | None, Query(ge=0)] = None,
        follow: bool = False,
    ) -> Response:
        path, job = jobs.log_file(ctx.store, ctx.data_dir, job_id, rank, attempt)
        if not follow:
            text = path.read_bytes() if path.exists() else b""
            return Response(text, media_type="text/plain; charset=utf-8")

        async def stream() -> AsyncIterator[bytes]:
            offset = 0
            done = False
            while True:
                if await request.is_disconnected():
                    return
                chunk = b""
                if path.exists():
                    with path.open("rb") as f:
                        f.seek(offset)
                        chunk = f.read(1 << 16)
                if chunk:
                    offset += len(chunk)
                    yield chunk
                    continue
                if done:  # the job ended and the file has been read to its end since
                    return
                state = await asyncio.to_thread(jobs.get_job, ctx.store, job_id)
                if state.state in FINAL or (state.attempt != job.attempt and attempt is None):
                    done = True  # one more read: lines written just before the end
                    continue
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")

    @api.get("/nodes", response_model=list[NodeOut])
    def list_nodes() -> list[NodeOut]:
        return nodes.list_nodes(ctx.store)

    return api
