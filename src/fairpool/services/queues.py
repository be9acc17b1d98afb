"""Departments and projects: create, change quotas and limits, and read their status."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only

from fairpool.domain import GPU_UNIT, Resources, WorkerRequest
from fairpool.domain.accounting import asked, held, reference_memory
from fairpool.domain.resources import CPU_UNIT
from fairpool.domain.states import HOLDING_VALUES, PENDING_VALUES
from fairpool.schemas.queues import (
    MAX_CPUS,
    MAX_GPUS,
    MAX_MEMORY_MIB,
    IdlePolicySpec,
    LimitSpec,
    ProjectCreate,
    QueueCreate,
    QueueOut,
    QueueUpdate,
    ResourceSpec,
)
from fairpool.services import audit
from fairpool.services.errors import Conflict, Invalid, NotFound
from fairpool.services.scopes import forget_paths
from fairpool.services.views import queue_out, resources_out
from fairpool.store.convert import placements, worker_request
from fairpool.store.db import Store
from fairpool.store.models import JobRow, NodeRow, QueueRow

HOLDING, WAITING = "holding", "waiting"


def _units(spec: ResourceSpec) -> tuple[int, int, int]:
    return round(spec.gpus * GPU_UNIT), round(spec.cpus * CPU_UNIT), spec.memory_mib


def _limit_units(limit: LimitSpec) -> tuple[int | None, int | None, int | None]:
    """A limit in stored units; None where a resource has no limit: left out, null, or given
    at its maximum (what older clients send for "no limit on it")."""
    gpus, cpus, memory = limit.gpus, limit.cpus, limit.memory_mib
    return (None if gpus is None or gpus >= MAX_GPUS else round(gpus * GPU_UNIT),
            None if cpus is None or cpus >= MAX_CPUS else round(cpus * CPU_UNIT),
            None if memory is None or memory >= MAX_MEMORY_MIB else memory)


def _set(row: QueueRow, quota: ResourceSpec | None, limit: LimitSpec | None,
         unlimited: bool) -> None:
    if quota is not None:
        row.quota_gpu, row.quota_cpu, row.quota_memory = _units(quota)
    if unlimited:
        row.limit_gpu = row.limit_cpu = row.limit_memory = None
    elif limit is not None:  # the new limit replaces the old one whole
        row.limit_gpu, row.limit_cpu, row.limit_memory = _limit_units(limit)
    for what, q, lim in (("GPU", row.quota_gpu, row.limit_gpu), ("CPU", row.quota_cpu,
                                                                  row.limit_cpu),
                         ("memory", row.quota_memory, row.limit_memory)):
        if lim is not None and q > lim:
            raise Invalid(f"queue {row.name}: {what} quota is above its limit; "
                          f"raise the limit or lower the quota")


def _create(store: Store, spec: QueueCreate, kind: str, parent: str | None, actor: str,
            address: str) -> QueueOut:
    with store.writing() as s:
        if s.get(QueueRow, spec.name) is not None:
            raise Conflict(f"a queue named {spec.name} already exists; pick another name")
        if parent is not None:
            dept = s.get(QueueRow, parent)
            if dept is None or dept.kind != "department":
                raise NotFound(f"department {parent} does not exist; create it first with "
                               f"`fairpool department create {parent}`")
        row = QueueRow(name=spec.name, parent=parent, kind=kind,
                       over_quota_weight=spec.over_quota_weight, priority=spec.priority,
                       created_at=time.time(), quota_gpu=0, quota_cpu=0, quota_memory=0)
        _set(row, spec.quota, spec.limit, unlimited=False)
        if isinstance(spec, ProjectCreate):
            if spec.idle is not None:
                _set_idle(row, spec.idle)
            row.default_max_runtime_s = spec.default_max_runtime_s
        s.add(row)
        Store.bump(s)
        audit.record(s, actor, f"{kind}.create", spec.name, detail=_summary(row),
                     address=address)
    forget_paths(store)
    return queue_status(store, spec.name)


def _set_idle(row: QueueRow, idle: IdlePolicySpec) -> None:
    row.idle_action, row.idle_threshold = idle.action, idle.threshold
    row.idle_after_s, row.idle_stop_after_s = idle.after_s, idle.stop_after_s


def _summary(row: QueueRow) -> str:
    caps = [f"{amount} {what}" for amount, what in (
        (None if row.limit_gpu is None else f"{row.limit_gpu / GPU_UNIT:g}", "GPUs"),
        (None if row.limit_cpu is None else f"{row.limit_cpu / CPU_UNIT:g}", "CPUs"),
        (None if row.limit_memory is None else str(row.limit_memory), "MiB"))
        if amount is not None]
    return (f"quota {row.quota_gpu / GPU_UNIT:g} GPUs, {row.quota_cpu / CPU_UNIT:g} CPUs, "
            f"{row.quota_memory} MiB; limit {', '.join(caps) or 'none'}; weight "
            f"{row.over_quota_weight}; priority {row.priority}")


def create_department(store: Store, spec: QueueCreate, actor: str = "system",
                      address: str = "") -> QueueOut:
    return _create(store, spec, "department", None, actor, address)


def create_project(store: Store, spec: ProjectCreate, actor: str = "system",
                   address: str = "") -> QueueOut:
    return _create(store, spec, "project", spec.department, actor, address)


def update_queue(store: Store, name: str, spec: QueueUpdate, actor: str = "system",
                 address: str = "") -> QueueOut:
    with store.writing() as s:
        Store.bump(s)  # the generation row first, as every writer takes it (no lock cycles)
        row = s.get(QueueRow, name)
        if row is None:
            raise NotFound(f"queue {name} does not exist")
        _set(row, spec.quota, spec.limit, spec.unlimited)
        if spec.over_quota_weight is not None:
            row.over_quota_weight = spec.over_quota_weight
        if spec.priority is not None:
            row.priority = spec.priority
        if spec.idle is not None or spec.default_max_runtime_s is not None:
            if row.kind != "project":
                raise Invalid(f"{name} is a department; idle-GPU policies and max runtimes "
                              "are set per project")
            if spec.idle is not None:
                _set_idle(row, spec.idle)
            if spec.default_max_runtime_s is not None:
                row.default_max_runtime_s = spec.default_max_runtime_s or None
        audit.record(s, actor, "queue.update", name, detail=_summary(row), address=address)
    return queue_status(store, name)


def _usage(s: Session) -> dict[tuple[str, str], tuple[Resources, int]]:
    """(project, holding|waiting) → (resources, jobs), counted as the scheduler counts them
    (:mod:`fairpool.domain.accounting`): a holding job what its placements hold, a waiting job
    what it asks for, GPU memory valued on the reference device (the cluster's largest)."""
    out: dict[tuple[str, str], tuple[Resources, int]] = {}

    def add(key: tuple[str, str], amount: Resources, jobs: int) -> None:
        prev, n = out.get(key, (Resources.ZERO, 0))
        out[key] = (prev + amount, n + jobs)

    ref = reference_memory(d["memory_mib"] for (devices,) in s.execute(select(NodeRow.devices))
                           for d in devices)
    # what waiting jobs ask for is linear in their workers: one sum per project and request
    shape = (JobRow.gpus, JobRow.gpu_fraction, JobRow.gpu_memory_mib, JobRow.cpu, JobRow.memory)
    for project, gpus, fraction, gmem, cpu, memory, workers, n in s.execute(
            select(JobRow.project, *shape, func.sum(JobRow.workers), func.count())
            .where(JobRow.state.in_(PENDING_VALUES)).group_by(JobRow.project, *shape)):
        request = WorkerRequest(gpus=gpus, gpu_fraction=fraction, gpu_memory_mib=gmem, cpu=cpu,
                                memory=memory)
        add((project, WAITING), asked(request, int(workers), ref), int(n))
    holding = (select(JobRow).options(load_only(JobRow.project, *shape, JobRow.placement))
               .where(JobRow.state.in_(HOLDING_VALUES)))
    for row in s.execute(holding).scalars():
        add((row.project, HOLDING), held(worker_request(row), placements(row)), 1)
    return out


def queue_status(store: Store, name: str) -> QueueOut:
    items = list_queues(store, only=name)
    if not items:
        raise NotFound(f"queue {name} does not exist")
    return items[0]


def list_queues(store: Store, only: str | None = None) -> list[QueueOut]:
    with store.session() as s:
        query = select(QueueRow).order_by(QueueRow.name)
        if only is not None:
            query = query.where(QueueRow.name == only)
        rows = s.execute(query).scalars().all()
        parents = {r.name: r.parent for r in s.execute(select(QueueRow)).scalars()}
        usage = _usage(s)
    totals: dict[tuple[str, str], tuple[Resources, int]] = {}
    for (project, kind), (amount, jobs) in usage.items():
        node: str | None = project
        while node is not None:  # a project's use counts for its department too
            prev, n = totals.get((node, kind), (Resources.ZERO, 0))
            totals[node, kind] = (prev + amount, n + jobs)
            node = parents.get(node)
    out = []
    nothing = (Resources.ZERO, 0)
    for row in rows:
        act, running = totals.get((row.name, HOLDING), nothing)
        wait, waiting = totals.get((row.name, WAITING), nothing)
        out.append(queue_out(
            row,
            fair_share=None if row.fair_gpu is None else resources_out(
                row.fair_gpu, row.fair_cpu or 0, row.fair_memory or 0),
            planned=None if row.alloc_gpu is None else resources_out(
                row.alloc_gpu, row.alloc_cpu or 0, row.alloc_memory or 0),
            allocated=resources_out(act.gpu, act.cpu, act.memory),
            pending=resources_out(wait.gpu, wait.cpu, wait.memory),
            running_jobs=running, pending_jobs=waiting,
        ))
    return out
