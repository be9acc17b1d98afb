"""Request and response models of tokens, role bindings, the audit log, project secrets and
the Unix accounts of users."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from fairpool.domain.roles import Role
from fairpool.schemas.base import Input, printable

#: names live in namespaces that never overlap: local users ``NAME`` (no ``:``), users of the
#: identity provider ``PREFIX:NAME`` (``oidc_user_prefix``, ``oidc:`` by default) and its
#: groups ``group:NAME``, so no token of the identity provider can make a caller a local user
#: (``admin``) or a group
NAMESPACE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}:"
USER_PATTERN = rf"^(?:{NAMESPACE})?[A-Za-z0-9][A-Za-z0-9._@+-]{{0,199}}$"
GROUP_PREFIX = "group:"


def _not_a_group(user: str) -> str:
    if user.startswith(GROUP_PREFIX):
        raise ValueError(f"{user[:80]!r} names a group; a user's name cannot start with "
                         f"{GROUP_PREFIX}")
    return user


User = Annotated[str, StringConstraints(pattern=USER_PATTERN), AfterValidator(_not_a_group)]
Subject = Annotated[str, StringConstraints(pattern=USER_PATTERN)]  # a user or group:NAME
Scope = Annotated[str, StringConstraints(pattern=r"^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$")]
SecretName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
#: a Unix account name as useradd takes it by default (and no longer than 32)
ACCOUNT = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
NOT_ROOT = "jobs never run as root; map the user to an unprivileged account"
MAX_SECRET_BYTES = 32 * 1024
MAX_SECRETS_PER_PROJECT = 100


class TokenCreate(Input):
    user: User
    expires_in_s: float | None = Field(
        90 * 86400, gt=0, le=5 * 365 * 86400,
        description="lifetime in seconds; null: never expires. A token created by a non-admin "
                    "lives at most max_token_lifetime_s (with an identity provider's login, "
                    "oidc_token_lifetime_s and never past that login): longer or null is "
                    "shortened to that, and expires_at in the answer says when it ends")
    description: Annotated[str, StringConstraints(max_length=200)] = ""

    @field_validator("description")
    @classmethod
    def _description(cls, text: str) -> str:
        return printable("the description", text)


class TokenOut(BaseModel):
    id: str
    user: str
    description: str
    created_by: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


class TokenCreated(TokenOut):
    token: str = Field(description="the token itself; shown only in this response")


class BindingCreate(Input):
    subject: Subject = Field(description="a user name (oidc:NAME for a user of the identity "
                                         "provider), or group:NAME for one of its groups")
    role: Role
    scope: Scope = Field(description="* (the whole pool), a department or a project")


class BindingOut(BaseModel):
    id: int
    subject: str
    role: str
    scope: str
    created_by: str
    created_at: float


class AuditOut(BaseModel):
    id: int
    at: float
    actor: str
    action: str
    target: str
    outcome: str
    detail: str
    address: str


class SecretSet(Input):
    value: Annotated[str, StringConstraints(max_length=MAX_SECRET_BYTES)]


class SecretOut(BaseModel):
    """A secret's name and when it changed; its value is never returned."""

    project: str
    name: str
    updated_by: str
    updated_at: float


class WhoAmI(BaseModel):
    user: str
    via: str
    token_id: str | None
    groups: list[str]
    bindings: list[dict[str, str]]


def account_problem(account: str) -> str | None:
    """What is wrong with ``account`` as the Unix account of a user's jobs (None: nothing)."""
    if not ACCOUNT.fullmatch(account):
        return (f"account {account[:40]!r} is not a Unix account name (lower-case letters, "
                f"digits, '_' and '-', starting with a letter or '_', at most 32)")
    if account == "root":
        return NOT_ROOT
    return None


class AccountSet(Input):
    account: Annotated[str, StringConstraints(pattern=ACCOUNT.pattern)] = Field(
        description="the Unix account the user's jobs run as (run_as = user); never root")

    @field_validator("account")
    @classmethod
    def _account(cls, account: str) -> str:
        problem = account_problem(account)
        if problem is not None:
            raise ValueError(problem)
        return account


class AccountOut(BaseModel):
    user: str
    account: str
    created_at: float
    created_by: str | None


class UserOut(BaseModel):
    """Whether a user is disabled; a disabled user's tokens were revoked when it was disabled,
    none can be created for it and its identity provider's logins are refused."""

    user: str
    disabled: bool
    disabled_at: float | None
    disabled_by: str | None
    tokens_revoked: int = Field(0, description="tokens this request revoked")
