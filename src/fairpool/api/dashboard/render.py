"""Rendering: the Jinja environment (templates shipped in the package, autoescaped), the small
formatting filters the pages share, and the response headers every page carries."""

from __future__ import annotations

import shlex
import time
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from fairpool import __version__
from fairpool.api.dashboard import session
from fairpool.api.dashboard.charts import fmt, sig
from fairpool.auth.rbac import Principal
from fairpool.domain.states import FINISHED_VALUES
from fairpool.domain.words import plural
from fairpool.schemas.jobs import JobOut

#: scripts and styles only from this server; no framing, no referrer leaving it
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = (("/ui", "Overview"), ("/ui/queues", "Queues"), ("/ui/jobs", "Jobs"),
       ("/ui/usage", "Usage"))
#: states a job never leaves (domain/states.py's set)
FINAL = frozenset(FINISHED_VALUES)


def when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s < 600 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def ago(ts: float | None) -> str:
    if ts is None:
        return "—"
    return duration(time.time() - ts) + " ago"


def request_text(job: JobOut) -> str:
    """What one worker asks for, as people say it."""
    if job.gpus:
        return f"{job.gpus} GPU" + ("s" if job.gpus > 1 else "")
    if job.gpu_fraction is not None:
        return f"{fmt(job.gpu_fraction)} GPU"
    if job.gpu_memory_mib is not None:
        return f"{job.gpu_memory_mib} MiB"
    return "no GPU"


def state_class(state: str) -> str:
    return {"running": "ok", "succeeded": "done", "starting": "info", "admitted": "info",
            "queued": "wait", "requeued": "wait", "stopping": "warn", "failed": "bad",
            "cancelled": "muted"}.get(state, "muted")


ENV = Environment(loader=PackageLoader("fairpool.api.dashboard", "templates"),
                  autoescape=select_autoescape(["html"]), trim_blocks=True,
                  lstrip_blocks=True)
ENV.filters.update(when=when, ago=ago, duration=duration, num=fmt, sig=sig,
                   request=request_text, state_class=state_class, shell=shlex.join,
                   plural=plural)
ENV.globals.update(nav=NAV, version=__version__, final_states=FINAL)


def page(request: Request, template: str, who: Principal | None, status: int = 200,
         **values: Any) -> HTMLResponse:
    token = session.signed_token(request) if who is not None else None
    path = request.url.path
    current = next((href for href, _ in reversed(NAV)
                    if path == href or (href != "/ui" and path.startswith(href + "/"))), "")
    html = ENV.get_template(template).render(
        request=request, user=None if who is None else who.user, current=current,
        csrf="" if token is None else session.csrf_token(token), **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
