"""The FastAPI application. Every route needs a bearer token except /health and the API's
documentation (/docs, /openapi.json), which hold no data; the dashboard's pages under /ui take
the same token from their sign-in cookie."""

from __future__ import annotations

from fastapi import FastAPI

from fairpool import __version__
from fairpool.api import access_routes, dashboard, errors, job_routes, node_routes, report_routes
from fairpool.api.context import AppContext
from fairpool.api.limits import BodyLimit
from fairpool.api.routes import router


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="fairpool", version=__version__,
                  description="GPU pool orchestrator: quotas, fair share, gangs, fractions")
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=ctx.max_body_bytes)
    app.include_router(router(ctx))
    app.include_router(job_routes.router(ctx))
    app.include_router(access_routes.router(ctx))
    app.include_router(report_routes.router(ctx))
    app.include_router(node_routes.router(ctx))
    dashboard.install(app, ctx)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
