"""Dashboard sign-in: the API token a user pastes is checked like any bearer token and kept in
an HttpOnly, SameSite=Strict cookie sent only to /ui (the guard reads it there, see
:func:`fairpool.api.guard.credentials`). Forms that change state carry a CSRF token, an
HMAC-SHA256 of the signed-in token under a per-process random key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse

from fairpool.api import guard

COOKIE = guard.UI_COOKIE
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE_S = 12 * 3600
MAX_FORM_BYTES = 16 * 1024
MAX_TOKEN_CHARS = 8192  # API tokens are 60 characters; identity-provider JWTs can be long

#: the CSRF key: random per process, so a restart only makes open forms stale
_KEY = secrets.token_bytes(32)


def signed_token(request: Request) -> str | None:
    """The token this request authenticates with (header or cookie), without the scheme."""
    found = guard.credentials(request)
    if found is None:
        return None
    scheme, _, value = found.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def csrf_token(token: str) -> str:
    return hmac.new(_KEY, token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(request: Request, sent: str | None) -> bool:
    token = signed_token(request)
    if token is None or not sent:
        return False
    return hmac.compare_digest(csrf_token(token), sent)


def cross_site(request: Request) -> str | None:
    """Why a form post comes from another site (None: it does not). Browsers name the page a
    post comes from in ``Origin`` (every current browser on every POST), or else in
    ``Referer``; either must be this server as the browser reached it (its ``Host``). A post
    with neither comes from no browser page, which a login CSRF needs."""
    host = request.headers.get("host", "").lower()
    # behind a proxy, the name the browser used (a form post cannot set this header)
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip().lower()
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value is None:
            continue
        sender = urlsplit(value)
        if value == "null" or sender.scheme not in ("http", "https") or (
                sender.netloc.lower() not in {host, forwarded} - {""}):
            shown = value[:80] if value.isascii() and value.isprintable() else "another page"
            return (f"Sign-in refused: the form was sent from {shown}, not from this server "
                    f"({host or 'unknown'}). Open the sign-in page of this server and sign in "
                    f"there.")
        return None
    return None


async def form(request: Request) -> dict[str, str]:
    """A small url-encoded form body (the first value of each field)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True,
                          max_num_fields=16)
    except ValueError:  # more fields than any of our forms has
        return {}
    return {key: values[0] for key, values in parsed.items() if values}


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard page of this server, nothing else."""
    if not value or not guard.is_ui(value.split("?", 1)[0]) or "//" in value or "\\" in value:
        return "/ui"
    return value


def signed_in(request: Request, token: str, to: str) -> RedirectResponse:
    response = RedirectResponse(safe_next(to), status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE_S, path=COOKIE_PATH,
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


def signed_out(request: Request, to: str = "/ui/login") -> RedirectResponse:
    response = RedirectResponse(to, status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
