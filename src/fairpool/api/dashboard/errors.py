"""Errors inside /ui are pages, not JSON: a missing or invalid sign-in goes to the login page,
a refusal or a missing job says so in words, and nothing ever shows a traceback. Everywhere
else the API's own handlers answer as before."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fairpool.api import guard
from fairpool.api.dashboard import session
from fairpool.api.dashboard.render import page
from fairpool.auth.rbac import Principal
from fairpool.services.errors import ServiceError

log = logging.getLogger("fairpool.api.dashboard")

Handler = Callable[[Request, Exception], Response | Awaitable[Response]]
TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed here",
          409: "Conflict", 413: "Too large", 422: "Invalid input", 429: "Too many requests",
          500: "Something went wrong"}


def _who(request: Request) -> Principal | None:
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else None


def error_page(request: Request, status: int, message: str) -> Response:
    return page(request, "error.html", _who(request), status=status, code=status,
                title=TITLES.get(status, "Error"), message=message)


def to_login(request: Request) -> Response:
    """Sign in again, then come back here (to the overview after a form's POST)."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/ui"
    return session.signed_out(request, "/ui/login?next=" + quote(session.safe_next(target)))


async def _service(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if exc.status == 401:
        return to_login(request)
    return error_page(request, exc.status, exc.message)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return error_page(request, 422, "; ".join(problems))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_page(request, 404, f"There is no page at {request.url.path}.")
    return error_page(request, exc.status_code, str(exc.detail))


async def _crash(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in the dashboard", exc_info=exc)
    return error_page(request, 500, "The server hit an unexpected error; its log has the "
                                    "details.")


def _wrap(app: FastAPI, kind: type[Exception], ui: Handler) -> None:
    previous: Handler | None = app.exception_handlers.get(kind)

    async def handler(request: Request, exc: Exception) -> Response:
        if guard.is_ui(request.url.path) or previous is None:
            result = ui(request, exc)
        else:
            result = previous(request, exc)
        return await result if inspect.isawaitable(result) else result

    app.add_exception_handler(kind, handler)


def install(app: FastAPI) -> None:
    """Call after the API's handlers are installed: these wrap them."""
    _wrap(app, ServiceError, _service)
    _wrap(app, RequestValidationError, _invalid)
    _wrap(app, StarletteHTTPException, _http)
    _wrap(app, Exception, _crash)
