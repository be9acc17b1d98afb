"""SQLAlchemy models: queues, nodes, jobs, job events, the store's change counter, and the
security tables (API tokens, users, role bindings, the audit log, encrypted project secrets
and the Unix accounts of users).

Times are seconds since the epoch (floats) so that SQLite and PostgreSQL behave the same.
Resources are stored in the domain's integer base units (milli-GPUs, millicores, MiB); a NULL
limit means unlimited. A job's workers (placement, worker ids, phases and exit codes of the
current attempt) live in one JSON column: they are always read and written together.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class QueueRow(Base):
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    parent: Mapped[str | None] = mapped_column(ForeignKey("queues.name"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # department | project
    quota_gpu: Mapped[int] = mapped_column(BigInteger, default=0)
    quota_cpu: Mapped[int] = mapped_column(BigInteger, default=0)
    quota_memory: Mapped[int] = mapped_column(BigInteger, default=0)
    limit_gpu: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_cpu: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    limit_memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    over_quota_weight: Mapped[int] = mapped_column(Integer, default=1)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    # the fair share the scheduler computed last (written by the control loop when it changes)
    fair_gpu: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fair_cpu: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fair_memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # what the scheduler's last plan allocated to the queue (the same accounting as its shares)
    alloc_gpu: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    alloc_cpu: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    alloc_memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the idle-GPU policy of a project's jobs (see fairpool.control.idle)
    idle_action: Mapped[str] = mapped_column(String(16), default="none")
    idle_threshold: Mapped[float] = mapped_column(Float, default=0.05)
    idle_after_s: Mapped[float] = mapped_column(Float, default=1800.0)
    idle_stop_after_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    default_max_runtime_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the order of a project's waiting jobs (fifo, priority, attained; None: the pool's)
    job_order: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: set when the queue was deleted (kept for its jobs' history; hidden, and revived by a
    #: create of the same name)
    deleted_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class NodeRow(Base):
    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    pool: Mapped[str] = mapped_column(String(63), default="default")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    devices: Mapped[list[Any]] = mapped_column(default=list)  # [{index, memory_mib, model, uuid}]
    cpu: Mapped[int] = mapped_column(BigInteger)
    memory: Mapped[int] = mapped_column(BigInteger)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    ready: Mapped[bool] = mapped_column(Boolean, default=True)
    cordoned: Mapped[bool] = mapped_column(Boolean, default=False)
    address: Mapped[str] = mapped_column(String(253), default="127.0.0.1")
    cordon_until: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: until told
    cordon_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)
    #: how the node confines jobs: {"level", "run_as", "missing", "simulated_devices"}
    isolation: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("project", "client_key", name="uq_jobs_project_client_key"),
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_project_state", "project", "state"),
        Index("ix_jobs_state_finished", "state", "finished_at"),  # recent runs (run times)
        Index("ix_jobs_array", "array_id", "array_index"),
        Index("ix_jobs_name", "name"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("queues.name"))
    name: Mapped[str] = mapped_column(String(128), default="")
    command: Mapped[list[Any]] = mapped_column()
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    workdir: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    workers: Mapped[int] = mapped_column(Integer, default=1)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    gpu_memory_mib: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu: Mapped[int] = mapped_column(BigInteger, default=0)
    memory: Mapped[int] = mapped_column(BigInteger, default=0)
    priority_class: Mapped[str] = mapped_column(String(63), default="train")
    priority: Mapped[int] = mapped_column(Integer, default=50)
    preemptible: Mapped[bool] = mapped_column(Boolean, default=True)
    node_pool: Mapped[str | None] = mapped_column(String(63), nullable=True)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    same_node: Mapped[bool] = mapped_column(Boolean, default=False)
    min_runtime_s: Mapped[float] = mapped_column(Float, default=0.0)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    submitted_at: Mapped[float] = mapped_column(Float)
    admitted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    placement: Mapped[list[Any] | None] = mapped_column(nullable=True)  # workers of the attempt
    waits_for: Mapped[list[Any] | None] = mapped_column(nullable=True)  # job ids being evicted
    stop_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    client_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    submitted_by: Mapped[str | None] = mapped_column(String(253), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    gpu_util: Mapped[float | None] = mapped_column(Float, nullable=True)  # last sample, 0..1
    util_simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    gpu_memory_used_mib: Mapped[int | None] = mapped_column(Integer, nullable=True)
    idle_since: Mapped[float | None] = mapped_column(Float, nullable=True)  # below threshold
    idle_flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    max_retries: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)  # failed attempts retried so far
    max_runtime_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: a waiting job is not scheduled before this time (held back after an idle preemption)
    not_before: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: the store generation of the last change the scheduler must see (see Store.bump); the
    #: control loop reads only jobs whose seq is newer than what it already holds
    seq: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    #: the OCI image every worker runs in (None: no container)
    image: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: host paths bound into the container: [{"source", "target", "read_only"}]
    mounts: Mapped[list[Any] | None] = mapped_column(nullable=True)
    #: a task of a job array: the array's id, this task's index, and the most tasks of the
    #: array that may hold resources at once (None: no cap)
    array_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    array_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    array_cap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the sweep parameters of this task (also in its environment)
    params: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    #: what the job waits for: [{"id": job or array id, "array": bool, "on": ok|any|failed}]
    depends: Mapped[list[Any] | None] = mapped_column(nullable=True)
    #: True while a dependency is not met yet (the scheduler does not see the job)
    deps_waiting: Mapped[bool] = mapped_column(Boolean, default=False)
    #: GPU-seconds of service the job's earlier runs received (the attained-service order)
    attained_gpu_s: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: when the job last went back to waiting (None: it has waited since it was submitted)
    queued_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class ArrayRow(Base):
    """A job array or sweep: its tasks are jobs (``JobRow.array_id``)."""

    __tablename__ = "job_arrays"
    __table_args__ = (
        UniqueConstraint("project", "client_key", name="uq_job_arrays_project_client_key"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project: Mapped[str] = mapped_column(ForeignKey("queues.name"))
    name: Mapped[str] = mapped_column(String(128), default="")
    size: Mapped[int] = mapped_column(Integer)
    max_running: Mapped[int | None] = mapped_column(Integer, nullable=True)
    indices: Mapped[str] = mapped_column(Text)  # as asked: "0-999:2"
    submitted_at: Mapped[float] = mapped_column(Float)
    submitted_by: Mapped[str | None] = mapped_column(String(253), nullable=True)
    client_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))


class JobEventRow(Base):
    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_kind", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    cause: Mapped[str | None] = mapped_column(String(32), nullable=True)  # of an eviction


class MetaRow(Base):
    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class TokenRow(Base):
    """An API token: only a salted SHA-256 of its secret part is kept (the token is shown once).
    Tokens carry 256 random bits, so a fast hash is as safe as a slow one and keeps each
    request cheap; the salt makes every stored hash unique."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public part of the token
    user: Mapped[str] = mapped_column(String(253), index=True)
    salt: Mapped[str] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: "oidc" for a token created with an identity provider's login (or with a token so
    #: created) by a non-admin: tokens it creates must not outlive it
    origin: Mapped[str | None] = mapped_column(String(16), nullable=True)


