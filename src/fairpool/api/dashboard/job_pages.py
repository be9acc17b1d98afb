"""Job pages: the list with its filters, one job's details (placement, events, why it waits,
the tail of its log, with the whole log as a download) and the cancel form. Reading a job and
cancelling it go through the same guard dependencies as the REST API; the cancel form also
needs its CSRF token."""

from __future__ import annotations

import os
import re
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from fairpool.api import guard
from fairpool.api import logs as log_reads
from fairpool.api.context import AppContext
from fairpool.api.dashboard import session
from fairpool.api.dashboard.pages import scope
from fairpool.api.dashboard.render import FINAL, HEADERS, page
from fairpool.auth.rbac import Perm, Principal
from fairpool.domain.states import JobState
from fairpool.services import jobs
from fairpool.services.scopes import job_path

JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="job id")]
LOG_LINES = 500
LOG_BYTES = 512 * 1024
LIST_LIMIT = 200
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def tail(path: FilePath, lines: int = LOG_LINES, max_bytes: int = LOG_BYTES) -> str:
    """The last ``lines`` lines of a log, as printable text, from its last ``max_bytes``."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return ""
    with f:
        size = os.fstat(f.fileno()).st_size
        floor = max(0, size - max_bytes)
        start = log_reads.tail_start(f, size, lines, floor)
        f.seek(start)
        data = f.read(size - start)
    text = data.decode("utf-8", "replace")
    if 0 < floor == start:  # the first line is cut
        text = text.partition("\n")[2]
    text = CONTROL.sub("", ANSI.sub("", text.replace("\r\n", "\n")))
    return "\n".join(text.splitlines()[-lines:])


def _blank(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


def router(ctx: AppContext) -> APIRouter:
    ui = APIRouter(prefix="/ui", include_in_schema=False)
    signed_in = guard.signed_in(ctx)
    job_read = guard.allow(ctx, Perm.READ, guard.job_param())
    job_cancel = guard.allow(ctx, Perm.CANCEL, guard.job_param())

    @ui.get("/jobs")
    def job_list(
        request: Request,
        project: Annotated[str | None, Query(max_length=63)] = None,
        state: Annotated[str | None, Query(max_length=16)] = None,
        who: Principal = signed_in,
    ) -> Response:
        only, _, palette = scope(ctx, who)
        project, state = _blank(project), _blank(state)
        found = jobs.list_jobs(ctx.store, project, state, LIST_LIMIT, within=only)
        return page(request, "jobs.html", who, jobs=found, project=project, state=state,
                    projects=[name for name, _ in palette.legend()], palette=palette,
                    states=[s.value for s in JobState], limit=LIST_LIMIT, refresh=True)

    @ui.get("/jobs/{job_id}")
    def job_detail(request: Request, job_id: JobId, cancelled: bool = False,
                   who: Principal = job_read) -> Response:
        job = jobs.get_job(ctx.store, job_id)
        log_file, _ = jobs.log_file(ctx.store, ctx.data_dir, job_id, 0, None)
        path = job_path(ctx.store, job_id)
        _, _, palette = scope(ctx, who)
        # only whether to offer the button: the cancel route's guard decides
        offer_cancel = (job.state not in FINAL and path is not None
                        and who.allowed(Perm.CANCEL, path))
        return page(request, "job.html", who, job=job, events=jobs.events(ctx.store, job_id),
                    why=jobs.explain(ctx.store, job_id, ctx.scheduler), log=tail(log_file),
                    log_lines=LOG_LINES, offer_cancel=offer_cancel, cancelled=cancelled,
                    color=palette(job.project), refresh=job.state not in FINAL)

    @ui.get("/jobs/{job_id}/log")
    def job_log(job_id: JobId, rank: Annotated[int, Query(ge=0, le=4095)] = 0,
                attempt: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
                who: Principal = job_read) -> Response:
        """A worker's whole log as a download (streamed, as GET /api/v1/jobs/ID/logs)."""
        path, job = jobs.log_file(ctx.store, ctx.data_dir, job_id, rank, attempt)
        out = log_reads.read(path, None, None, None)
        name = f"{job_id}.{job.attempt if attempt is None else attempt}.{rank}.log"
        out.headers.update(HEADERS)
        out.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return out

    @ui.post("/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: JobId, who: Principal = job_cancel
                     ) -> Response:
        data = await session.form(request)
        if not session.csrf_ok(request, data.get("csrf")):
            raise guard.Forbidden("this form did not come from your dashboard session (or it "
                                  "is from before the server restarted); reload the page and "
                                  "try again")
        await run_in_threadpool(jobs.cancel, ctx.store, job_id, ctx.wake, actor=who.user,
                                address=guard.address(request))
        return RedirectResponse(f"/ui/jobs/{job_id}?cancelled=true", status_code=303)

    return ui
