"""The API's documentation pages, /docs (Swagger UI) and /redoc, served whole from this server:
their scripts and styles come from the ``fastapi-offline`` package (Swagger UI's and ReDoc's
dist files, MIT) under /docs-static/, so they work on a pool without internet, and a
Content-Security-Policy keeps the browser from loading anything from elsewhere."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

#: the package's static files: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js
ASSETS = Path(fastapi_offline.__file__).with_name("static")
PREFIX = "/docs-static"
#: the dashboard's own icon
FAVICON = "/ui/static/favicon.svg"
#: the pages' inline start-up script and Swagger UI's inline styles are ours; everything
#: else only from this server (ReDoc starts its search worker from a blob)
POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
          "'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' "
          "blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
          "form-action 'self'")


def _guarded(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = POLICY
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc on ``app`` (made with ``docs_url=None, redoc_url=None``) from the
    packaged assets."""
    if not (ASSETS / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"Swagger UI's files are missing from {ASSETS}; reinstall the "
                           "fastapi-offline package")
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-static")
    spec = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return _guarded(get_swagger_ui_html(
            openapi_url=spec, title=f"{app.title} - API",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css", swagger_favicon_url=FAVICON,
            # no badge that sends the spec's address to the public validator
            swagger_ui_parameters={"validatorUrl": None}))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return _guarded(get_redoc_html(
            openapi_url=spec, title=f"{app.title} - API reference",
            redoc_js_url=f"{PREFIX}/redoc.standalone.js", redoc_favicon_url=FAVICON,
            with_google_fonts=False))
