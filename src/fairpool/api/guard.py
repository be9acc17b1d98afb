"""Authorisation in one place: every route names the permission it needs and where its target
sits, and these dependencies decide before the handler runs.

Outcomes are the same everywhere: no or bad credentials → 401; a target the caller cannot see
(or that does not exist) → 404 with the same message either way, so nobody learns what other
teams have; a target the caller sees but may not act on → 403 saying which role is missing.
Each refusal is recorded in the audit log (a flood of one caller's at a bounded rate, with a
count of those left out).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from fairpool.api.context import AppContext
from fairpool.auth.rbac import (
    POOL,
    ROLE_PERMS,
    ROLE_SCOPES,
    Path,
    Perm,
    Principal,
    may_grant,
)
from fairpool.domain.roles import Role
from fairpool.services import audit, roles, tokens
from fairpool.services.errors import NotFound, ServiceError
from fairpool.services.scopes import array_path, cached_path, job_path, queue_path


class Forbidden(ServiceError):
    status = 403


class Invalid422(ServiceError):
    status = 422


@dataclass(frozen=True)
class Target:
    """What a request acts on: a label for messages, the path that decides whether the caller
    may see it (None: it does not exist) and the path the permission is checked on."""

    label: str
    see: Path | None
    act: Path | None = None


Locate = Callable[[Request, AppContext], Awaitable[Target]]


def address(request: Request) -> str:
    return request.client.host if request.client else ""


#: the dashboard's cookie (sent only to /ui): the API token its user signed in with
UI_COOKIE = "fairpool_ui"


def is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


def credentials(request: Request) -> str | None:
    """The ``Authorization`` header; for a dashboard page without one, the token in the
    dashboard's cookie as a bearer token (the API itself never reads the cookie)."""
    header = request.headers.get("authorization")
    if header is None and is_ui(request.url.path):
        token = request.cookies.get(UI_COOKIE)
        if token:
            return f"Bearer {token}"
    return header


def authenticated(ctx: AppContext) -> Callable[[Request], Awaitable[Principal]]:
    async def principal(request: Request) -> Principal:
        header = credentials(request)
        found = ctx.auth.cached(header)  # most requests: no thread, no database
        if found is None:
            found = await run_in_threadpool(ctx.auth.authenticate, header, address(request))
        request.state.principal = found
        return found
    return principal


async def _deny(ctx: AppContext, request: Request, who: Principal, exc: ServiceError) -> None:
    """Record the refusal (a caller's flood of them at a bounded rate, the rest counted in its
    next record: a flood must not fill the log or slow everyone's writes) and raise it."""
    left_out = ctx.refusals.admit(who.user)
    if left_out is not None:
        detail = exc.message + (f" ({left_out} more refusals of {who.user} not recorded)"
                                if left_out else "")
        await run_in_threadpool(audit.record_now, ctx.store, who.user,
                                f"{request.method} {request.url.path}"[:48], request.url.path,
                                "denied", detail, address(request))
    raise exc


_DOING = {Perm.READ: "see", Perm.SUBMIT: "submit jobs", Perm.CANCEL: "cancel jobs",
          Perm.SECRETS: "manage secrets", Perm.MANAGE: "manage projects, quotas and roles",
          Perm.ADMIN: "use admin functions", Perm.ACCOUNTS: "map users to Unix accounts"}


#: the kinds of scope on a target's path, by its length: the pool, a department, a project
_KINDS = ("pool", "department", "project")


def _refusal(who: Principal, perm: Perm, act: Path) -> Forbidden:
    """403 naming the roles that would do, among those that can be granted on the target or a
    scope above it (no researcher on the whole pool: that role is given on projects and
    departments only)."""
    where = "the whole pool" if act == (POOL,) else act[-1]
    held = sorted({str(b.role) for b in who.bindings if b.scope in act}) or ["no role"]
    kinds = set(_KINDS[:len(act)])
    needs = [str(r) for r in Role if perm in ROLE_PERMS[r] and ROLE_SCOPES[r] & kinds
             and (r is not Role.ADMIN or act == (POOL,))]
    needs_text = " or ".join(needs) + (" on the whole pool (*)" if act == (POOL,)
                                       else f" on {where} or above")
    if Role.ADMIN.value not in needs:
        needs_text += ", or admin"
    return Forbidden(f"{who.user} may not {_DOING[perm]} in {where}: that needs {needs_text} "
                     f"(you have {', '.join(held)} there)")


def allow(ctx: AppContext, perm: Perm, locate: Locate) -> Any:
    """A dependency: the caller must hold ``perm`` on the located target."""
    auth = authenticated(ctx)

    async def check(request: Request, who: Principal = Depends(auth)) -> Principal:
        target = await locate(request, ctx)
        if target.see is None or not (len(target.see) == 1 or who.sees(target.see)):
            await _deny(ctx, request, who, NotFound(f"{target.label} does not exist"))
        act = target.act or target.see
        assert act is not None
        if not who.allowed(perm, act):
            await _deny(ctx, request, who, _refusal(who, perm, act))
        return who

    return Depends(check)


def signed_in(ctx: AppContext) -> Any:
    """A dependency for routes any authenticated caller may use (they filter what they show)."""
    return Depends(authenticated(ctx))


# -- where targets sit ------------------------------------------------------------------------
async def _body_field(request: Request, field: str) -> str:
    try:
        body = await request.json()
    except ValueError:
        body = None
    value = body.get(field) if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise Invalid422(f"{field}: required (a name)")
    return value


def pool() -> Locate:
    async def locate(_: Request, __: AppContext) -> Target:
        return Target("the pool", (POOL,))
    return locate


