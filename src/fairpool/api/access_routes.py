"""Routes of tokens, role bindings, the audit log, project secrets, users' Unix accounts,
disabling users and ``whoami``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from fairpool.api import guard
from fairpool.api.context import AppContext
from fairpool.api.errors import ERRORS
from fairpool.auth.rbac import Perm, Principal
from fairpool.schemas.access import (
    USER_PATTERN,
    AccountOut,
    AccountSet,
    AuditOut,
    BindingCreate,
    BindingOut,
    SecretOut,
    SecretSet,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
    WhoAmI,
)
from fairpool.services import accounts, audit, roles, secrets, tokens, users

TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
ProjectName = Annotated[str, Path(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
SecretKey = Annotated[str, Path(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
UserName = Annotated[str, Path(pattern=USER_PATTERN)]


def router(ctx: AppContext) -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=ERRORS)
    signed_in = guard.signed_in(ctx)
    project_secrets = guard.allow(ctx, Perm.SECRETS, guard.queue_param("project"))
    token_create, token_owner = guard.token_for_body(ctx), guard.token_param(ctx)
    may_grant, may_revoke = guard.grant_body(ctx), guard.binding_param(ctx)
    map_accounts = guard.allow(ctx, Perm.ACCOUNTS, guard.pool())

    @api.get("/whoami", response_model=WhoAmI)
    def whoami(who: Principal = signed_in) -> WhoAmI:
        return WhoAmI(user=who.user, via=who.via, token_id=who.token_id, groups=list(who.groups),
                      bindings=[{"role": str(b.role), "scope": b.scope} for b in who.bindings])

    # -- tokens ---------------------------------------------------------------------------
    @api.post("/tokens", status_code=201, response_model=TokenCreated)
    def create_token(spec: TokenCreate, request: Request,
                     who: Principal = token_create) -> TokenCreated:
        return tokens.create(ctx.store, who.user, spec, guard.address(request), minter=who,
                             limits=ctx.token_limits)

    @api.get("/tokens", response_model=list[TokenOut])
    def list_tokens(who: Principal = signed_in) -> list[TokenOut]:
        return tokens.list_tokens(ctx.store, who)

    @api.delete("/tokens/{token_id}", response_model=TokenOut)
    def revoke_token(token_id: TokenId, request: Request,
                     who: Principal = token_owner) -> TokenOut:
        return tokens.revoke(ctx.store, who.user, token_id, guard.address(request), ctx.auth)

    # -- role bindings --------------------------------------------------------------------
    @api.post("/role-bindings", status_code=201, response_model=BindingOut)
    def grant(spec: BindingCreate, request: Request,
              who: Principal = may_grant) -> BindingOut:
        out = roles.grant(ctx.store, who, spec, guard.address(request))
        ctx.auth.forget()
        return out

    @api.get("/role-bindings", response_model=list[BindingOut])
    def list_bindings(who: Principal = signed_in) -> list[BindingOut]:
        return roles.list_bindings(ctx.store, who)

    @api.delete("/role-bindings/{binding_id}", response_model=BindingOut)
    def revoke_binding(binding_id: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request,
                       who: Principal = may_revoke) -> BindingOut:
        out = roles.revoke(ctx.store, who, binding_id, guard.address(request))
        ctx.auth.forget()
        return out

    # -- audit ----------------------------------------------------------------------------
    @api.get("/audit", response_model=list[AuditOut],
             dependencies=[guard.allow(ctx, Perm.ADMIN, guard.pool())])
    def audit_log(
        actor: Annotated[str | None, Query(max_length=253)] = None,
        action: Annotated[str | None, Query(max_length=48)] = None,
        outcome: Annotated[str | None, Query(pattern=r"^(ok|denied|failed)$")] = None,
        since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        until: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[AuditOut]:
        return audit.query(ctx.store, actor, action, outcome, since, until, limit)

    # -- users' Unix accounts (run_as = user) ----------------------------------------------
    @api.get("/accounts", response_model=list[AccountOut], dependencies=[map_accounts])
    def list_accounts() -> list[AccountOut]:
        return accounts.list_accounts(ctx.store)

    @api.put("/accounts/{user}", response_model=AccountOut)
    def map_account(user: UserName, spec: AccountSet, request: Request,
                    who: Principal = map_accounts) -> AccountOut:
        return accounts.map_account(ctx.store, user, spec.account, who.user,
                                    guard.address(request))

    @api.delete("/accounts/{user}", response_model=AccountOut)
    def unmap_account(user: UserName, request: Request,
                      who: Principal = map_accounts) -> AccountOut:
        return accounts.unmap(ctx.store, user, who.user, guard.address(request))

    # -- disabled users (admins) -----------------------------------------------------------
    admin_only = guard.allow(ctx, Perm.ADMIN, guard.pool())

    @api.get("/users/disabled", response_model=list[UserOut], dependencies=[admin_only])
    def list_disabled() -> list[UserOut]:
        return users.list_disabled(ctx.store)

    @api.post("/users/{user}/disable", response_model=UserOut)
    def disable_user(user: UserName, request: Request, who: Principal = admin_only) -> UserOut:
        out = users.disable(ctx.store, user, who.user, guard.address(request))
        ctx.auth.forget()  # its credentials verified moments ago must not be taken any more
        return out

    @api.post("/users/{user}/enable", response_model=UserOut)
    def enable_user(user: UserName, request: Request, who: Principal = admin_only) -> UserOut:
        return users.enable(ctx.store, user, who.user, guard.address(request))

    # -- project secrets ------------------------------------------------------------------
    @api.get("/projects/{project}/secrets", response_model=list[SecretOut],
             dependencies=[project_secrets])
    def list_secrets(project: ProjectName) -> list[SecretOut]:
        return secrets.list_secrets(ctx.store, project)

    @api.put("/projects/{project}/secrets/{name}", response_model=SecretOut)
    def put_secret(project: ProjectName, name: SecretKey, spec: SecretSet, request: Request,
                   who: Principal = project_secrets) -> SecretOut:
        return secrets.put(ctx.store, ctx.box, who.user, project, name, spec.value,
                           guard.address(request))

    @api.delete("/projects/{project}/secrets/{name}", response_model=SecretOut)
    def delete_secret(project: ProjectName, name: SecretKey, request: Request,
                      who: Principal = project_secrets) -> SecretOut:
        return secrets.delete(ctx.store, who.user, project, name, guard.address(request))

    return api

