"""Request and response models of the queue tree: departments and projects, their quotas,
hard limits and idle-GPU policies, and what the pool reports about each queue."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from fairpool.schemas.base import Input, Name

MAX_GPUS = 1_000_000
MAX_CPUS = 10_000_000
MAX_MEMORY_MIB = 1 << 50


class ResourceSpec(Input):
    """Amounts of each resource (a quota: what is guaranteed; one left out is 0)."""

    gpus: float = Field(0, ge=0, le=MAX_GPUS, description="GPUs (may be fractional in quotas)")
    cpus: float = Field(0, ge=0, le=MAX_CPUS)
    memory_mib: int = Field(0, ge=0, le=MAX_MEMORY_MIB)


class LimitSpec(Input):
    """A hard cap per resource: a resource left out, null, or at its maximum has no limit
    (``{"gpus": 4}`` caps GPUs alone)."""

    gpus: float | None = Field(None, ge=0, le=MAX_GPUS, description="null: no GPU limit")
    cpus: float | None = Field(None, ge=0, le=MAX_CPUS, description="null: no CPU limit")
    memory_mib: int | None = Field(None, ge=0, le=MAX_MEMORY_MIB,
                                   description="null: no memory limit")


class IdlePolicySpec(Input):
    """What happens to a project's jobs whose GPUs stay idle (Run:ai's idle GPU timeout)."""

    action: Literal["none", "notify", "preempt", "stop"] = Field(
        "notify", description="notify: flag only; preempt: requeue when others wait; stop: end "
                              "after stop_after_s")
    threshold: float = Field(0.05, ge=0, le=1, description="utilisation below this is idle")
    after_s: float = Field(1800, ge=1, le=30 * 86400, description="idle this long: flagged")
    stop_after_s: float | None = Field(None, ge=1, le=30 * 86400,
                                       description="for stop: idle this long ends the job")

    @model_validator(mode="after")
    def _stop_needs_time(self) -> IdlePolicySpec:
        if self.action == "stop" and self.stop_after_s is None:
            raise ValueError("action stop needs stop_after_s")
        return self


class IdlePolicyOut(BaseModel):
    action: str
    threshold: float
    after_s: float
    stop_after_s: float | None


#: the over-commit switch of a quota: promise more than the parent (or the pool) has
OVER_COMMIT = Field(False, description="accept a quota that makes the department's projects' "
                                       "(or the departments') quotas add up to more than "
                                       "there is; views then show by how much")


#: a project's order of waiting jobs; "default" (updates only) returns it to the pool's
JOB_ORDER_HELP = ("order of the project's waiting jobs: fifo (submit time), priority (priority, "
                  "then submit time) or attained (least GPU time received first, with "
                  "promotion after long waits); omitted: the pool's default")
JobOrderName = Literal["fifo", "priority", "attained"]
JobOrderUpdate = Literal["fifo", "priority", "attained", "default"]


class QueueCreate(Input):
    name: Name
    quota: ResourceSpec = Field(default_factory=ResourceSpec)
    over_commit: bool = OVER_COMMIT
    limit: LimitSpec | None = Field(None, description="hard cap; omitted means unlimited")
    over_quota_weight: int = Field(1, ge=0, le=1000)
    priority: int = Field(0, ge=-1000, le=1000)


class ProjectCreate(QueueCreate):
    department: Name
    idle: IdlePolicySpec | None = Field(None, description="idle-GPU policy of its jobs")
    default_max_runtime_s: float | None = Field(
        None, gt=0, le=365 * 86400, description="max runtime of its jobs that set none")
    job_order: JobOrderName | None = Field(None, description=JOB_ORDER_HELP)


class QueueUpdate(Input):
    quota: ResourceSpec | None = None
    over_commit: bool = OVER_COMMIT
    limit: LimitSpec | None = Field(None, description="the new hard cap, replacing the old "
                                                      "one; a resource left out is unlimited")
    unlimited: bool = Field(False, description="remove the limit")
    over_quota_weight: int | None = Field(None, ge=0, le=1000)
    priority: int | None = Field(None, ge=-1000, le=1000)
    idle: IdlePolicySpec | None = Field(None, description="projects only: idle-GPU policy")
    default_max_runtime_s: float | None = Field(
        None, ge=0, le=365 * 86400, description="projects only: max runtime of jobs that set "
                                                 "none; 0 removes it")
    job_order: JobOrderUpdate | None = Field(
        None, description="projects only: " + JOB_ORDER_HELP.replace(
            "omitted: the pool's default", "default: back to the pool's default"))

    @model_validator(mode="after")
    def _one_limit(self) -> QueueUpdate:
        if self.unlimited and self.limit is not None:
            raise ValueError("give a limit or unlimited=true, not both")
        return self


class ResourcesOut(BaseModel):
    gpus: float
    cpus: float
    memory_mib: int


class LimitOut(BaseModel):
    """A queue's hard cap; null: no limit on that resource."""

    gpus: float | None
    cpus: float | None
    memory_mib: int | None


class QueueOut(BaseModel):
    name: str
    kind: str
    parent: str | None
    quota: ResourcesOut
    limit: LimitOut | None  # null: no limit on any resource
    over_quota_weight: int
    priority: int
    fair_share: ResourcesOut | None = None
    #: departments only: by how much its projects' quotas exceed its own (null: they do not)
    over_committed: ResourcesOut | None = None
    #: what the scheduler's last plan allocated, in the accounting its fair share uses (jobs
    #: it evicted in that plan no longer count, though they hold their GPUs until stopped)
    planned: ResourcesOut | None = None
    allocated: ResourcesOut  # what placed jobs hold now, stopping ones included
    pending: ResourcesOut
    running_jobs: int
    pending_jobs: int
    idle: IdlePolicyOut | None = None  # projects only
    default_max_runtime_s: float | None = None
    #: projects only: the order of its waiting jobs it sets (null: the pool's default)
    job_order: str | None = None