def queue_in_body(field: str, kind: str) -> Locate:
    async def locate(request: Request, ctx: AppContext) -> Target:
        name = _well_formed(await _body_field(request, field), QUEUE, field)
        path = cached_path(ctx.store, name) or await run_in_threadpool(
            queue_path, ctx.store, name)
        if path is not None and kind == "project" and len(path) == 2:
            raise Invalid422(f"{name} is a department, not a project; `fairpool project list "
                             f"--department {name}` lists its projects")
        if path is not None and len(path) != (2 if kind == "department" else 3):
            path = None
        return Target(f"{kind} {name}", path)
    return locate


def queue_param(kind: str = "queue", parent: bool = False) -> Locate:
    """A queue named in the path; with ``parent`` the permission is checked on its parent (a
    project's quota is the department's to set, a department's the pool admin's)."""
    param = "name" if kind == "queue" else kind

    async def locate(request: Request, ctx: AppContext) -> Target:
        name = _well_formed(request.path_params[param], QUEUE, param)
        path = await run_in_threadpool(queue_path, ctx.store, name)
        if path is not None and kind == "project" and len(path) != 3:
            path = None
        return Target(f"{kind} {name}", path, path[:-1] if path and parent else None)
    return locate


JOB_ID = re.compile(r"^[0-9a-f]{12}$")
QUEUE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
BINDING_ID = re.compile(r"^[1-9][0-9]{0,9}$")
MAX_BINDING_ID = 2**31 - 1


def _well_formed(value: str, pattern: re.Pattern[str], what: str) -> str:
    """Malformed names are input errors (422), found before anything is looked up."""
    if not pattern.fullmatch(value):  # match's $ would let a final newline through
        raise Invalid422(f"{what}: {value[:80]!r} is not {what.replace('_', ' ')} ("
                         f"pattern {pattern.pattern})")
    return value


def job_param() -> Locate:
    async def locate(request: Request, ctx: AppContext) -> Target:
        job_id = _well_formed(request.path_params["job_id"], JOB_ID, "job_id")
        return Target(f"job {job_id}", await run_in_threadpool(job_path, ctx.store, job_id))
    return locate


def array_param() -> Locate:
    async def locate(request: Request, ctx: AppContext) -> Target:
        array_id = _well_formed(request.path_params["array_id"], JOB_ID, "array_id")
        return Target(f"array {array_id}",
                      await run_in_threadpool(array_path, ctx.store, array_id))
    return locate


# -- tokens and role bindings -----------------------------------------------------------------
def token_for_body(ctx: AppContext) -> Any:
    """Anyone may create tokens for themselves; only admins for others."""
    auth = authenticated(ctx)

    async def check(request: Request, who: Principal = Depends(auth)) -> Principal:
        user = await _body_field(request, "user")
        if user != who.user and not who.is_admin:
            await _deny(ctx, request, who, Forbidden(
                f"{who.user} may create tokens only for itself (admins for anyone)"))
        return who

    return Depends(check)


def token_param(ctx: AppContext) -> Any:
    """A token is visible to its owner and to admins."""
    auth = authenticated(ctx)

    async def check(request: Request, who: Principal = Depends(auth)) -> Principal:
        token_id = request.path_params["token_id"]
        user = await run_in_threadpool(tokens.owner, ctx.store, token_id)
        if user is None or (user != who.user and not who.is_admin):
            await _deny(ctx, request, who, NotFound(f"token {token_id} does not exist"))
        return who

    return Depends(check)


async def _may_grant(ctx: AppContext, request: Request, who: Principal, role: Role,
                     scope: str) -> None:
    path = await run_in_threadpool(roles.scope_path, ctx.store, scope)
    if path is None or not (len(path) == 1 or who.sees(path)):  # the pool is no secret
        await _deny(ctx, request, who, NotFound(f"scope {scope} does not exist"))
    assert path is not None
    if not may_grant(who, role, path):
        await _deny(ctx, request, who, Forbidden(
            f"{who.user} may not grant or revoke {role} on {scope} (admins grant any role; "
            "department admins grant researcher and viewer in their department)"))


def grant_body(ctx: AppContext) -> Any:
    auth = authenticated(ctx)

    async def check(request: Request, who: Principal = Depends(auth)) -> Principal:
        role_name = await _body_field(request, "role")
        scope = await _body_field(request, "scope")
        try:
            role = Role(role_name)
        except ValueError:
            raise Invalid422(f"role: one of {', '.join(r.value for r in Role)}") from None
        await _may_grant(ctx, request, who, role, scope)
        return who

    return Depends(check)


def _binding_id(value: str) -> int:
    """The route's rule for the id (an integer, 1 to 2**31 - 1), checked before the lookup: a
    malformed id is a 422 like elsewhere, not a crash in ``int``."""
    if not BINDING_ID.fullmatch(value) or int(value) > MAX_BINDING_ID:
        raise Invalid422(f"binding_id: {value[:80]!r} is not a role binding id (an integer from "
                         f"1 to {MAX_BINDING_ID})")
    return int(value)


def binding_param(ctx: AppContext) -> Any:
    auth = authenticated(ctx)

    async def check(request: Request, who: Principal = Depends(auth)) -> Principal:
        binding_id = _binding_id(request.path_params["binding_id"])
        row = await run_in_threadpool(roles.get_binding, ctx.store, binding_id)
        if row is None or not (who.is_admin or row.subject in who.subjects
                               or await run_in_threadpool(roles.manages, who, ctx.store, row)):
            await _deny(ctx, request, who, NotFound(f"role binding {binding_id} does not exist"))
        assert row is not None
        await _may_grant(ctx, request, who, Role(row.role), row.scope)
        return who

    return Depends(check)
