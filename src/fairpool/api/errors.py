"""Error responses: one JSON shape, ``{"error": "...what to fix..."}``, never a traceback."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from fairpool.services.errors import ServiceError

log = logging.getLogger("fairpool.api")


class ErrorOut(BaseModel):
    """Every error response: one line saying what to fix (and, for 422, each problem)."""

    error: str
    details: list[dict[str, Any]] | None = None


_WHAT = {400: "the body could not be read as JSON (not UTF-8, or nested too deeply)",
         401: "no valid credentials", 403: "not allowed for your role",
         404: "does not exist, or not visible to you", 409: "conflicts with the current state",
         413: "request body too large", 422: "invalid input", 429: "too many requests"}
#: the error responses every API route may give, for the OpenAPI document
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what} for code, what in _WHAT.items()}
#: the same for a route whose success is not JSON: FastAPI would document its errors in that
#: route's media type, but they are JSON like every other (ErrorOut is in the document through
#: the other routes)
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": what,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for code, what in _WHAT.items()}


#: FastAPI's answer to a body json.loads fails on other than by a syntax error (too deeply
#: nested: RecursionError; not UTF-8), which does not say what to fix
_FASTAPI_UNPARSED = "There was an error parsing the body"
_UNPARSED = ("the body could not be read as JSON: send one UTF-8 JSON object with the fields "
             "in /docs, not nested hundreds of levels deep")


def _safe(value: object) -> str | int:
    """Input echoed back (field names, messages) must always be encodable JSON text."""
    if isinstance(value, int):
        return value
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _where(loc: tuple[object, ...]) -> str:
    parts = [str(_safe(p)) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {}
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="fairpool"'
        retry = getattr(exc, "retry_after_s", None)
        if retry is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry)))
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                problems.append("the body is not valid JSON: " + str(err.get("ctx", {}).get(
                    "error", "syntax error")))
                continue
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = "unknown field; remove it (see /docs for the fields)"
            problems.append(f"{_where(tuple(err.get('loc', ())))}: {msg}")
        details = [{"type": str(e.get("type")), "loc": [_safe(p) for p in e.get("loc", ())],
                    "msg": _safe(e.get("msg", ""))} for e in exc.errors()]
        return JSONResponse({"error": _safe("; ".join(problems)), "details": details},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and detail == _FASTAPI_UNPARSED:
            detail = _UNPARSED
        return JSONResponse({"error": detail}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:  # pragma: no cover
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"error": "internal error; the server log has the details"},
                            status_code=500)
