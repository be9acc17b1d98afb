"""fairpool's web dashboard under /ui: server-rendered pages over the same services, filters
and guards as the REST API, signed in with an API token kept in an HttpOnly cookie."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fairpool.api.context import AppContext
from fairpool.api.dashboard import errors, job_pages, pages, signin

STATIC = Path(__file__).with_name("static")


def install(app: FastAPI, ctx: AppContext) -> None:
    """Add the dashboard's routes, its static files and its HTML error pages to ``app``
    (after the API's own error handlers, which it wraps)."""
    errors.install(app)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(signin.router(ctx))
    app.include_router(pages.router(ctx))
    app.include_router(job_pages.router(ctx))
