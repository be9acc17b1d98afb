"""Request and response models of jobs: what a submission may ask for (its command,
resources, environment, image and mounts, each bounded and checked), and how a job, its
workers, its events and the explanation of its state are reported."""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from fairpool.domain.images import image_problem
from fairpool.schemas.base import Input, Name, printable

MAX_COMMAND_BYTES = 64 * 1024
MAX_ENV_BYTES = 64 * 1024
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_MOUNTS = 32
IMAGE = r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}$"
#: container paths a job may not mount over: the kernel's and fairpool's own (the sandbox
#: keeps its files under /run/fairpool)
RESERVED_TARGETS = ("/proc", "/sys", "/dev", "/run/fairpool")
MOUNTS_NEED_IMAGE = ("mounts need an image (--image): a job outside a container sees the "
                     "host's files as its account allows")
MountPath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
#: a job's or an array's id (exact: the CLI and SDK resolve prefixes and names first)
JobRef = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
MAX_DEPENDENCIES = 64


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _mount_path(what: str, path: str) -> str:
    """Absolute and normalised, so what is checked is what gets mounted; no ``:`` or ``,``
    (they separate the fields of podman's mount options) and no control characters."""
    if not path.startswith("/"):
        raise ValueError(f"mount {what} {path!r} must be an absolute path")
    if ".." in path.split("/") or os.path.normpath(path) != path or path.startswith("//"):
        normal = "/" + os.path.normpath(path).lstrip("/")
        raise ValueError(f"mount {what} {path!r} must be a normalised path (no '..', '.', "
                         f"'//' or trailing '/'): write {normal!r}")
    found = re.search(r"[:,\x00-\x1f\x7f]", path)
    if found is not None:
        raise ValueError(f"mount {what} {path!r} must not contain {found.group()!r}")
    return path


class MountSpec(Input):
    """A host directory or file bound into the job's container."""

    source: MountPath = Field(description="absolute host path, under an allowed mount root")
    target: MountPath = Field(description="absolute path inside the container")
    read_only: bool = False

    @field_validator("source")
    @classmethod
    def _source(cls, path: str) -> str:
        return _mount_path("source", path)

    @field_validator("target")
    @classmethod
    def _target(cls, path: str) -> str:
        _mount_path("target", path)
        if path == "/":
            raise ValueError("mount target / would replace the container's whole file system")
        for reserved in RESERVED_TARGETS:
            if _under(path, reserved):
                raise ValueError(f"mount target {path} is under {reserved}, which the "
                                 f"container keeps for itself")
        return path


def parse_mount(text: str) -> MountSpec:
    """``SRC:DST`` or ``SRC:DST:ro`` (the CLI's and the SDK's form); ValueError for another
    form, pydantic's ValidationError for a path the rules refuse."""
    parts = text.split(":")
    if len(parts) == 3 and parts[2] == "ro":
        read_only = True
    elif len(parts) == 2:
        read_only = False
    else:
        raise ValueError("--mount takes SRC:DST or SRC:DST:ro")
    if not parts[0] or not parts[1]:
        raise ValueError("--mount takes SRC:DST or SRC:DST:ro")
    return MountSpec(source=parts[0], target=parts[1], read_only=read_only)


