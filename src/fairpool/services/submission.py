"""What every submission goes through, a single job's or an array's: the checks (the project
exists, the request fits some node, mounts are allowed, the dependencies exist and can still
be met, the project's pending limit), and the row a job is stored as."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.accounting import asked, reference_memory
from fairpool.domain.dependencies import Decision, Need, On, Verdict, decide
from fairpool.domain.job import WorkerRequest
from fairpool.domain.priority import DEFAULT_PRIORITY_CLASSES, PriorityClass, resolve_priority_class
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.states import PENDING_VALUES
from fairpool.domain.words import plural
from fairpool.scheduler.fit import Inventory, Shortfall, misfit
from fairpool.schemas.jobs import JobSubmit
from fairpool.services import quota_tree
from fairpool.services.errors import Conflict, Invalid, NotFound, ServiceError
from fairpool.store.convert import node_domain
from fairpool.store.db import Store
from fairpool.store.models import ArrayRow, JobRow, NodeRow, QueueRow
from fairpool.store.parents import parent_states

#: the reason code of a job that waits for its dependencies
DEPENDENCY = "dependency"


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def priority_class(spec: JobSubmit) -> PriorityClass:
    try:
        return resolve_priority_class(spec.priority, DEFAULT_PRIORITY_CLASSES)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def project_row(s: Session, name: str) -> QueueRow:
    """The live project ``name``; a department's name is answered with its projects."""
    row = s.get(QueueRow, name)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"project {name} does not exist; create it with "
                       f"`fairpool project create {name} --department D`")
    if row.kind != "project":
        children = sorted(s.execute(select(QueueRow.name).where(
            QueueRow.parent == name, QueueRow.deleted_at.is_(None))).scalars())
        listed = ", ".join(children) if children else "none yet"
        raise Invalid(f"{name} is a department, not a project; submit to one of its "
                      f"projects ({listed})")
    return row


def request_hash(spec: JobSubmit) -> str:
    """What a client key stands for: the request without the key."""
    body = spec.model_dump(exclude={"client_key"})
    for field, unset in (("image", None), ("mounts", []), ("after", []), ("after_any", []),
                         ("after_failed", [])):  # as hashed before they existed,
        if body.get(field) == unset:  # so a key used before an upgrade still replays
            body.pop(field, None)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


NODES_TTL_S = 2.0


def _inventory(store: Store, s: Session) -> list[NodeRow]:
    """Nodes for the fit check, re-read at most every NODES_TTL_S (submit is a hot path)."""
    at, rows = store.cache.get("nodes", (0.0, []))
    if time.monotonic() - at > NODES_TTL_S:
        rows = list(s.execute(select(NodeRow)).scalars())
        store.cache["nodes"] = (time.monotonic(), rows)
    return rows  # type: ignore[no-any-return]


def check_fits(store: Store, s: Session, spec: JobSubmit) -> None:
    """Reject requests no node could ever hold, with the numbers: the scheduler's own check
    (:func:`fairpool.scheduler.fit.misfit`, per node, not the whole gang: nodes may join) on the
    ready nodes of the job's pool (of every pool if it names none). No node at all is fine
    unless a pool is named. Each pool's inventory is kept with the node rows it was made of."""
    rows = _inventory(store, s)
    cached = store.cache.get("fit-inventories")
    if cached is None or cached[0] is not rows:  # the node rows were re-read
        cached = store.cache["fit-inventories"] = (rows, {})
    by_pool: dict[str | None, Inventory] = cached[1]
    pool = spec.node_pool
    inventory = by_pool.get(pool)
    if inventory is None:
        inventory = by_pool[pool] = Inventory.of(
            node_domain(n) for n in rows if n.ready and (pool is None or n.pool == pool))
    request = WorkerRequest(gpus=spec.gpus, gpu_fraction=spec.gpu_fraction,
                            gpu_memory_mib=spec.gpu_memory_mib,
                            cpu=round(spec.cpus * CPU_UNIT), memory=spec.memory_mib)
    why = misfit(inventory, request, spec.workers, same_node=spec.same_node)
    if why is None or (why.shortfall == Shortfall.NO_NODES and pool is None):
        return
    where = f"pool {pool}" if pool else "the pool"
    raise Invalid({
        Shortfall.NO_NODES: f"no node is in pool {pool}",
        Shortfall.GPUS: f"the job needs {plural(why.need, 'GPU')} on one node but the largest node "
                        f"in {where} has {why.largest}",
        Shortfall.NO_GPUS: "the job asks for a GPU share but no node has GPUs",
        Shortfall.GPU_MEMORY: f"the job needs {why.need} MiB on one GPU but the largest GPU "
                              f"has {why.largest} MiB",
        Shortfall.CPU: f"the job needs {plural(spec.cpus, 'CPU')} per worker but the largest "
                       f"node has {why.largest / CPU_UNIT:g}",
        Shortfall.MEMORY: f"the job needs {spec.memory_mib} MiB memory per worker but the "
                          f"largest node has {why.largest} MiB",
    }.get(why.shortfall, why.message))


