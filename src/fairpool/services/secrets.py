"""Per-project environment secrets: stored encrypted, listed by name only, decrypted only when
a worker starts (into its environment, never into responses, events or logs)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairpool.auth.secretbox import SecretBox
from fairpool.schemas.access import MAX_SECRETS_PER_PROJECT, SecretOut
from fairpool.services import audit
from fairpool.services.errors import Conflict, NotFound
from fairpool.store.db import Store
from fairpool.store.models import QueueRow, SecretRow


def _out(r: SecretRow) -> SecretOut:
    return SecretOut(project=r.project, name=r.name, updated_by=r.updated_by,
                     updated_at=r.updated_at)


def _project(s: Session, project: str) -> None:
    row = s.get(QueueRow, project)
    if row is None or row.kind != "project" or row.deleted_at is not None:
        raise NotFound(f"project {project} does not exist")


def put(store: Store, box: SecretBox, actor: str, project: str, name: str, value: str,
        address: str = "") -> SecretOut:
    sealed = box.seal(value)
    with store.writing() as s:
        _project(s, project)
        row = s.get(SecretRow, (project, name))
        if row is None:
            count = s.execute(select(func.count()).select_from(SecretRow)
                              .where(SecretRow.project == project)).scalar_one()
            if count >= MAX_SECRETS_PER_PROJECT:
                raise Conflict(f"project {project} has {count} secrets, the most allowed; "
                               "delete one first")
            row = SecretRow(project=project, name=name)
            s.add(row)
        row.ciphertext = sealed
        row.updated_by = actor
        row.updated_at = time.time()
        audit.record(s, actor, "secret.set", f"{project}/{name}", address=address)
        return _out(row)


def list_secrets(store: Store, project: str) -> list[SecretOut]:
    with store.session() as s:
        _project(s, project)
        rows = s.execute(select(SecretRow).where(SecretRow.project == project)
                         .order_by(SecretRow.name)).scalars()
        return [_out(r) for r in rows]


def delete(store: Store, actor: str, project: str, name: str, address: str = "") -> SecretOut:
    with store.writing() as s:
        _project(s, project)
        row = s.get(SecretRow, (project, name))
        if row is None:
            raise NotFound(f"project {project} has no secret {name}")
        out = _out(row)
        s.delete(row)
        audit.record(s, actor, "secret.delete", f"{project}/{name}", address=address)
    return out


class SecretEnv:
    """What the control loop uses to add a project's secrets to its workers' environment."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box

    def for_projects(self, s: Session, projects: Iterable[str]) -> dict[str, dict[str, str]]:
        wanted = sorted(set(projects))
        out: dict[str, dict[str, str]] = {p: {} for p in wanted}
        if not wanted:
            return out
        for row in s.execute(select(SecretRow).where(SecretRow.project.in_(wanted))).scalars():
            out[row.project][row.name] = self.box.open(row.ciphertext)
        return out
