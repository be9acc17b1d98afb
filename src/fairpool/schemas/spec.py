"""The job spec file: a submission as people write it in YAML (``fairpool submit -f job.yaml``),
nested and named for reading (``resources.gpus``, ``retries``, ``max_runtime: 2h``,
``array: 0-99%10``, ``sweep: {lr: [1e-3, 1e-4]}``), and its conversion to the wire's
``JobSubmit`` or ``ArraySubmit``.

Every problem is reported at its path in the file (``resources.gpus: Input should be greater
than or equal to 0``), the wire model's own checks included: their field names are mapped back
to the file's (``max_retries`` → ``retries``). docs/job-spec.md documents each field;
docs/job-spec.schema.json is ``spec_schema()``, generated from this model.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, ValidationError, WithJsonSchema

from fairpool.schemas.arrays import MAX_ARRAY_TASKS, ArraySubmit
from fairpool.schemas.base import Input
from fairpool.schemas.jobs import MAX_DEPENDENCIES, MAX_MOUNTS, JobSubmit, MountSpec

SCHEMA_ID = "https://fairpool.dev/schemas/job-spec.schema.json"
#: spec paths of the wire's fields where the two differ
WIRE_PATHS = {"gpus": "resources.gpus", "gpu_fraction": "resources.gpu_fraction",
              "gpu_memory_mib": "resources.gpu_memory_mib", "cpus": "resources.cpus",
              "memory_mib": "resources.memory_mib", "max_retries": "retries",
              "max_runtime_s": "max_runtime", "min_runtime_s": "min_runtime",
              "client_key": "key", "indices": "array.indices",
              "max_running": "array.max_running", "params": "sweep"}
#: the ways of asking for GPUs: one given on the command line replaces the file's others
GPU_FORMS = ("gpus", "gpu_fraction", "gpu_memory_mib")
DEPENDENCY_KINDS = ("after", "after_any", "after_failed")
DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?"
                      r"(?:(\d+(?:\.\d+)?)s)?$")
DURATION_PATTERN = r"^(\d+(\.\d+)?d)?(\d+(\.\d+)?h)?(\d+(\.\d+)?m)?(\d+(\.\d+)?s)?$"


class SpecError(ValueError):
    """What is wrong with a spec: ``(path, message)`` pairs, the path as written in the file
    (``resources.gpus``, ``mounts[0].source``; "" for the spec as a whole)."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "; ".join(f"{path}: {msg}" if path else msg for path, msg in self.problems)


def _text(value: object) -> str:
    """A YAML scalar as the text a process sees: ``true``, ``4``, ``0.001``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a number a process can be given")
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError(f"give a string or a number, not {type(value).__name__}"
                     + (" (an empty value: write \"\" for empty text)" if value is None else ""))


def _texts(value: object) -> object:
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            try:
                out[k] = _text(v)
            except ValueError as exc:
                raise ValueError(f"{k}: {exc}") from None
        return out
    return value


def parse_duration(value: object) -> object:
    """Seconds: a number, or ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d``."""
    if isinstance(value, bool):
        raise ValueError("give seconds, or a duration such as 30m, 2h or 1h30m")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        m = DURATION.fullmatch(text)
        if text and m is not None and any(m.groups()):
            d, h, mins, s = (float(g) if g else 0.0 for g in m.groups())
            return d * 86400 + h * 3600 + mins * 60 + s
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a duration: give seconds, or e.g. 90s, 30m, "
                             f"2h, 1h30m, 1d") from None
    return value


def _command(value: object) -> object:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command as a shell would: {exc}") from None
    if isinstance(value, list):  # [sleep, 5]: YAML reads 5 as a number, the process gets "5"
        return [_text(a) if isinstance(a, int | float) else a for a in value]
    return value


def _mount(value: object) -> object:
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 2 or (len(parts) == 3 and parts[2] == "ro"):
            return {"source": parts[0], "target": parts[1], "read_only": len(parts) == 3}
        raise ValueError(f"{value!r}: write SRC:DST or SRC:DST:ro, or source/target/read_only")
    return value


def _refs(value: object) -> object:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        for i, ref in enumerate(value):
            if isinstance(ref, int | float) and not isinstance(ref, bool):
                raise ValueError(f"item {i}: {ref!r} was read as a number; quote job "
                                 f"references ('{ref}') so YAML keeps them as written")
    return value


def parse_array(text: str) -> tuple[str, int | None]:
    """``0-99%10`` → ("0-99", 10): Slurm's indices and its optional cap on running tasks."""
    indices, sep, cap = text.partition("%")
    if not sep:
        return indices, None
    if not cap.strip().isdigit():
        raise ValueError(f"array {text!r}: the cap after % must be a whole number (0-99%10)")
    return indices, int(cap)


