"""Request and response models of job arrays and sweeps, of cancelling many jobs at once, of
resolving what a person typed (an id prefix, a name, ``ARRAY:INDEX``) to a job, and of a dry
run of a submission."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from fairpool.schemas.base import Input
from fairpool.schemas.jobs import ENV_KEY, JobRef, JobSubmit

#: the most tasks one array may have
MAX_ARRAY_TASKS = 100_000
#: the largest index an array may use
MAX_ARRAY_INDEX = 10_000_000
RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


def parse_indices(text: str) -> list[int]:
    """Slurm's form: ``0-999``, ``0-999:2`` (a step), ``1,3,5-7``; ascending, each once.
    ValueError with what to fix."""
    found: set[int] = set()
    for part in text.replace(" ", "").split(","):
        m = RANGE.fullmatch(part)
        if m is None:
            raise ValueError(f"array indices {text!r}: {part!r} is not N, N-M or N-M:STEP")
        start = int(m.group(1))
        stop = int(m.group(2)) if m.group(2) is not None else start
        step = int(m.group(3)) if m.group(3) is not None else 1
        if stop < start:
            raise ValueError(f"array indices {text!r}: {part!r} ends before it starts")
        if step < 1:
            raise ValueError(f"array indices {text!r}: the step of {part!r} must be ≥ 1")
        if stop > MAX_ARRAY_INDEX:
            raise ValueError(f"array indices {text!r}: indices go up to {MAX_ARRAY_INDEX}")
        if (stop - start) // step + 1 + len(found) > MAX_ARRAY_TASKS:
            raise ValueError(f"an array has at most {MAX_ARRAY_TASKS} tasks")
        found.update(range(start, stop + 1, step))
    return sorted(found)


ParamValue = Annotated[str, StringConstraints(max_length=4096)]


class ArraySubmit(JobSubmit):
    """A job array: one task (a job) per index, or per set of sweep parameters; every task
    gets ``FAIRPOOL_ARRAY_ID``, ``FAIRPOOL_ARRAY_INDEX`` and its parameters in its
    environment. ``name`` and ``client_key`` belong to the array."""

    indices: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        None, description="task indices, as Slurm writes them: 0-999, 0-999:2, 1,3,5-7")
    max_running: int | None = Field(
        None, ge=1, le=MAX_ARRAY_TASKS,
        description="at most this many tasks hold resources at once (Slurm's %N)")
    params: list[dict[str, ParamValue]] | None = Field(
        None, min_length=1, max_length=MAX_ARRAY_TASKS,
        description="a sweep: one set of parameters per task (task i gets params[i]), "
                    "passed as environment variables")

    @field_validator("indices")
    @classmethod
    def _indices(cls, text: str | None) -> str | None:
        if text is not None:
            parse_indices(text)
        return text

    @field_validator("params")
    @classmethod
    def _params(cls, sets: list[dict[str, str]] | None) -> list[dict[str, str]] | None:
        for i, one in enumerate(sets or ()):
            if len(one) > 64:
                raise ValueError(f"parameter set {i} has more than 64 parameters")
            for key in one:
                if not ENV_KEY.fullmatch(key) or key.startswith("FAIRPOOL_"):
                    raise ValueError(f"parameter name {key!r} must be an environment variable "
                                     f"name (letters, digits, _) not starting FAIRPOOL_")
        return sets

    @model_validator(mode="after")
    def _tasks(self) -> ArraySubmit:
        if self.indices is None and self.params is None:
            raise ValueError("an array needs indices (e.g. 0-99) or sweep params")
        if (self.indices is not None and self.params is not None
                and len(parse_indices(self.indices)) != len(self.params)):
            raise ValueError("give as many indices as parameter sets (or leave the "
                                 "indices out: 0..N-1)")
        return self

    def index_list(self) -> list[int]:
        if self.indices is not None:
            return parse_indices(self.indices)
        return list(range(len(self.params or ())))


class ArrayOut(BaseModel):
    id: str
    name: str
    project: str
    size: int
    indices: str
    max_running: int | None
    submitted_at: float
    submitted_by: str | None
    #: tasks by state (only states some task is in)
    counts: dict[str, int]
    #: the array as one state: running while a task holds resources, queued while all
    #: wait, else finished: succeeded if every task did, failed if one failed, else cancelled
    state: str
    client_key: str | None = None


class BulkCancel(Input):
    """Which jobs to cancel: the listed ids, and/or every job matching all the filters given.
    Only jobs the caller may cancel are touched; ``dry_run`` says which would be."""

    ids: list[JobRef] = Field(default_factory=list, max_length=MAX_ARRAY_TASKS)
    project: Annotated[str, StringConstraints(max_length=63)] | None = None
    state: Annotated[str, StringConstraints(max_length=16)] | None = None
    array: JobRef | None = None
    user: Annotated[str, StringConstraints(max_length=253)] | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _something(self) -> BulkCancel:
        if not self.ids and self.project is None and self.array is None and self.user is None:
            raise ValueError("name jobs to cancel: ids, or a project, array or user filter "
                             "(a state alone would cancel everyone's jobs)")
        return self


class BulkCancelOut(BaseModel):
    matched: list[str]  # every job that matched and may be cancelled by the caller
    cancelled: list[str]  # of those, the ones this request cancelled (or would: dry run)
    finished: int  # matched but already finished
    refused: list[str] = Field(default_factory=list)  # listed ids the caller may not cancel
    dry_run: bool = False


class RefOut(BaseModel):
    """What a reference resolved to."""

    kind: Literal["job", "array"]
    id: str
    project: str
    name: str


class DryRunOut(BaseModel):
    """A submission checked against the pool as it is now, nothing written."""

    request: JobSubmit  # with the server's defaults filled in
    tasks: int  # 1, or the tasks of an array
    fits: bool  # one worker fits some node's free resources now
    nodes: list[str]  # nodes where a worker fits now
    quota: str  # what the project's quota and limit say about it
    message: str