def check_quota(store: Store, s: Session, spec: JobSubmit, pclass: PriorityClass,
                project: QueueRow) -> None:
    """A job that may not be preempted runs only within quota, its project's and its
    department's (the scheduler's in-quota rule): one that alone asks for more than either
    could never start, so it is refused with what to change. GPU jobs are held to GPU quotas,
    jobs without GPUs to CPU and memory quotas, as the scheduler holds them."""
    if (pclass.preemptible if spec.preemptible is None else spec.preemptible):
        return
    request = WorkerRequest(gpus=spec.gpus, gpu_fraction=spec.gpu_fraction,
                            gpu_memory_mib=spec.gpu_memory_mib,
                            cpu=round(spec.cpus * CPU_UNIT), memory=spec.memory_mib)
    reference = 0  # the largest GPU's memory values a GPU-memory request, as the scheduler does
    if spec.gpu_memory_mib is not None:
        reference = reference_memory(d.memory_mib for n in _inventory(store, s)
                                     for d in node_domain(n).devices)
    need = asked(request, spec.workers, max(reference, 1))
    department = s.get(QueueRow, project.parent) if project.parent else None
    for q in (project, department):
        if q is None:
            continue
        for kind, flag in [("gpu", "gpus")] if need.gpu else [("cpu", "cpus"),
                                                              ("memory", "memory")]:
            amount, quota = getattr(need, kind), quota_tree.quota_of(q, kind)
            if amount > quota:
                raise Invalid(
                    f"a {pclass.name if spec.preemptible is None else 'non-preemptible'} job "
                    f"cannot be preempted, so it runs only within quota: it needs "
                    f"{quota_tree.say(kind, amount)} and {q.kind} {q.name}'s quota is "
                    f"{quota_tree.say(kind, quota)}; ask for less, have the quota raised "
                    f"(`fairpool {q.kind} set-quota {q.name} --quota-{flag} "
                    f"{quota_tree.human(kind, amount):g}`), or submit it preemptible "
                    f"(--priority train)")


NO_MOUNTS = "this pool allows no mounts (an admin sets allowed_mount_roots)"