def _array(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        indices, cap = parse_array(value)
        return {"indices": indices} | ({} if cap is None else {"max_running": cap})
    return value


def _sweep(value: object) -> object:
    """A grid (``{lr: [1e-3, 1e-4], bs: [32, 64]}``: every combination, the last name
    varying fastest) or a list of parameter sets, as one list of sets of text."""
    if isinstance(value, Mapping):
        names, choices = [], []
        for name, values in value.items():
            values = values if isinstance(values, list) else [values]
            if not values:
                raise ValueError(f"{name}: give at least one value")
            names.append(name)
            choices.append([_text(v) for v in values])
        size = math.prod(len(c) for c in choices)
        if size > MAX_ARRAY_TASKS:
            raise ValueError(f"the grid has {size} combinations; an array has at most "
                             f"{MAX_ARRAY_TASKS} tasks")
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]
    if isinstance(value, list):
        sets = []
        for i, one in enumerate(value):
            if not isinstance(one, Mapping):
                raise ValueError(f"item {i}: each parameter set is a mapping (lr: 0.1)")
            try:
                sets.append({k: _text(v) for k, v in one.items()})
            except ValueError as exc:
                raise ValueError(f"item {i}: {exc}") from None
        return sets
    return value


SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
Texts = Annotated[dict[str, str], BeforeValidator(_texts), WithJsonSchema(
    {"type": "object", "additionalProperties": SCALAR})]
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema({"anyOf": [
    {"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
    "description": "seconds, or a duration: 90s, 30m, 2h, 1h30m, 1d"})]
Refs = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                 BeforeValidator(_refs), Field(max_length=MAX_DEPENDENCIES), WithJsonSchema({
                     "anyOf": [{"type": "string"}, {"type": "array", "items": {
                         "type": "string"}, "maxItems": MAX_DEPENDENCIES}],
                     "description": "jobs or arrays: ids, unique id prefixes, names or "
                                    "ARRAY:INDEX"})]
MountItem = Annotated[MountSpec, BeforeValidator(_mount)]


class Resources(Input):
    """What each worker asks for; GPUs in one of three forms (whole, a share, memory)."""

    gpus: int | None = Field(None, ge=0, le=64, description="whole GPUs per worker")
    gpu_fraction: float | None = Field(None, gt=0, lt=1,
                                       description="a share of one GPU, e.g. 0.5")
    gpu_memory_mib: int | None = Field(None, gt=0, le=10_000_000,
                                       description="GPU memory in MiB (a share of a device)")
    cpus: float | None = Field(None, ge=0, le=4096, description="CPUs per worker")
    memory_mib: int | None = Field(None, ge=0, le=1 << 44, description="memory per worker, MiB")


class ArraySpec(Input):
    """One task per index; at most ``max_running`` of them hold resources at once."""

    indices: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)
                       ] = Field(description="as Slurm writes them: 0-99, 0-99:2, 1,3,5-7")
    max_running: int | None = Field(None, ge=1, le=MAX_ARRAY_TASKS,
                                    description="at most this many tasks run at once")