class JobSubmit(Input):
    project: Name
    command: list[Annotated[str, StringConstraints(min_length=1, max_length=8192)]] = Field(
        ..., min_length=1, max_length=1024, description="argv; run without a shell"
    )
    name: Annotated[str, StringConstraints(max_length=128)] = ""
    workdir: Annotated[str, StringConstraints(pattern=r"^/", max_length=4096)] | None = Field(
        None, description="absolute directory the workers start in (the CLI sends its own)"
    )
    workers: int = Field(1, ge=1, le=4096)
    gpus: int = Field(0, ge=0, le=64, description="whole GPUs per worker")
    gpu_fraction: float | None = Field(None, gt=0, lt=1, description="share of one GPU")
    gpu_memory_mib: int | None = Field(None, gt=0, le=10_000_000)
    cpus: float = Field(0, ge=0, le=4096)
    memory_mib: int = Field(0, ge=0, le=1 << 44)
    priority: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")] = "train"
    preemptible: bool | None = Field(None, description="default: from the priority class")
    env: dict[str, str] = Field(default_factory=dict, max_length=256)
    node_pool: Name | None = None
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)
    same_node: bool = False
    min_runtime_s: float = Field(0, ge=0, le=30 * 86400)
    max_retries: int = Field(0, ge=0, le=100, description="failed attempts to retry")
    max_runtime_s: float | None = Field(
        None, gt=0, le=365 * 86400, description="stop the job after running this long "
                                                 "(default: its project's)")
    client_key: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        None, description="idempotency key: a resubmit with the same key returns the same job"
    )
    image: Annotated[str, StringConstraints(pattern=IMAGE)] | None = Field(
        None, description="run every worker in this OCI image with podman")
    mounts: list[MountSpec] = Field(
        default_factory=list, max_length=MAX_MOUNTS,
        description="host paths bound into the container (needs image; sources under the "
                    "pool's allowed mount roots)")
    after: list[JobRef] = Field(
        default_factory=list, max_length=MAX_DEPENDENCIES,
        description="start only once these jobs (or every task of these arrays) succeeded")
    after_any: list[JobRef] = Field(
        default_factory=list, max_length=MAX_DEPENDENCIES,
        description="start only once these jobs (or arrays) finished, however they ended")
    after_failed: list[JobRef] = Field(
        default_factory=list, max_length=MAX_DEPENDENCIES,
        description="start only once these jobs failed or were cancelled (an array: once "
                    "all its tasks finished and one did not succeed)")

    @field_validator("command")
    @classmethod
    def _command(cls, argv: list[str]) -> list[str]:
        if sum(len(a.encode()) for a in argv) > MAX_COMMAND_BYTES:
            raise ValueError(f"command is longer than {MAX_COMMAND_BYTES} bytes")
        return argv

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return printable("the job name", name)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            printable(f"label name {key!r}", key)
            printable(f"the value of label {key!r}", value)
        return labels

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not ENV_KEY.fullmatch(key):
                raise ValueError(f"environment variable name {key!r} is not valid")
        if sum(len(k) + len(v) for k, v in env.items()) > MAX_ENV_BYTES:
            raise ValueError(f"environment is larger than {MAX_ENV_BYTES} bytes")
        return env

    @field_validator("image")
    @classmethod
    def _image(cls, image: str | None) -> str | None:
        problem = None if image is None else image_problem(image)
        if problem is not None:
            raise ValueError(problem)
        return image

    @model_validator(mode="after")
    def _one_gpu_form(self) -> JobSubmit:
        forms = sum((self.gpus > 0, self.gpu_fraction is not None,
                     self.gpu_memory_mib is not None))
        if forms > 1:
            raise ValueError("ask for gpus, gpu_fraction or gpu_memory_mib, not several")
        return self

    @model_validator(mode="after")
    def _dependencies(self) -> JobSubmit:
        if len(self.after) + len(self.after_any) + len(self.after_failed) > MAX_DEPENDENCIES:
            raise ValueError(f"a job may depend on at most {MAX_DEPENDENCIES} jobs")
        return self

    @model_validator(mode="after")
    def _mounts(self) -> JobSubmit:
        if self.mounts and self.image is None:
            raise ValueError(MOUNTS_NEED_IMAGE)
        seen: set[str] = set()
        for m in self.mounts:
            if m.target in seen:
                raise ValueError(f"two mounts have the target {m.target}; give each its own")
            seen.add(m.target)
        return self


class MountOut(BaseModel):
    source: str
    target: str
    read_only: bool = False


class WorkerOut(BaseModel):
    rank: int
    worker_id: str
    node: str
    devices: list[int]
    share: float
    phase: str
    exit_code: int | None = None


class DependOut(BaseModel):
    """One dependency: on what (a job or an array) and the outcome it needs."""

    id: str
    array: bool = False
    on: str  # ok (succeeded) | any (finished) | failed (failed or cancelled)


class JobOut(BaseModel):
    id: str
    name: str
    project: str
    state: str
    command: list[str]
    workdir: str | None
    workers: int
    gpus: int
    gpu_fraction: float | None
    gpu_memory_mib: int | None
    cpus: float
    memory_mib: int
    priority: str
    preemptible: bool
    attempt: int
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    reason: str | None
    reason_code: str | None
    placement: list[WorkerOut]
    client_key: str | None
    submitted_by: str | None = None
    gpu_util: float | None = None  # the last reading, 0..1 (None: not measured)
    util_simulated: bool = False  # the reading came from the job itself (simulated GPUs)
    idle: bool = False  # flagged by its project's idle-GPU policy
    idle_since: float | None = None
    max_retries: int = 0
    retries: int = 0  # failed attempts retried so far
    max_runtime_s: float | None = None
    not_before: float | None = None  # waiting jobs: not scheduled before (retry backoff)
    image: str | None = None
    mounts: list[MountOut] = Field(default_factory=list)
    array_id: str | None = None  # a task of this array
    array_index: int | None = None
    params: dict[str, str] | None = None  # the sweep parameters of the task
    depends: list[DependOut] = Field(default_factory=list)
    deps_waiting: bool = False  # a dependency is not met yet



class EventOut(BaseModel):
    at: float
    kind: str
    message: str


class ExplainOut(BaseModel):
    job_id: str
    state: str
    code: str | None
    reason: str
    #: waiting jobs: when the pool, run forward by the scheduler, starts it (null: not within
    #: the forecast, or no estimate), and that in words with what it rests on
    expected_start_at: float | None = None
    estimate: str | None = None