def _within(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def check_mounts(spec: JobSubmit, roots: Sequence[Path] | None) -> None:
    """Every mount's source must be one of ``roots`` or under one: as written, and once the
    symbolic links that exist on this machine are resolved (a link under a root that points
    out of it is refused). Where nothing of the path exists here, both are the path itself."""
    if not spec.mounts:
        return
    if not roots:
        raise Invalid(NO_MOUNTS)
    literal = [os.path.normpath(r) for r in roots]
    resolved = [*literal, *(os.path.realpath(r) for r in roots)]
    allowed = ", ".join(literal)
    for m in spec.mounts:
        source = os.path.normpath(m.source)
        if not _within(source, literal):
            raise Invalid(f"mount source {source} is not under an allowed mount root "
                          f"(allowed: {allowed}); an admin sets allowed_mount_roots")
        real = os.path.realpath(source)
        if not _within(real, resolved):
            raise Invalid(f"mount source {source} resolves to {real}, which is not under an "
                          f"allowed mount root (allowed: {allowed}); an admin sets "
                          f"allowed_mount_roots")


class TooManyPending(ServiceError):
    status = 429


def check_pending(s: Session, project: str, max_pending: int | None, adding: int = 1) -> None:
    """Refuse a submit of ``adding`` jobs (an array's tasks count one each) that would take a
    project past ``max_pending`` waiting jobs. Called in
    the write transaction that inserts the job, after :meth:`Store.bump`: every writer takes
    that row first (on SQLite under the store's write lock, on PostgreSQL as a row lock held
    to commit), so no other submit can count or insert between this count and this insert,
    and the count (a fresh statement, read committed) sees every job committed before."""
    if max_pending is None:
        return
    waiting = s.execute(select(func.count()).select_from(JobRow).where(
        JobRow.project == project, JobRow.state.in_(PENDING_VALUES))).scalar_one()
    if waiting + adding > max_pending:
        if adding == 1:
            raise TooManyPending(f"project {project} already has {waiting} jobs waiting, the "
                                 f"most allowed ({max_pending}); wait for some to start or "
                                 f"cancel some")
        raise TooManyPending(f"project {project} has {waiting} jobs waiting; {adding} more "
                             f"would pass the most allowed ({max_pending}); submit fewer tasks "
                             f"or wait for some to start")




def _what(spec: JobSubmit) -> str:
    if spec.gpus:
        what = f"{spec.gpus} GPU" + ("s" if spec.gpus > 1 else "")
    elif spec.gpu_fraction is not None:
        what = f"{spec.gpu_fraction:g} of a GPU"
    elif spec.gpu_memory_mib is not None:
        what = f"{spec.gpu_memory_mib} MiB of GPU memory"
    else:
        what = "no GPU"
    text = f"{spec.workers} × {what}, priority {spec.priority}"
    if spec.image is not None:
        text += f", image {spec.image}"
        if spec.mounts:
            text += f", {len(spec.mounts)} mount" + ("s" if len(spec.mounts) > 1 else "")
    return text


def needs_of(spec: JobSubmit) -> list[Need]:
    """The dependencies a submission names, in order, each once (ids resolved later)."""
    seen: dict[tuple[str, On], None] = {}
    for on, ids in ((On.OK, spec.after), (On.ANY, spec.after_any),
                    (On.FAILED, spec.after_failed)):
        for ref in ids:
            seen[(ref, on)] = None
    return [Need(id=ref, on=on) for ref, on in seen]


def check_dependencies(s: Session, spec: JobSubmit, within: set[str] | None
                       ) -> tuple[list[Need], Decision | None]:
    """The submission's dependencies with each parent found (a job, or else an array) among
    the projects the submitter may see, and what they say now. A parent that does not exist
    (or that the submitter may not see) is refused, and so is one that can never be met now:
    waiting for it would be waiting for ever."""
    wanted = needs_of(spec)
    if not wanted:
        return [], None
    ids = sorted({n.id for n in wanted})
    jobs = dict(s.execute(select(JobRow.id, JobRow.project).where(JobRow.id.in_(ids))).all())
    arrays = dict(s.execute(select(ArrayRow.id, ArrayRow.project)
                            .where(ArrayRow.id.in_(ids))).all())
    needs: list[Need] = []
    for need in wanted:
        project = jobs.get(need.id) or arrays.get(need.id)
        if project is None or (within is not None and project not in within):
            raise NotFound(f"dependency {need.id} is no job or array you can see; a job may "
                           f"only wait for one that exists")
        needs.append(Need(id=need.id, on=need.on, array=need.id not in jobs))
    decision = decide(needs, parent_states(s, needs))
    if decision.verdict == Verdict.NEVER:
        raise Conflict(decision.text.replace("dependency can never be met",
                                             "refused: the dependency can never be met"))
    return needs, decision


def row_values(spec: JobSubmit, pclass: PriorityClass, project: QueueRow, actor: str,
               now: float, digest: str, needs: list[Need], decision: Decision | None
               ) -> dict[str, Any]:
    """The columns of a new job (an array's task adds its own)."""
    waiting = decision is not None and decision.verdict == Verdict.WAIT
    preemptible = pclass.preemptible if spec.preemptible is None else spec.preemptible
    return dict(
        id=new_id(), project=spec.project, name=spec.name,
        command=list(spec.command), env=dict(spec.env), workdir=spec.workdir,
        workers=spec.workers,
        gpus=spec.gpus, gpu_fraction=spec.gpu_fraction, gpu_memory_mib=spec.gpu_memory_mib,
        cpu=round(spec.cpus * CPU_UNIT), memory=spec.memory_mib, priority_class=pclass.name,
        priority=pclass.value, preemptible=preemptible, node_pool=spec.node_pool,
        labels=dict(spec.labels), same_node=spec.same_node, min_runtime_s=spec.min_runtime_s,
        max_retries=spec.max_retries,
        max_runtime_s=spec.max_runtime_s or project.default_max_runtime_s,
        state=JobState.QUEUED.value, attempt=0, submitted_at=now, client_key=spec.client_key,
        request_hash=digest, submitted_by=actor, image=spec.image,
        mounts=[m.model_dump() for m in spec.mounts] or None,
        depends=[n.as_json() for n in needs] or None, deps_waiting=waiting,
        reason=decision.text if waiting and decision is not None else None,
        reason_code=DEPENDENCY if waiting else None,
    )


def describe(spec: JobSubmit) -> str:
    """The submission in a few words, for its event."""
    text = _what(spec)
    needs = needs_of(spec)
    if needs:
        text += f", after {len(needs)} other" + ("s" if len(needs) > 1 else "")
    return text

