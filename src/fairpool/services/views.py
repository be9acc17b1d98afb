"""Rows → API views: how a job, its workers and mounts, a queue and a node's isolation are
reported (the ``*Out`` models of ``fairpool.schemas``)."""

from __future__ import annotations

from typing import Any

from fairpool.domain import GPU_UNIT
from fairpool.domain.resources import CPU_UNIT
from fairpool.schemas.jobs import DependOut, JobOut, MountOut, WorkerOut
from fairpool.schemas.nodes import IsolationOut
from fairpool.schemas.queues import IdlePolicyOut, LimitOut, QueueOut, ResourcesOut
from fairpool.store.models import JobRow, NodeRow, QueueRow


def resources_out(gpu: int, cpu: int, memory: int) -> ResourcesOut:
    return ResourcesOut(gpus=gpu / GPU_UNIT, cpus=cpu / CPU_UNIT, memory_mib=memory)


def job_out(row: JobRow) -> JobOut:
    return JobOut(
        id=row.id, name=row.name, project=row.project, state=row.state,
        command=list(row.command), workdir=row.workdir, workers=row.workers, gpus=row.gpus,
        gpu_fraction=row.gpu_fraction, gpu_memory_mib=row.gpu_memory_mib,
        cpus=row.cpu / CPU_UNIT, memory_mib=row.memory, priority=row.priority_class,
        preemptible=row.preemptible, attempt=row.attempt, submitted_at=row.submitted_at,
        started_at=row.started_at, finished_at=row.finished_at, exit_code=row.exit_code,
        reason=row.reason, reason_code=row.reason_code,
        placement=[worker_out(w) for w in (row.placement or ())],
        client_key=row.client_key,
        submitted_by=row.submitted_by,
        gpu_util=row.gpu_util, util_simulated=bool(row.util_simulated),
        idle=bool(row.idle_flagged), idle_since=row.idle_since,
        max_retries=row.max_retries or 0, retries=row.retries or 0,
        max_runtime_s=row.max_runtime_s,
        not_before=row.not_before if row.state in ("queued", "requeued") else None,
        image=row.image,
        mounts=[mount_out(m) for m in (row.mounts or ())],
        array_id=row.array_id, array_index=row.array_index,
        params={str(k): str(v) for k, v in row.params.items()} if row.params else None,
        depends=[DependOut(id=str(d["id"]), array=bool(d.get("array")), on=str(d["on"]))
                 for d in row.depends or ()],
        deps_waiting=bool(row.deps_waiting),
    )


def mount_out(m: dict[str, Any]) -> MountOut:
    return MountOut(source=m["source"], target=m["target"],
                    read_only=bool(m.get("read_only", False)))


def isolation_out(row: NodeRow) -> IsolationOut | None:
    """The node's isolation as its executor reported it (None: not reported); keys it lacks
    read as unknown rather than failing the node list."""
    iso = row.isolation
    if not isinstance(iso, dict):
        return None
    missing = iso.get("missing")
    return IsolationOut(
        level=str(iso.get("level") or "unknown"), run_as=str(iso.get("run_as") or "unknown"),
        missing=[str(m) for m in missing] if isinstance(missing, list) else [],
        simulated_devices=bool(iso.get("simulated_devices", False)))


def worker_out(w: dict[str, Any]) -> WorkerOut:
    return WorkerOut(
        rank=w["rank"], worker_id=w["worker_id"], node=w["node"], devices=list(w["devices"]),
        share=w["share"] / GPU_UNIT, phase=w.get("phase", "pending"), exit_code=w.get("exit_code"),
    )


def queue_out(row: QueueRow, **extra: Any) -> QueueOut:
    limit = None
    if row.limit_gpu is not None or row.limit_cpu is not None or row.limit_memory is not None:
        limit = LimitOut(  # None: that resource has no limit
            gpus=None if row.limit_gpu is None else row.limit_gpu / GPU_UNIT,
            cpus=None if row.limit_cpu is None else row.limit_cpu / CPU_UNIT,
            memory_mib=row.limit_memory,
        )
    return QueueOut(
        name=row.name, kind=row.kind, parent=row.parent,
        quota=resources_out(row.quota_gpu, row.quota_cpu, row.quota_memory), limit=limit,
        over_quota_weight=row.over_quota_weight, priority=row.priority,
        idle=IdlePolicyOut(action=row.idle_action or "none", threshold=row.idle_threshold
                           if row.idle_threshold is not None else 0.05,
                           after_s=row.idle_after_s if row.idle_after_s is not None else 1800.0,
                           stop_after_s=row.idle_stop_after_s) if row.kind == "project" else None,
        default_max_runtime_s=row.default_max_runtime_s,
        job_order=row.job_order if row.kind == "project" else None,
        **extra,
    )
