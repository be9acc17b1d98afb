"""The FastAPI application. Every route needs a bearer token except /health and the API's
documentation (/docs, /redoc, their files under /docs-static, /openapi.json), which hold
no data; the dashboard's pages under /ui take the same token from their sign-in cookie."""

from __future__ import annotations

from fastapi import FastAPI

from fairpool import __version__
from fairpool.api import access_routes, dashboard, errors, job_routes, node_routes, report_routes
from fairpool.api.context import AppContext
from fairpool.api.docs import install as install_docs
from fairpool.api.limits import BodyLimit
from fairpool.api.routes import router
from fairpool.api.webhook_routes import router as webhook_router


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="fairpool", version=__version__,
                  description="GPU pool orchestrator: quotas, fair share, gangs, fractions",
                  docs_url=None, redoc_url=None)  # served offline: api/docs.py
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=ctx.max_body_bytes)
    app.include_router(router(ctx))
    app.include_router(job_routes.router(ctx))
    app.include_router(access_routes.router(ctx))
    app.include_router(report_routes.router(ctx))
    app.include_router(node_routes.router(ctx))
    app.include_router(webhook_router(ctx))
    dashboard.install(app, ctx)
    install_docs(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
