"""Roles, permissions and scopes: who may do what where. Pure functions over bindings.

A scope is the whole pool (``*``), a department or a project; a target is named by its path
from the pool down, e.g. ``("*", "research", "vision")`` for project vision. A binding applies
to a target when its scope lies on the target's path: a department viewer sees the department
and all its projects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from fairpool.domain.roles import Role

POOL = "*"


class Perm(StrEnum):
    READ = "read"  # queues, jobs, events, logs in scope
    SUBMIT = "submit"
    CANCEL = "cancel"
    SECRETS = "secrets"  # list names, set and delete a project's secrets
    MANAGE = "manage"  # create projects under, change quotas of children, grant roles within
    ADMIN = "admin"  # tokens of others, the audit log
    ACCOUNTS = "accounts"  # which Unix account each user's jobs run as (admins only)


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset(Perm),
    Role.DEPARTMENT_ADMIN: frozenset({Perm.READ, Perm.SUBMIT, Perm.CANCEL, Perm.SECRETS,
                                      Perm.MANAGE}),
    Role.RESEARCHER: frozenset({Perm.READ, Perm.SUBMIT, Perm.CANCEL, Perm.SECRETS}),
    Role.VIEWER: frozenset({Perm.READ}),
}

#: the kinds of scope each role may be given on
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset({"pool"}),
    Role.DEPARTMENT_ADMIN: frozenset({"department"}),
    Role.RESEARCHER: frozenset({"department", "project"}),
    Role.VIEWER: frozenset({"pool", "department", "project"}),
}

Path = tuple[str, ...]


@dataclass(frozen=True)
class Binding:
    role: Role
    scope: str


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user name, the groups an identity provider gave it, its role
    bindings (direct and through groups) and how it authenticated."""

    user: str
    bindings: tuple[Binding, ...] = ()
    groups: tuple[str, ...] = ()
    token_id: str | None = None
    via: str = "token"  # token | oidc
    subjects: tuple[str, ...] = field(default=())
    #: tokens this caller creates (unless it is an admin) expire no later than this: the expiry
    #: of the token or identity provider's login it uses; None: no bound
    mint_until: float | None = None
    #: its credentials come from an identity provider's login (directly or through a token
    #: that login created): tokens it creates live at most oidc_token_lifetime_s
    from_oidc: bool = False

    def allowed(self, perm: Perm, path: Path) -> bool:
        return any(b.scope in path and perm in ROLE_PERMS[b.role] for b in self.bindings)

    def sees(self, path: Path) -> bool:
        return self.allowed(Perm.READ, path)

    @property
    def is_admin(self) -> bool:
        return self.allowed(Perm.ADMIN, (POOL,))


def may_grant(granter: Principal, role: Role, scope_path: Path) -> bool:
    """Admins grant anything; a department admin grants researcher and viewer roles on its
    department and its projects."""
    if granter.is_admin:
        return True
    return role in (Role.RESEARCHER, Role.VIEWER) and granter.allowed(Perm.MANAGE, scope_path)


def subjects_of(user: str, groups: Iterable[str]) -> tuple[str, ...]:
    """The names role bindings may be made to for this caller: the user and ``group:G``."""
    return (user, *(f"group:{g}" for g in groups))
