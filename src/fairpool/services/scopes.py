"""Where things sit in the queue tree: the path of a queue or job from the pool down, which the
role checks compare bindings against, read from a short-lived per-store cache."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairpool.auth.rbac import POOL, Path
from fairpool.store.db import Store
from fairpool.store.models import ArrayRow, JobRow, QueueRow

PATHS_TTL_S = 2.0


def _fresh(store: Store) -> dict[str, Path] | None:
    """The cached paths if they are fresh, else None."""
    at, paths = store.cache.get("paths", (0.0, {}))
    return paths if time.monotonic() - at <= PATHS_TTL_S else None


def queue_paths(store: Store, s: Session | None = None) -> dict[str, Path]:
    paths = _fresh(store)
    if paths is not None:
        return paths
    if s is None:
        with store.session() as own:
            rows = own.execute(select(QueueRow.name, QueueRow.parent)).all()
    else:
        rows = s.execute(select(QueueRow.name, QueueRow.parent)).all()
    parents = dict(rows)
    paths = {}
    for name in parents:
        chain = [name]
        node = parents[name]
        while node is not None and len(chain) < 8:
            chain.append(node)
            node = parents.get(node)
        paths[name] = (POOL, *reversed(chain))
    store.cache["paths"] = (time.monotonic(), paths)
    return paths


def cached_path(store: Store, name: str) -> Path | None:
    """A queue's path from a fresh cache, without I/O; None when a lookup is needed."""
    paths = _fresh(store)
    return None if paths is None else paths.get(name)


def forget_paths(store: Store) -> None:
    store.cache.pop("paths", None)


def queue_path(store: Store, name: str) -> Path | None:
    path = queue_paths(store).get(name)
    if path is None:  # created a moment ago by another server: look again
        forget_paths(store)
        path = queue_paths(store).get(name)
    return path


def job_path(store: Store, job_id: str) -> Path | None:
    with store.session() as s:
        project = s.execute(select(JobRow.project).where(JobRow.id == job_id)).scalar()
    return None if project is None else queue_path(store, project)


def kind_of(path: Path) -> str:
    return {1: "pool", 2: "department"}.get(len(path), "project")


def array_path(store: Store, array_id: str) -> Path | None:
    with store.session() as s:
        project = s.execute(select(ArrayRow.project).where(ArrayRow.id == array_id)).scalar()
    return None if project is None else queue_path(store, project)
