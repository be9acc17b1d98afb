"""Pure domain model: resources, nodes and devices, the queue tree, jobs, priority classes and
the job state machine. No I/O, no framework imports."""

from fairpool.domain.job import Job, NodeSelector, WorkerPlacement, WorkerRequest
from fairpool.domain.node import Device, Node
from fairpool.domain.priority import DEFAULT_PRIORITY_CLASSES, PriorityClass
from fairpool.domain.queue import Queue, QueueTree
from fairpool.domain.resources import GPU_UNIT, UNLIMITED, Resources
from fairpool.domain.states import (
    HOLDING_STATES,
    PENDING_STATES,
    IllegalTransition,
    JobState,
    StopReason,
)

__all__ = [
    "DEFAULT_PRIORITY_CLASSES",
    "GPU_UNIT",
    "HOLDING_STATES",
    "PENDING_STATES",
    "UNLIMITED",
    "Device",
    "IllegalTransition",
    "Job",
    "JobState",
    "Node",
    "NodeSelector",
    "PriorityClass",
    "Queue",
    "QueueTree",
    "Resources",
    "StopReason",
    "WorkerPlacement",
    "WorkerRequest",
]
