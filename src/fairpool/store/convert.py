"""Rows → domain objects: the queues, nodes and jobs the scheduler and the control loop see.

How rows are shown over the API (rows → views) is ``fairpool.services.views``'s business."""

from __future__ import annotations

from fairpool.domain import (
    UNLIMITED,
    Device,
    Job,
    JobState,
    Node,
    Queue,
    Resources,
    WorkerPlacement,
    WorkerRequest,
)
from fairpool.domain.job import ANY_NODE, NodeSelector
from fairpool.domain.queue import InQueueOrder
from fairpool.domain.states import HOLDING_STATES
from fairpool.store.models import JobRow, NodeRow, QueueRow


def _lim(value: int | None) -> int:
    return UNLIMITED if value is None else value


def queue_domain(row: QueueRow) -> Queue:
    return Queue(
        name=row.name,
        parent=row.parent,
        quota=Resources(row.quota_gpu, 0, row.quota_cpu, row.quota_memory),
        limit=Resources(_lim(row.limit_gpu), UNLIMITED, _lim(row.limit_cpu),
                        _lim(row.limit_memory)),
        over_quota_weight=row.over_quota_weight,
        priority=row.priority,
        job_order=InQueueOrder(row.job_order) if row.job_order else None,
    )


def node_domain(row: NodeRow) -> Node:
    return Node(
        name=row.name,
        devices=tuple(Device(d["index"], d["memory_mib"], d["model"]) for d in row.devices),
        cpu=row.cpu,
        memory=row.memory,
        pool=row.pool,
        labels=dict(row.labels),
        ready=row.ready,
        cordoned=row.cordoned,
        simulated=row.simulated,
    )


def placements(row: JobRow) -> tuple[WorkerPlacement, ...]:
    return tuple(
        WorkerPlacement(w["rank"], w["node"], tuple(w["devices"]), w["share"], w["gpu_memory"])
        for w in (row.placement or ())
    )


def worker_request(row: JobRow) -> WorkerRequest:
    """What each worker of the job asks for."""
    return WorkerRequest(gpus=row.gpus, gpu_fraction=row.gpu_fraction,
                         gpu_memory_mib=row.gpu_memory_mib, cpu=row.cpu, memory=row.memory)


def job_domain(row: JobRow) -> Job:
    state = JobState(row.state)
    return Job(
        id=row.id,
        project=row.project,
        request=worker_request(row),
        workers=row.workers,
        priority=row.priority,
        priority_class=row.priority_class,
        preemptible=row.preemptible,
        submit_time=row.submitted_at,
        selector=ANY_NODE if row.node_pool is None and not row.labels
        else NodeSelector(row.node_pool, dict(row.labels)),
        same_node=row.same_node,
        min_runtime_s=row.min_runtime_s,
        state=state,
        placements=placements(row) if state in HOLDING_STATES else (),
        started_at=row.started_at if row.started_at is not None else row.admitted_at,
        max_runtime_s=row.max_runtime_s,
        attained_gpu_s=row.attained_gpu_s or 0.0,
        queued_at=row.queued_at,
    )