class JobSpec(Input):
    """A job, an array or a sweep, as written in a spec file."""

    project: str | None = Field(None, description="the project to charge (or -p)")
    name: str | None = Field(None, description="a name, to find it by (fairpool job NAME)")
    command: Annotated[list[str] | None, BeforeValidator(_command), WithJsonSchema({
        "anyOf": [{"type": "array", "items": {"type": "string"}, "minItems": 1},
                  {"type": "string"}],
        "description": "argv, or one string split as a shell would (no shell runs it)"})
    ] = None
    workdir: str | None = Field(None, description="where the workers start; relative: to "
                                                  "the spec file's folder")
    workers: int | None = Field(None, ge=1, le=4096, description="workers in the gang")
    resources: Resources = Field(default_factory=Resources)
    priority: str | None = Field(None, description="a priority class: train, build, "
                                                   "inference")
    preemptible: bool | None = Field(None, description="default: from the priority class")
    env: Texts | None = Field(None, description="environment variables of every worker")
    node_pool: str | None = Field(None, description="run only in this node pool")
    same_node: bool | None = Field(None, description="all workers on one node")
    labels: Texts | None = Field(None, description="run only on nodes that have all these "
                                                   "labels (a node selector)")
    image: str | None = Field(None, description="run every worker in this OCI image")
    mounts: list[MountItem] | None = Field(None, max_length=MAX_MOUNTS, description=(
        "host paths bound into the image: SRC:DST[:ro] or source/target/read_only"))
    retries: int | None = Field(None, ge=0, le=100, description="failed attempts to retry")
    max_runtime: Duration | None = None
    min_runtime: Duration | None = None
    array: Annotated[ArraySpec | None, BeforeValidator(_array)] = None
    sweep: Annotated[list[dict[str, str]] | None, BeforeValidator(_sweep), WithJsonSchema({
        "anyOf": [{"type": "object", "additionalProperties": {
            "anyOf": [SCALAR, {"type": "array", "items": SCALAR, "minItems": 1}]}},
            {"type": "array", "items": {"type": "object", "additionalProperties": SCALAR}}],
        "description": "a grid {name: [values]} (every combination) or a list of "
                       "parameter sets; each task gets its set as environment variables"})
    ] = None
    after: Refs | None = Field(None, description="start once these succeeded")
    after_any: Refs | None = Field(None, description="start once these finished")
    after_failed: Refs | None = Field(None, description="start once these failed")
    key: str | None = Field(None, description="idempotency key: a resubmit with the same "
                                              "key returns the same job")

    def is_array(self) -> bool:
        return self.array is not None or self.sweep is not None

    def wire_fields(self) -> dict[str, Any]:
        """The fields of the JobSubmit or ArraySubmit this spec is (dependencies still as
        written): only those the spec sets."""
        out: dict[str, Any] = {k: v for k, v in self.model_dump(exclude_none=True).items()
                               if k not in ("resources", "array", "sweep", "retries", "key",
                                            "max_runtime", "min_runtime", "mounts")}
        out.update(self.resources.model_dump(exclude_none=True))
        for name, wire in (("retries", "max_retries"), ("key", "client_key"),
                           ("max_runtime", "max_runtime_s"), ("min_runtime", "min_runtime_s")):
            if getattr(self, name) is not None:
                out[wire] = getattr(self, name)
        if self.mounts is not None:
            out["mounts"] = self.mounts
        if self.array is not None:
            out["indices"] = self.array.indices
            if self.array.max_running is not None:
                out["max_running"] = self.array.max_running
        if self.sweep is not None:
            out["params"] = self.sweep
        return out


def spec_path(loc: Sequence[int | str], wire: bool = False) -> str:
    """A pydantic location as the path in the file: ``mounts[0].source``; with ``wire``, the
    location is the wire model's and its field is mapped back (``max_retries`` → ``retries``)."""
    parts = list(loc)
    if wire and parts and isinstance(parts[0], str):
        parts[0] = WIRE_PATHS.get(parts[0], parts[0])
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _known(path: Sequence[int | str]) -> list[str]:
    models: dict[str, type[BaseModel]] = {"resources": Resources, "array": ArraySpec,
                                          "mounts": MountSpec}
    model = models.get(str(path[0]) if path else "", JobSpec)
    return list(model.model_fields)


