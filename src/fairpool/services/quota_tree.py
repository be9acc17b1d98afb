"""Quotas that are guarantees: a department's projects may not be promised more than the
department has (GPUs, CPUs and memory), nor the departments more GPUs than the pool's nodes
hold. A create or a quota change that would over-commit is refused with the numbers and what to
change, unless it says ``over_commit``; an over-committed department then shows by how much
in every view (:func:`over_committed`).

The pool's GPUs are those of the nodes it knows (ready or not: a node that is away for a while
still counts); a pool without nodes yet (a Ray cluster not connected) checks no pool total.
Checks run in the writer's transaction, after the generation row, so two creates cannot both
slip under a total."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.domain import GPU_UNIT
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.words import plural
from fairpool.services.errors import Conflict
from fairpool.store.models import NodeRow, QueueRow

#: the resources a quota has (its columns' suffixes)
_KINDS = ("gpu", "cpu", "memory")
HINT = "or pass --over-commit (REST: over_commit) to promise more than there is"


def human(kind: str, amount: int) -> float:
    """``amount`` of ``kind`` from stored units (milli-GPUs, millicores, MiB) into GPUs, CPUs
    and MiB."""
    return amount / GPU_UNIT if kind == "gpu" else amount / CPU_UNIT if kind == "cpu" else amount


def say(kind: str, amount: int) -> str:
    """``amount`` of ``kind`` (stored units) as people read it: ``2 GPUs``, ``4096 MiB``."""
    if kind == "memory":
        return f"{amount} MiB"
    return plural(human(kind, amount), _name(kind))


def _name(kind: str) -> str:
    return "memory" if kind == "memory" else kind.upper()


def quota_of(row: QueueRow, kind: str) -> int:
    """``row``'s quota of ``kind``, in stored units."""
    return int(getattr(row, f"quota_{kind}") or 0)


def _live_children(s: Session, department: str) -> list[QueueRow]:
    return list(s.execute(select(QueueRow).where(
        QueueRow.parent == department, QueueRow.deleted_at.is_(None))).scalars())


def quotas(row: QueueRow) -> dict[str, int]:
    """``row``'s quota per resource, to give :func:`check` as what it was before a change."""
    return {kind: quota_of(row, kind) for kind in _KINDS}


def check(s: Session, row: QueueRow, over_commit: bool,
          before: dict[str, int] | None = None) -> None:
    """Refuse ``row``'s quota (just set, in this transaction; ``before``: what it was, None
    for a new queue) if it over-commits its department or, for a department, its own projects
    or the pool. Only a change that makes it worse is refused: lowering a project's quota or
    raising a department's is always accepted, so an over-committed tree can be mended."""
    if over_commit:
        return
    was = before or dict.fromkeys(_KINDS, 0 if row.kind == "project" else None)

    def worse(kind: str) -> bool:
        old = was.get(kind)
        if old is None:
            return True
        return quota_of(row, kind) > old if row.kind == "project" else quota_of(row, kind) < old

    kinds = [k for k in _KINDS if worse(k)]
    if row.kind == "project":
        dept = s.get(QueueRow, row.parent) if row.parent else None
        if dept is not None and kinds:
            _children_fit(dept, [c for c in _live_children(s, dept.name)
                                 if c.name != row.name] + [row], row.name, kinds)
        return
    if kinds:
        _children_fit(row, _live_children(s, row.name), row.name, kinds)
    if quota_of(row, "gpu") <= (0 if before is None else before["gpu"]):
        return  # a department's GPUs that did not grow promise the pool nothing more
    gpus = sum(len(n.devices or ()) for n in s.execute(select(NodeRow)).scalars())
    if gpus == 0:
        return
    departments = [d for d in s.execute(select(QueueRow).where(
        QueueRow.kind == "department", QueueRow.deleted_at.is_(None))).scalars()
        if d.name != row.name] + [row]
    promised = sum(quota_of(d, "gpu") for d in departments)
    if promised > gpus * GPU_UNIT:
        room = _room(gpus * GPU_UNIT, departments, row) / GPU_UNIT
        raise Conflict(
            f"the departments' GPU quotas would add up to {plural(promised / GPU_UNIT, 'GPU')} "
            f"but the pool has {plural(gpus, 'GPU')} ({_list(departments, 'gpu')}); give "
            f"{row.name} at most {plural(room, 'GPU')}, {HINT}")


def _room(total: int, members: list[QueueRow], row: QueueRow) -> int:
    return max(0, total - sum(quota_of(m, "gpu") for m in members if m is not row))


def _list(members: list[QueueRow], kind: str) -> str:
    return ", ".join(f"{m.name} {say(kind, quota_of(m, kind))}"
                     for m in sorted(members, key=lambda m: m.name))


def _children_fit(dept: QueueRow, children: list[QueueRow], changed: str,
                  kinds: list[str]) -> None:
    for kind in kinds:
        promised = sum(quota_of(c, kind) for c in children)
        if promised <= quota_of(dept, kind):
            continue
        if changed == dept.name:
            raise Conflict(
                f"department {dept.name}'s {_name(kind)} quota would be "
                f"{say(kind, quota_of(dept, kind))} but its projects' quotas add up to "
                f"{say(kind, promised)} ({_list(children, kind)}); lower theirs first, {HINT}")
        others = promised - next(quota_of(c, kind) for c in children if c.name == changed)
        raise Conflict(
            f"department {dept.name} has a {_name(kind)} quota of "
            f"{say(kind, quota_of(dept, kind))} and its projects would be promised "
            f"{say(kind, promised)} ({_list(children, kind)}); give {changed} at most "
            f"{say(kind, max(0, quota_of(dept, kind) - others))}, raise {dept.name}'s quota first "
            f"(`fairpool department set-quota {dept.name} …`), {HINT}")


def over_committed(department: QueueRow, children: list[QueueRow]) -> dict[str, int]:
    """By how much ``department``'s projects' quotas exceed its own, per resource (only those
    that do)."""
    out = {}
    for kind in _KINDS:
        excess = sum(quota_of(c, kind) for c in children) - quota_of(department, kind)
        if excess > 0:
            out[kind] = excess
    return out
