"""Jobs: submit (idempotent with a client key), list, get, cancel, events, explain, logs."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fairpool.domain import JobState
from fairpool.domain.job import WorkerRequest
from fairpool.domain.priority import DEFAULT_PRIORITY_CLASSES, resolve_priority_class
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.states import FINISHED_VALUES, PENDING_VALUES, StopReason
from fairpool.scheduler.fit import Inventory, Shortfall, misfit
from fairpool.schemas.jobs import EventOut, ExplainOut, JobOut, JobSubmit
from fairpool.services import audit
from fairpool.services.errors import Conflict, Invalid, NotFound, ServiceError
from fairpool.services.views import job_out
from fairpool.store.convert import node_domain
from fairpool.store.db import Store
from fairpool.store.lifecycle import add_event, move
from fairpool.store.models import JobEventRow, JobRow, NodeRow, QueueRow


def _request_hash(spec: JobSubmit) -> str:
    body = spec.model_dump(exclude={"client_key"})
    for field, unset in (("image", None), ("mounts", [])):  # as hashed before they existed,
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


def _check_fits_somewhere(store: Store, s: Session, spec: JobSubmit) -> None:
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
        Shortfall.GPUS: f"the job needs {why.need} GPUs on one node but the largest node in "
                        f"{where} has {why.largest}",
        Shortfall.NO_GPUS: "the job asks for a GPU share but no node has GPUs",
        Shortfall.GPU_MEMORY: f"the job needs {why.need} MiB on one GPU but the largest GPU "
                              f"has {why.largest} MiB",
        Shortfall.CPU: f"the job needs {spec.cpus:g} CPUs per worker but the largest node has "
                       f"{why.largest / CPU_UNIT:g}",
        Shortfall.MEMORY: f"the job needs {spec.memory_mib} MiB memory per worker but the "
                          f"largest node has {why.largest} MiB",
    }.get(why.shortfall, why.message))


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


def _check_pending(s: Session, project: str, max_pending: int | None) -> None:
    """Refuse a submit that would take a project past ``max_pending`` waiting jobs. Called in
    the write transaction that inserts the job, after :meth:`Store.bump`: every writer takes
    that row first (on SQLite under the store's write lock, on PostgreSQL as a row lock held
    to commit), so no other submit can count or insert between this count and this insert,
    and the count (a fresh statement, read committed) sees every job committed before."""
    if max_pending is None:
        return
    waiting = s.execute(select(func.count()).select_from(JobRow).where(
        JobRow.project == project, JobRow.state.in_(PENDING_VALUES))).scalar_one()
    if waiting >= max_pending:
        raise TooManyPending(f"project {project} already has {waiting} jobs waiting, the most "
                             f"allowed ({max_pending}); wait for some to start or cancel some")


def submit(store: Store, spec: JobSubmit, wake: Callable[[], None] | None = None, *,
           actor: str = "system", max_pending: int | None = None, address: str = "",
           mount_roots: Sequence[Path] | None = None) -> tuple[JobOut, bool]:
    """Queue a job; returns it and whether it was created (False: an idempotent replay).
    ``mount_roots``: the host directories mount sources must lie under (none: no mounts)."""
    check_mounts(spec, mount_roots)
    try:
        pclass = resolve_priority_class(spec.priority, DEFAULT_PRIORITY_CLASSES)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    digest = _request_hash(spec)
    now = time.time()
    with store.session() as s:  # checks read only, outside the write lock
        project = s.get(QueueRow, spec.project)
        if project is None or project.kind != "project":
            raise NotFound(f"project {spec.project} does not exist; create it with "
                           f"`fairpool project create {spec.project} --department D`")
        default_runtime = project.default_max_runtime_s
        if spec.client_key is not None:
            existing = _by_key(s, spec.project, spec.client_key)
            if existing is not None:
                return _replay(existing, digest), False
        _check_fits_somewhere(store, s, spec)
    preemptible = pclass.preemptible if spec.preemptible is None else spec.preemptible
    values = dict(
        id=uuid.uuid4().hex[:12], project=spec.project, name=spec.name,
        command=list(spec.command), env=dict(spec.env), workdir=spec.workdir,
        workers=spec.workers,
        gpus=spec.gpus, gpu_fraction=spec.gpu_fraction, gpu_memory_mib=spec.gpu_memory_mib,
        cpu=round(spec.cpus * CPU_UNIT), memory=spec.memory_mib, priority_class=pclass.name,
        priority=pclass.value, preemptible=preemptible, node_pool=spec.node_pool,
        labels=dict(spec.labels), same_node=spec.same_node, min_runtime_s=spec.min_runtime_s,
        max_retries=spec.max_retries,
        max_runtime_s=spec.max_runtime_s or default_runtime,
        state=JobState.QUEUED.value, attempt=0, submitted_at=now, client_key=spec.client_key,
        request_hash=digest, submitted_by=actor, image=spec.image,
        mounts=[m.model_dump() for m in spec.mounts] or None,
    )
    try:
        with store.writing() as s:  # the job and its first event, written directly
            values["seq"] = Store.bump(s)  # first: it orders this submit among all writers
            _check_pending(s, spec.project, max_pending)
            s.execute(insert(JobRow).values(**values))
            s.execute(insert(JobEventRow).values(
                job_id=values["id"], at=now, kind="submitted",
                message=f"submitted to project {spec.project} by {actor} ({_describe(spec)})"))
            audit.record(s, actor, "job.submit", f"{spec.project}/{values['id']}",
                         address=address)
    except IntegrityError:
        # a concurrent submit with the same client key won the race: return its job
        with store.session() as s:
            existing = _by_key(s, spec.project, spec.client_key or "")
            if existing is None:
                raise
            return _replay(existing, digest), False
    if wake is not None:
        wake()
    return job_out(JobRow(**values)), True


def _by_key(s: Session, project: str, key: str) -> JobRow | None:
    return s.execute(
        select(JobRow).where(JobRow.project == project, JobRow.client_key == key)
    ).scalar_one_or_none()


def _replay(existing: JobRow, digest: str) -> JobOut:
    if existing.request_hash != digest:
        raise Conflict(f"client key {existing.client_key} was already used for job "
                       f"{existing.id} with a different request; use a new key")
    return job_out(existing)


def _describe(spec: JobSubmit) -> str:
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


def get_job(store: Store, job_id: str) -> JobOut:
    with store.session() as s:
        return job_out(_load(s, job_id))


def _load(s: Session, job_id: str) -> JobRow:
    row = s.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    return row


def list_jobs(store: Store, project: str | None = None, state: str | None = None,
              limit: int = 200, within: set[str] | None = None) -> list[JobOut]:
    """Newest first; ``within``: only these projects (those the caller may see)."""
    if state is not None and state not in {s.value for s in JobState}:
        raise Invalid(f"unknown state {state!r}; states: {', '.join(s.value for s in JobState)}")
    with store.session() as s:
        query = select(JobRow).order_by(JobRow.submitted_at.desc()).limit(limit)
        if project is not None:
            query = query.where(JobRow.project == project)
        if within is not None:
            query = query.where(JobRow.project.in_(sorted(within)))
        if state is not None:
            query = query.where(JobRow.state == state)
        return [job_out(r) for r in s.execute(query).scalars()]


def cancel(store: Store, job_id: str, wake: Callable[[], None] | None = None, *,
           actor: str = "system", address: str = "") -> JobOut:
    with store.writing() as s:
        seq = Store.bump(s)  # first, as every writer does: the counter row orders writers
        row = _load(s, job_id)
        state = JobState(row.state)
        if row.state in FINISHED_VALUES:
            raise Conflict(f"job {job_id} already finished ({row.state}); nothing to cancel")
        if row.stop_reason == StopReason.CANCEL:
            return job_out(row)
        now = time.time()
        if state in (JobState.QUEUED, JobState.REQUEUED, JobState.ADMITTED):
            # nothing runs yet: done at once
            move(s, row, JobState.CANCELLED, now=now, seq=seq,
                 message=f"cancelled by {actor} before it started")
        elif state == JobState.STOPPING:  # a cancel wins over why it was being stopped
            row.stop_reason = StopReason.CANCEL.value
            row.seq = seq
            add_event(s, job_id, "cancelling", f"cancel requested by {actor}: its workers "
                      "are already being stopped", now)
        else:
            move(s, row, JobState.STOPPING, now=now, seq=seq, stop=StopReason.CANCEL,
                 kind="cancelling", message=f"cancel requested by {actor}: stopping its workers")
        audit.record(s, actor, "job.cancel", f"{row.project}/{job_id}", address=address)
        out = job_out(row)
    if wake is not None:
        wake()
    return out


def events(store: Store, job_id: str) -> list[EventOut]:
    with store.session() as s:
        _load(s, job_id)
        rows = s.execute(select(JobEventRow).where(JobEventRow.job_id == job_id)
                         .order_by(JobEventRow.id)).scalars()
        return [EventOut(at=r.at, kind=r.kind, message=r.message) for r in rows]


def explain(store: Store, job_id: str) -> ExplainOut:
    with store.session() as s:
        row = _load(s, job_id)
    state = row.state
    if state in PENDING_VALUES:
        text = row.reason or "waiting for the next scheduling cycle"
    elif state == JobState.ADMITTED.value and row.waits_for:
        text = (f"placed; starts once the jobs it displaces have stopped: "
                f"{', '.join(row.waits_for)}")
    elif state == JobState.STOPPING.value:
        text = f"stopping ({row.stop_reason})"
    elif state in (JobState.ADMITTED.value, JobState.STARTING.value, JobState.RUNNING.value):
        nodes = sorted({w["node"] for w in row.placement or ()})
        text = f"{state} on {', '.join(nodes)}"
    else:
        text = f"finished: {state}" + (f" with exit code {row.exit_code}"
                                       if row.exit_code is not None else "")
    return ExplainOut(job_id=job_id, state=state, code=row.reason_code if state in PENDING_VALUES
                      else None, reason=text)


def log_path(data_dir: Path, job_id: str, attempt: int, rank: int) -> Path:
    """One flat directory of logs: no directory to create per job on the hot path."""
    return data_dir / "logs" / f"{job_id}.{attempt}.{rank}.log"


def log_file(store: Store, data_dir: Path, job_id: str, rank: int, attempt: int | None
             ) -> tuple[Path, JobOut]:
    with store.session() as s:
        row = _load(s, job_id)
        out = job_out(row)
    if not 0 <= rank < row.workers:
        raise Invalid(f"job {job_id} has ranks 0..{row.workers - 1}; rank {rank} does not exist")
    use = row.attempt if attempt is None else attempt
    if not 0 <= use <= row.attempt:
        raise Invalid(f"job {job_id} has attempts 0..{row.attempt}")
    return log_path(data_dir, job_id, use, rank), out