def problems_of(exc: ValidationError, wire: bool = False) -> list[tuple[str, str]]:
    out = []
    for e in exc.errors():
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith(
            ("function-", "list[", "dict[")))]
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            parent = [p for p in loc[:-1] if not isinstance(p, int)]
            msg = f"unknown key (the keys here: {', '.join(_known(parent))})"
        out.append((spec_path(loc, wire), msg))
    return out


def parse_spec(data: object) -> JobSpec:
    """``data`` (a file's YAML, as loaded) as a JobSpec; SpecError naming each path."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError([("", f"a spec is a mapping of fields (project: …, command: …), "
                              f"not a {type(data).__name__}")])
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise SpecError([(str(k), "keys are names, not numbers") for k in bad])
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(problems_of(exc)) from None


def merge(file: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """The file's fields with those of the command line over them: ``resources``, ``env`` and
    ``labels`` key by key (a GPU form on the command line replaces the file's), the rest
    whole."""
    out = dict(file)
    for key, value in flags.items():
        base = out.get(key)
        if key in ("resources", "env", "labels") and isinstance(base, Mapping):
            merged = dict(base)
            if key == "resources" and any(f in value for f in GPU_FORMS):
                merged = {k: v for k, v in merged.items() if k not in GPU_FORMS}
            out[key] = {**merged, **value}
        else:
            out[key] = value
    return out


def to_request(spec: JobSpec, resolve: Callable[[str], str] | None = None,
               defaults: Mapping[str, Any] | None = None) -> JobSubmit:
    """The JobSubmit (an ArraySubmit for an array or sweep) of ``spec``, over ``defaults``
    (wire fields); ``resolve`` turns each dependency reference into an exact id (its
    ValueError is reported at the reference's path). SpecError naming each path."""
    fields = {**(defaults or {}), **spec.wire_fields()}
    found: list[tuple[str, str]] = []
    for kind in DEPENDENCY_KINDS:
        refs = fields.get(kind) or []
        if resolve is not None and refs:
            ids = []
            for i, ref in enumerate(refs):
                try:
                    ids.append(resolve(ref))
                except ValueError as exc:
                    found.append((f"{kind}[{i}]", str(exc)))
            fields[kind] = ids
    if found:
        raise SpecError(found)
    kind_of: type[JobSubmit] = ArraySubmit if spec.is_array() else JobSubmit
    try:
        return kind_of.model_validate(fields)
    except ValidationError as exc:
        raise SpecError(problems_of(exc, wire=True)) from None


def from_request(req: JobSubmit) -> dict[str, Any]:
    """A request as a spec file would write it (what ``--dry-run`` prints): the fields with a
    value, nested and named as in the file."""
    wire = req.model_dump(mode="json", exclude_none=True)
    out: dict[str, Any] = {}
    for key, value in wire.items():
        if value in ({}, []) or (key == "name" and value == ""):
            continue
        path = WIRE_PATHS.get(key, key)
        if path == "sweep":
            out["sweep"] = value
        elif "." in path:
            head, tail = path.split(".")
            out.setdefault(head, {})[tail] = value
        else:
            out[path] = value
    resources = out.get("resources", {})
    if resources.get("gpus") == 0 and any(f in resources for f in GPU_FORMS[1:]):
        del resources["gpus"]  # the form asked for is the other one
    return out


def spec_schema() -> dict[str, Any]:
    """The JSON Schema of spec files (docs/job-spec.schema.json)."""
    schema = JobSpec.model_json_schema()
    props = schema["properties"]
    # the short forms the validators take, beside the models pydantic writes out
    props["mounts"]["anyOf"][0]["items"] = {"anyOf": [
        {"$ref": "#/$defs/MountSpec"},
        {"type": "string", "pattern": r"^[^:]+:[^:]+(:ro)?$", "description": "SRC:DST[:ro]"}]}
    props["array"]["anyOf"].insert(1, {"type": "string", "description": (
        "indices and an optional cap on running tasks: 0-99%10")})
    props["array"]["description"] = "a job array: one task per index"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **schema}
