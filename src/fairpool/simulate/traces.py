"""Load GPU-cluster job traces from CSV into a :class:`~.records.Trace` for the simulator.

The format is detected from the CSV header (see ``/work/shared/traces/README.md`` for the public
files); any column order is accepted and extra columns are ignored:

* **generic**: ``job_id, submit_time, duration, num_gpus, project`` and optionally ``department,
  workers, priority``. ``submit_time`` and ``duration`` are seconds; ``num_gpus`` below 1 is a
  fraction of one shared GPU, from 1 up it must be a whole number.
* **philly.csv** (``timestamp, duration, num_gpus, gpu_time, cluster``): the naive timestamps are
  read as UTC; ``job_id`` is the 0-based data row; the project is ``vc-<cluster>``.
* **Pollux workloads** (``name, time, application, num_replicas, batch_size``): ``num_replicas``
  is the GPU request and the project is the application. These files carry no duration, so one
  is ASSUMED, not measured: each application gets an amount of work in GPU-hours
  (:data:`POLLUX_GPU_HOURS`: ncf 0.25, cifar10 0.5, bert 2, deepspeech2 3, yolov3 30, imagenet
  250), inside the GPU-time class Pollux's generator (``simulator/workload.py``) drew that
  application from (<1, 1-10, 10-100 and 100-1000 GPU-hours). A job's duration is that work
  divided by its ``num_replicas`` (perfect scaling), so the tuned and realistic variants of a
  workload carry the same work. Results are not comparable with Pollux's published JCTs.
* **ElasticFlow / ITP** (``cluster*.csv`` with ``submission_time``, ``philly_103959.csv`` with
  ``submit_time``; both with ``job_id, num_gpu, duration``): the project is the file stem.

All formats: submit times are shifted so that the earliest job is at 0; jobs are sorted by
``(submit_s, job_id)`` and ``limit`` keeps the first N. A job of G GPUs with G above
``gpus_per_node`` and no ``workers`` column value is split into k = ceil(G / gpus_per_node)
workers of G / k GPUs when k divides G, else into G workers of 1 GPU; every other job (fractions
included) has 1 worker. Bad rows raise ValueError naming the file and line.

Quotas (guaranteed GPUs per project):

* By default each project's quota is its share of the loaded jobs' GPU-hours (duration × GPUs)
  times the cluster's ``gpus``, in whole GPUs by the largest-remainder method (floors first, then
  one more GPU to the largest remainders, ties to the project name in order), so they sum to
  exactly ``gpus``. If every job has duration 0, the projects share ``gpus`` equally that way.
* A ``quota_file`` (YAML) overrides that::

      scale_from_gpus: 2816     # optional: quotas are for a cluster of this size; each is scaled
                                # to `gpus` and rounded down to whole GPUs
      projects:
        vc-6214e9: {quota: 512, department: prod}
        vc-b436b2: {quota: 512}
      default_quota: 0          # optional: for trace projects not listed (scaled the same way)

  Unknown keys, negative or non-numeric quotas and non-string names raise ValueError naming the
  file and key; listed projects absent from the trace are ignored. Quotas may sum above ``gpus``
  (a note then says so).

Departments: the quota file's ``department`` if given, else the ``department`` column (one per
project), else ``default``. A department's quota is the sum of its projects'.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from fairpool.domain.priority import DEFAULT_PRIORITY_CLASSES
from fairpool.simulate.records import Trace, TraceJob

__all__ = ["GENERIC_COLUMNS", "POLLUX_GPU_HOURS", "default_workers", "load_trace",
           "proportional_quotas"]

GENERIC_COLUMNS: tuple[str, ...] = ("job_id", "submit_time", "duration", "num_gpus", "project")
GENERIC_OPTIONAL: tuple[str, ...] = ("department", "workers", "priority")
DEFAULT_DEPARTMENT = "default"

# Assumed work per Pollux application, in GPU-hours (see the module docstring): NOT measurements.
POLLUX_GPU_HOURS: dict[str, float] = {
    "ncf": 0.25,
    "cifar10": 0.5,
    "bert": 2.0,
    "deepspeech2": 3.0,
    "yolov3": 30.0,
    "imagenet": 250.0,
}

_PHILLY = frozenset({"timestamp", "duration", "num_gpus", "cluster"})
_POLLUX = frozenset({"name", "time", "application", "num_replicas"})
_ELASTICFLOW = frozenset({"job_id", "num_gpu", "duration"})
_QUOTA_FILE_KEYS = frozenset({"scale_from_gpus", "projects", "default_quota"})
_QUOTA_PROJECT_KEYS = frozenset({"quota", "department"})

_Row = dict[str | Any, str | Any]
_Rows = Iterator[tuple[int, _Row]]  # (line number, row)
_Parsed = Iterator[tuple[str, TraceJob]]  # ("file:line", job)


def load_trace(
    path: str | Path,
    *,
    gpus: int,
    quota_file: str | Path | None = None,
    limit: int | None = None,
    gpus_per_node: int = 8,
) -> Trace:
    """Read the trace at ``path`` for a cluster of ``gpus`` GPUs (see the module docstring)."""
    path = Path(path)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise ValueError(f"gpus must be a positive integer, got {gpus!r}")
    if isinstance(gpus_per_node, bool) or not isinstance(gpus_per_node, int) or gpus_per_node < 1:
        raise ValueError(f"gpus_per_node must be a positive integer, got {gpus_per_node!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")

    jobs, notes = _read_jobs(path, gpus_per_node)
    if not jobs:
        raise ValueError(f"{path}: the trace has no jobs")
    jobs.sort(key=lambda j: (j.submit_s, j.job_id))
    t0 = jobs[0].submit_s
    if limit is not None:
        jobs = jobs[:limit]
    if t0 != 0.0:
        jobs = [dataclasses.replace(j, submit_s=j.submit_s - t0) for j in jobs]

    departments: dict[str, str] = {}
    for job in jobs:
        departments.setdefault(job.project, job.department)
    if quota_file is None:
        quotas = proportional_quotas(jobs, gpus)
        notes.append(
            f"quotas: each project's share of the jobs' GPU-hours times {gpus} GPUs, "
            "in whole GPUs by the largest-remainder method"
        )
    else:
        quotas = _quotas_from_file(Path(quota_file), departments, gpus, notes)
        jobs = [
            j if j.department == departments[j.project]
            else dataclasses.replace(j, department=departments[j.project])
            for j in jobs
        ]
    department_quotas: dict[str, float] = {}
    for project in sorted(quotas):
        dept = departments[project]
        department_quotas[dept] = department_quotas.get(dept, 0.0) + quotas[project]
    return Trace(
        name=path.stem,
        jobs=tuple(jobs),
        quotas=quotas,
        departments=departments,
        department_quotas=department_quotas,
        notes=tuple(notes),
    )


# --- reading rows -----------------------------------------------------------------------------


def _read_jobs(path: Path, gpus_per_node: int) -> tuple[list[TraceJob], list[str]]:
    try:
        return _read_jobs_csv(path, gpus_per_node)
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise ValueError(f"{path}: not a readable CSV file: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text: {exc.reason}") from None


def _read_jobs_csv(path: Path, gpus_per_node: int) -> tuple[list[TraceJob], list[str]]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty file, expected a CSV header with the generic "
                             f"columns {', '.join(GENERIC_COLUMNS)}")
        reader.fieldnames = [name.strip() for name in reader.fieldnames]
        fields = set(reader.fieldnames)
        rows = _rows(reader)
        parse: Callable[[_Rows, Path, int], _Parsed]
        notes: list[str] = []
        if fields >= set(GENERIC_COLUMNS):
            parse = _parse_generic
        elif fields >= _PHILLY:
            parse = _parse_philly
            notes += ["philly.csv: timestamps read as UTC; project = vc-<cluster>; "
                     "job_id = 0-based data row"]
        elif fields >= _POLLUX:
            parse = _parse_pollux
            hours = ", ".join(f"{app} {h:g}" for app, h in POLLUX_GPU_HOURS.items())
            notes += [f"Pollux workload: durations are ASSUMED, not measured: GPU-hours per "
                     f"application ({hours}) divided by num_replicas (perfect scaling); "
                     "project = application"]
        elif fields >= _ELASTICFLOW and ({"submission_time", "submit_time"} & fields):
            parse = _parse_elasticflow
            notes += [f"ElasticFlow/ITP trace: no tenant column, project = file stem "
                     f"{path.stem!r}; the ElasticFlow simulator itself runs jobs by iterations, "
                     "here `duration` is the run time"]
        else:
            raise ValueError(
                f"{path}: unrecognised trace header {reader.fieldnames}; expected the generic "
                f"columns {', '.join(GENERIC_COLUMNS)} (optional: {', '.join(GENERIC_OPTIONAL)}), "
                "or a philly.csv, Pollux workload or ElasticFlow/ITP header"
            )
        jobs: list[TraceJob] = []
        ids: set[str] = set()
        for where, job in parse(rows, path, gpus_per_node):
            if job.job_id in ids:
                raise ValueError(f"{where}: duplicate job_id {job.job_id!r}")
            ids.add(job.job_id)
            jobs.append(job)
    if any(j.workers > 1 for j in jobs):
        notes.append(f"jobs above {gpus_per_node} GPUs (one node) run as gangs of workers")
    return jobs, notes


def _rows(reader: csv.DictReader[str]) -> _Rows:
    """Data rows with the file line they end on."""
    for row in reader:
        yield reader.line_num, row


def _cell(row: _Row, column: str, where: str, *, required: bool = True) -> str:
    value = row.get(column)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise ValueError(f"{where}: missing {column}")
    return text


def _number(row: _Row, column: str, where: str) -> float:
    text = _cell(row, column, where)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: {column} {text!r} is not a finite number")
    return value


def _duration(row: _Row, column: str, where: str) -> float:
    value = _number(row, column, where)
    if value < 0:
        raise ValueError(f"{where}: negative {column} {value:g}")
    return value


def _gpu_count(row: _Row, column: str, where: str) -> float:
    value = _number(row, column, where)
    if value <= 0:
        raise ValueError(f"{where}: {column} must be above 0, got {value:g}")
    if value >= 1 and not value.is_integer():
        raise ValueError(f"{where}: {column} {value:g} is neither a whole number nor below 1")
    return value


def default_workers(gpus: float, gpus_per_node: int) -> int:
    """Workers of a job of ``gpus`` GPUs on nodes of ``gpus_per_node`` (the module docstring)."""
    if gpus <= gpus_per_node:
        return 1
    g = int(gpus)
    k = -(-g // gpus_per_node)
    return k if g % k == 0 else g


def _parse_generic(rows: _Rows, path: Path, gpn: int) -> _Parsed:
    dept_of: dict[str, str] = {}
    for line, row in rows:
        where = f"{path}:{line}"
        gpus = _gpu_count(row, "num_gpus", where)
        project = _cell(row, "project", where)
        department = _cell(row, "department", where, required=False) or DEFAULT_DEPARTMENT
        if dept_of.setdefault(project, department) != department:
            raise ValueError(f"{where}: project {project!r} in department {department!r}, "
                             f"but earlier rows put it in {dept_of[project]!r}")
        workers_text = _cell(row, "workers", where, required=False)
        if workers_text:
            try:
                workers = int(workers_text)
            except ValueError:
                raise ValueError(f"{where}: workers {workers_text!r} is not an integer") from None
            if workers < 1 or (workers > 1 and (gpus < 1 or gpus % workers)):
                raise ValueError(f"{where}: workers {workers} cannot split {gpus:g} GPUs evenly")
        else:
            workers = default_workers(gpus, gpn)
        priority = _cell(row, "priority", where, required=False) or "train"
        if priority not in DEFAULT_PRIORITY_CLASSES:
            raise ValueError(f"{where}: unknown priority {priority!r}; known: "
                             f"{', '.join(sorted(DEFAULT_PRIORITY_CLASSES))}")
        yield where, TraceJob(
            job_id=_cell(row, "job_id", where),
            submit_s=_number(row, "submit_time", where),
            duration_s=_duration(row, "duration", where),
            gpus=gpus,
            project=project,
            department=department,
            workers=workers,
            priority=priority,
        )


def _parse_philly(rows: _Rows, path: Path, gpn: int) -> _Parsed:
    for index, (line, row) in enumerate(rows):
        where = f"{path}:{line}"
        stamp = _cell(row, "timestamp", where)
        try:
            submit = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
        except ValueError:
            raise ValueError(f"{where}: timestamp {stamp!r} is not YYYY-MM-DD HH:MM:SS") from None
        gpus = _gpu_count(row, "num_gpus", where)
        yield where, TraceJob(
            job_id=str(index),
            submit_s=submit,
            duration_s=_duration(row, "duration", where),
            gpus=gpus,
            project="vc-" + _cell(row, "cluster", where),
            workers=default_workers(gpus, gpn),
        )


def _parse_pollux(rows: _Rows, path: Path, gpn: int) -> _Parsed:
    for line, row in rows:
        where = f"{path}:{line}"
        app = _cell(row, "application", where)
        if app not in POLLUX_GPU_HOURS:
            raise ValueError(f"{where}: unknown Pollux application {app!r}; known: "
                             f"{', '.join(POLLUX_GPU_HOURS)}")
        gpus = _gpu_count(row, "num_replicas", where)
        yield where, TraceJob(
            job_id=_cell(row, "name", where),
            submit_s=_number(row, "time", where),
            duration_s=POLLUX_GPU_HOURS[app] * 3600.0 / gpus,
            gpus=gpus,
            project=app,
            workers=default_workers(gpus, gpn),
        )


def _parse_elasticflow(rows: _Rows, path: Path, gpn: int) -> _Parsed:
    for line, row in rows:
        where = f"{path}:{line}"
        submit_col = "submission_time" if "submission_time" in row else "submit_time"
        gpus = _gpu_count(row, "num_gpu", where)
        yield where, TraceJob(
            job_id=_cell(row, "job_id", where),
            submit_s=_number(row, submit_col, where),
            duration_s=_duration(row, "duration", where),
            gpus=gpus,
            project=path.stem,
            workers=default_workers(gpus, gpn),
        )


# --- quotas -----------------------------------------------------------------------------------


def proportional_quotas(jobs: list[TraceJob], gpus: int) -> dict[str, float]:
    """Whole-GPU quotas proportional to GPU-hours, summing to ``gpus`` (largest remainder)."""
    weight: dict[str, float] = {}
    for job in jobs:
        weight[job.project] = weight.get(job.project, 0.0) + job.duration_s * job.gpus
    if sum(weight.values()) <= 0:
        weight = dict.fromkeys(weight, 1.0)
    exact = {p: Fraction(w) for p, w in weight.items()}
    total = sum(exact.values(), Fraction(0))
    shares = {p: w * gpus / total for p, w in exact.items()}
    floors = {p: math.floor(s) for p, s in shares.items()}
    left = gpus - sum(floors.values())
    by_remainder = sorted(shares, key=lambda p: (-(shares[p] - floors[p]), p))
    for project in by_remainder[:left]:
        floors[project] += 1
    return {p: float(floors[p]) for p in sorted(floors)}


def _quota_value(value: object, where: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: must be a non-negative number, got {value!r}")
    return Fraction(value)


def _quotas_from_file(
    path: Path, departments: dict[str, str], gpus: int, notes: list[str]
) -> dict[str, float]:
    """Quotas for the trace's projects from a YAML quota file; may update ``departments``."""
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping with keys {sorted(_QUOTA_FILE_KEYS)}")
    unknown = [str(k) for k in data if k not in _QUOTA_FILE_KEYS]
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_QUOTA_FILE_KEYS)}")

    scale_from = data.get("scale_from_gpus")
    if scale_from is not None and (
        isinstance(scale_from, bool) or not isinstance(scale_from, int) or scale_from < 1
    ):
        raise ValueError(f"{path}: scale_from_gpus: must be a positive integer, got {scale_from!r}")
    default = _quota_value(data.get("default_quota", 0), f"{path}: default_quota")
    projects = data.get("projects")
    if not isinstance(projects, Mapping):
        raise ValueError(f"{path}: projects: expected a mapping of project -> {{quota: N}}")

    listed: dict[str, Fraction] = {}
    for name, spec in projects.items():
        key = f"{path}: projects.{name}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"{key}: project names must be strings (quote them), got {name!r}")
        if not isinstance(spec, Mapping):
            raise ValueError(f"{key}: expected a mapping with keys {sorted(_QUOTA_PROJECT_KEYS)}")
        bad = [str(k) for k in spec if k not in _QUOTA_PROJECT_KEYS]
        if bad:
            raise ValueError(f"{key}: unknown key(s) {bad}; allowed: {sorted(_QUOTA_PROJECT_KEYS)}")
        if "quota" not in spec:
            raise ValueError(f"{key}.quota: missing")
        listed[name] = _quota_value(spec["quota"], f"{key}.quota")
        if "department" in spec:
            dept = spec["department"]
            if not isinstance(dept, str) or not dept:
                raise ValueError(f"{key}.department: must be a non-empty string, got {dept!r}")
            if name in departments:
                departments[name] = dept

    def scaled(q: Fraction) -> float:
        return float(math.floor(q * gpus / scale_from)) if scale_from is not None else float(q)

    quotas = {p: scaled(listed.get(p, default)) for p in sorted(departments)}
    source = f"quotas from {path.name}"
    if scale_from is not None:
        source += f", scaled from {scale_from} to {gpus} GPUs and rounded down"
    notes.append(source)
    total = sum(quotas.values())
    if total > gpus:
        notes.append(f"quotas sum to {total:g} GPUs, above the cluster's {gpus}")
    return quotas
