"""Role bindings: grant, list and revoke who holds which role on which scope."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from fairpool.auth.rbac import POOL, ROLE_SCOPES, Binding, Perm, Principal
from fairpool.domain.roles import Role
from fairpool.schemas.access import BindingCreate, BindingOut
from fairpool.services import audit
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.scopes import kind_of, queue_path, queue_paths
from fairpool.store.db import Store
from fairpool.store.models import RoleBindingRow


def _out(r: RoleBindingRow) -> BindingOut:
    return BindingOut(id=r.id, subject=r.subject, role=r.role, scope=r.scope,
                      created_by=r.created_by, created_at=r.created_at)


def bindings_of(store: Store, subjects: tuple[str, ...]) -> tuple[Binding, ...]:
    with store.session() as s:
        rows = s.execute(select(RoleBindingRow.role, RoleBindingRow.scope)
                         .where(RoleBindingRow.subject.in_(subjects))).all()
    return tuple(Binding(Role(role), scope) for role, scope in rows)


def scope_path(store: Store, scope: str) -> tuple[str, ...] | None:
    return (POOL,) if scope == POOL else queue_path(store, scope)


def grant(store: Store, actor: Principal, spec: BindingCreate, address: str = "") -> BindingOut:
    path = scope_path(store, spec.scope)
    if path is None:
        raise NotFound(f"scope {spec.scope} does not exist; use *, a department or a project")
    kind = kind_of(path)
    if kind not in ROLE_SCOPES[spec.role]:
        allowed = " or ".join(sorted(ROLE_SCOPES[spec.role]))
        raise Invalid(f"role {spec.role} is given on a {allowed}, and {spec.scope} is a {kind}")
    with store.writing() as s:
        exists = s.execute(select(RoleBindingRow).where(
            RoleBindingRow.subject == spec.subject, RoleBindingRow.role == spec.role.value,
            RoleBindingRow.scope == spec.scope)).scalar_one_or_none()
        if exists is not None:
            raise Conflict(f"{spec.subject} already is {spec.role} on {spec.scope} "
                           f"(binding {exists.id})")
        row = RoleBindingRow(subject=spec.subject, role=spec.role.value, scope=spec.scope,
                             created_by=actor.user, created_at=time.time())
        s.add(row)
        s.flush()
        audit.record(s, actor.user, "role.grant", f"{spec.subject}:{spec.role}@{spec.scope}",
                     address=address)
        return _out(row)


def manages(actor: Principal, store: Store, row: RoleBindingRow) -> bool:
    path = scope_path(store, row.scope)
    return path is not None and actor.allowed(Perm.MANAGE, path)


def list_bindings(store: Store, actor: Principal) -> list[BindingOut]:
    """Admins see all; others see their own bindings and those on scopes they manage."""
    with store.session() as s:
        rows = s.execute(select(RoleBindingRow).order_by(RoleBindingRow.id)).scalars().all()
    queue_paths(store)
    return [_out(r) for r in rows
            if actor.is_admin or r.subject in actor.subjects or manages(actor, store, r)]


def get_binding(store: Store, binding_id: int) -> RoleBindingRow | None:
    with store.session() as s:
        return s.get(RoleBindingRow, binding_id)


def revoke(store: Store, actor: Principal, binding_id: int, address: str = "") -> BindingOut:
    with store.writing() as s:
        row = s.get(RoleBindingRow, binding_id)
        if row is None:
            raise NotFound(f"role binding {binding_id} does not exist")
        if row.role == Role.ADMIN.value:
            admins = s.execute(select(func.count()).select_from(RoleBindingRow).where(
                RoleBindingRow.role == Role.ADMIN.value)).scalar_one()
            if admins <= 1:
                raise Conflict("this is the last admin binding; grant admin to someone else "
                               "first, or nobody could manage the pool")
        out = _out(row)
        s.delete(row)
        audit.record(s, actor.user, "role.revoke", f"{row.subject}:{row.role}@{row.scope}",
                     address=address)
    return out
