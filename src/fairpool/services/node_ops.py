"""Node operations: cordon (no new work), uncordon, and drain (cordon, and move its jobs away:
running ones are preempted, with SIGTERM and the grace period, and requeued)."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.states import HOLDING_VALUES, StopReason
from fairpool.domain.words import plural
from fairpool.schemas.nodes import NodeOut
from fairpool.services import audit
from fairpool.services.errors import NotFound
from fairpool.services.nodes import list_nodes
from fairpool.store.db import Store
from fairpool.store.lifecycle import move
from fairpool.store.models import JobRow, NodeRow

S = JobState


def _node(s: Session, name: str) -> NodeRow:
    row = s.get(NodeRow, name)
    if row is None:
        raise NotFound(f"node {name} does not exist; `fairpool nodes` lists them")
    return row


def _out(store: Store, name: str) -> NodeOut:
    return next(n for n in list_nodes(store) if n.name == name)


def cordon(store: Store, name: str, actor: str, reason: str = "", until: float | None = None,
           address: str = "") -> NodeOut:
    with store.writing() as s:
        row = _node(s, name)
        row.cordoned, row.cordon_until = True, until
        row.cordon_reason = reason or f"cordoned by {actor}"
        Store.bump(s)
        audit.record(s, actor, "node.cordon", name, detail=row.cordon_reason, address=address)
    return _out(store, name)


def uncordon(store: Store, name: str, actor: str, address: str = "") -> NodeOut:
    with store.writing() as s:
        row = _node(s, name)
        row.cordoned, row.cordon_until, row.cordon_reason = False, None, None
        Store.bump(s)
        audit.record(s, actor, "node.uncordon", name, address=address)
    return _out(store, name)


def drain(store: Store, name: str, actor: str, address: str = "") -> tuple[NodeOut, int]:
    """Cordon the node and requeue every job holding it; returns the node and how many jobs."""
    now = time.time()
    moved = 0
    with store.writing() as s:
        row = _node(s, name)
        row.cordoned, row.cordon_until = True, None
        row.cordon_reason = f"drained by {actor}"
        seq = Store.bump(s)
        for job in s.execute(select(JobRow).where(JobRow.state.in_(HOLDING_VALUES))).scalars():
            if job.state == S.STOPPING.value:
                continue  # already stopping
            if not any(w["node"] == name for w in job.placement or ()):
                continue
            # one that never started goes back to the queue at once; the others are stopped
            move(s, job, S.REQUEUED if job.state == S.ADMITTED.value else S.STOPPING, now=now,
                 seq=seq, stop=StopReason.PREEMPT if job.state != S.ADMITTED.value else None,
                 kind="evicted", message=f"drain: node {name} is being drained by {actor}",
                 cause="drain")
            moved += 1
        audit.record(s, actor, "node.drain", name, detail=f"{plural(moved, 'job')} moved",
                     address=address)
    return _out(store, name), moved