class UserRow(Base):
    """What the pool knows of a user beyond its tokens and roles: whether an admin disabled it.
    A row is made the first time a token is created for the user (it is also the row that
    creating a token and disabling the user lock, so the two never interleave)."""

    __tablename__ = "users"

    user: Mapped[str] = mapped_column(String(253), primary_key=True)
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    disabled_by: Mapped[str | None] = mapped_column(String(253), nullable=True)


class RoleBindingRow(Base):
    """A role given to a user (or ``group:NAME`` from an identity provider) on a scope: the
    whole pool (``*``), a department or a project."""

    __tablename__ = "role_bindings"
    __table_args__ = (UniqueConstraint("subject", "role", "scope", name="uq_role_binding"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(253), index=True)
    role: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(63))
    created_by: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[float] = mapped_column(Float)


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_actor", "actor"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(253))  # "-" when nobody could be identified
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str] = mapped_column(String(300), default="")
    outcome: Mapped[str] = mapped_column(String(16))  # ok | denied | failed
    detail: Mapped[str] = mapped_column(Text, default="")
    address: Mapped[str] = mapped_column(String(64), default="")


class SecretRow(Base):
    """A project's environment secret, encrypted with Fernet (AES-128-CBC + HMAC-SHA256)."""

    __tablename__ = "project_secrets"

    project: Mapped[str] = mapped_column(ForeignKey("queues.name"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(253))
    updated_at: Mapped[float] = mapped_column(Float)


class UserAccountRow(Base):
    """The Unix account a user's jobs run as (with ``run_as = "user"``), set by an admin."""

    __tablename__ = "user_accounts"

    user: Mapped[str] = mapped_column(String(253), primary_key=True)
    account: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(253), nullable=True)


class UsageRow(Base):
    """A stretch of time in which a job held ``gpus`` GPUs at utilisation ``util`` (None: not
    measured). Accounting sums the overlap of these with any time range; a new row starts when
    a job starts running or its utilisation moves by more than a few points."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_span", "start", "end"), Index("ix_usage_job", "job_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32))
    project: Mapped[str] = mapped_column(String(63))
    department: Mapped[str] = mapped_column(String(63))
    attempt: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[float] = mapped_column(Float)  # of the whole job (all workers), may be a share
    util: Mapped[float | None] = mapped_column(Float, nullable=True)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    open: Mapped[bool] = mapped_column(Boolean, default=True)  # the job still runs
