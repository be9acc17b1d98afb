"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from fairpool import __version__
from fairpool.api import errors
from fairpool.api.context import AppContext
from fairpool.api.routes import router


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="fairpool", version=__version__,
                  description="GPU pool orchestrator: quotas, fair share, gangs, fractions")
    errors.install(app)
    app.include_router(router(ctx))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
