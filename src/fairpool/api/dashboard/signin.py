"""Signing in and out of the dashboard: a form for an API token, checked exactly as the API
checks a bearer token, and the cookie that keeps it."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from fairpool.api import guard
from fairpool.api.context import AppContext
from fairpool.api.dashboard import session
from fairpool.api.dashboard.render import page
from fairpool.services.errors import ServiceError


def router(ctx: AppContext) -> APIRouter:
    ui = APIRouter(prefix="/ui", include_in_schema=False)

    @ui.get("/login")
    def login_form(request: Request, next: str = "/ui") -> Response:
        return page(request, "login.html", None, next=session.safe_next(next), error=None)

    @ui.post("/login")
    async def login(request: Request) -> Response:
        refused = session.cross_site(request)
        if refused is not None:  # a form on another site must not sign a browser in
            return page(request, "login.html", None, status=403, next="/ui", error=refused)
        data = await session.form(request)
        token = data.get("token", "").strip()
        to = session.safe_next(data.get("next"))
        error = None
        if not token:
            error = "Paste an API token to sign in."
        elif len(token) > session.MAX_TOKEN_CHARS:
            error = "That is not a token: it is far too long."
        else:
            try:
                await run_in_threadpool(ctx.auth.authenticate, f"Bearer {token}",
                                        guard.address(request))
            except ServiceError as exc:
                error = f"That token was not accepted: {exc.message}."
        if error is None:
            return session.signed_in(request, token, to)
        response = page(request, "login.html", None, status=401, next=to, error=error)
        response.delete_cookie(session.COOKIE, path=session.COOKIE_PATH, httponly=True,
                               samesite="strict", secure=request.url.scheme == "https")
        return response

    @ui.get("/logout")
    def logout_get(request: Request) -> Response:
        return session.signed_out(request)

    @ui.post("/logout")
    def logout(request: Request) -> Response:
        return session.signed_out(request)

    return ui
