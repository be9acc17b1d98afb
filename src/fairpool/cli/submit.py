"""``fairpool submit``: a job, an array or a sweep, from flags and/or a spec file (``-f``; the
flags given override it), with its dependencies resolved to ids first; ``--dry-run`` checks it
against the pool as it is now and writes nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from fairpool.cli.common import JsonOpt
from fairpool.cli.common import client as _client
from fairpool.cli.common import validation as _validation
from fairpool.cli.output import call, emit_json, fail, plain, show, styled
from fairpool.cli.spec import load_spec_file, load_sweep_file
from fairpool.client import Client, FairpoolError
from fairpool.client.http import JOB_ID
from fairpool.domain.words import plural
from fairpool.schemas.arrays import ArraySubmit, DryRunOut
from fairpool.schemas.jobs import JobSubmit, parse_mount
from fairpool.schemas.spec import SpecError, from_request, merge, parse_spec, to_request

#: parameter sets a dry run prints before it only counts the rest
SHOWN_SETS = 10


def _pairs(flag: str, items: Sequence[str] | None) -> dict[str, str] | None:
    """``KEY=VALUE`` items as a mapping (None: the flag was not given)."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            fail(f"{flag} {item!r}: write it as KEY=VALUE")
        out[k] = v
    return out


def _mounts(items: Sequence[str] | None) -> list[dict[str, object]] | None:
    """``--mount SRC:DST[:ro]`` items, each checked as the spec's are (None: not given)."""
    if not items:
        return None
    out: list[dict[str, object]] = []
    for item in items:
        try:
            out.append(parse_mount(item).model_dump())
        except ValidationError as exc:
            fail(_validation(exc))
        except ValueError:
            fail("--mount takes SRC:DST or SRC:DST:ro")
    return out


def _grid(items: Sequence[str] | None) -> dict[str, list[str]] | None:
    """``--sweep lr=1e-3,1e-4 --sweep bs=32,64`` as the grid {lr: [...], bs: [...]}."""
    if not items:
        return None
    grid: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            fail(f"--sweep {item!r}: write it as NAME=VALUE1,VALUE2,…")
        if name in grid:
            fail(f"--sweep names {name} twice: give all its values in one NAME=V1,V2,…")
        grid[name] = values.split(",")
    return grid


class Flags:
    """The options given on the command line, at their places in a spec, and which option
    set each place (so that a problem with one names the option, not a path in a file)."""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.given: dict[str, str] = {}

    def put(self, path: str, value: object, flag: str) -> None:
        if value is None:
            return
        head, _, leaf = path.partition(".")
        if leaf:
            self.fields.setdefault(head, {})[leaf] = value
        else:
            self.fields[path] = value
        self.given[path] = flag

    def named(self, err: SpecError) -> str:
        """The problems, each at its option when one set it, else at its path in the file."""
        parts = []
        for path, msg in err.problems:
            flag = next((f for g, f in sorted(self.given.items(), key=lambda i: -len(i[0]))
                         if path == g or path.startswith((g + ".", g + "["))), None)
            where = flag or path
            parts.append(f"{where}: {msg}" if where else msg)
        return "; ".join(parts)


def _resolver(c: Client) -> Any:
    def resolve(ref: str) -> str:
        if JOB_ID.fullmatch(ref):
            return ref
        try:
            return c.resolve(ref).id
        except FairpoolError as exc:
            raise ValueError(exc.message) from None
    return resolve


def submit(
    command: Annotated[list[str] | None, typer.Argument(
        help="the command, after -- (or command: in the spec file)")] = None,
    file: Annotated[str | None, typer.Option(
        "--file", "-f", help="a job spec file (YAML, see docs/job-spec.md; - reads standard "
                             "input); the options given here override it")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", help="project to charge")
                       ] = None,
    gpus_: Annotated[int | None, typer.Option("--gpus", help="whole GPUs per worker")] = None,
    gpu_fraction: Annotated[float | None, typer.Option(help="share of one GPU")] = None,
    gpu_memory: Annotated[int | None, typer.Option(help="GPU memory in MiB")] = None,
    workers: Annotated[int | None, typer.Option(help="workers in the gang")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs per worker")] = None,
    memory: Annotated[int | None, typer.Option(help="memory per worker, MiB")] = None,
    priority: Annotated[str | None, typer.Option(help="train, build or inference")] = None,
    preemptible: Annotated[bool | None, typer.Option(
        "--preemptible/--no-preemptible", help="default: from the priority class")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    label: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE, repeatable: run only on nodes with these labels")] = None,
    name: Annotated[str | None, typer.Option(help="a name for the job")] = None,
    node_pool: Annotated[str | None, typer.Option(help="run only in this node pool")] = None,
    same_node: Annotated[bool | None, typer.Option(
        "--same-node/--no-same-node", help="all workers on one node")] = None,
    key: Annotated[str | None, typer.Option(help="idempotency key")] = None,
    max_retries: Annotated[int | None, typer.Option(
        "--max-retries", "--retries",
        help="retry a failed attempt this often (backoff doubles each time)")] = None,
    max_runtime: Annotated[str | None, typer.Option(
        help="stop the job after running this long: seconds, or 30m, 2h, 1h30m (default: "
             "the project's)")] = None,
    min_runtime: Annotated[str | None, typer.Option(
        help="not preempted before running this long (seconds, or 30m, 2h)")] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="directory the workers start in (default: this one)")] = None,
    image: Annotated[str | None, typer.Option(
        help="run every worker in this OCI image with podman")] = None,
    mount: Annotated[list[str] | None, typer.Option(
        help="SRC:DST[:ro], repeatable: bind a host path (under an allowed mount root) into "
             "the image")] = None,
    array: Annotated[str | None, typer.Option(
        help="a job array: task indices and an optional cap on how many run at once, as "
             "Slurm writes them: 0-999, 0-999:2, 1,3,5-7, 0-999%50")] = None,
    sweep: Annotated[list[str] | None, typer.Option(
        help="NAME=V1,V2,…, repeatable: one task per combination, each given its values as "
             "environment variables")] = None,
    sweep_file: Annotated[str | None, typer.Option(
        help="parameter sets, one task each: .jsonl, .csv, .json or .yaml")] = None,
    after: Annotated[list[str] | None, typer.Option(
        help="start once this job (or every task of this array) succeeded; repeatable")
                     ] = None,
    after_any: Annotated[list[str] | None, typer.Option(
        help="start once this job or array finished, however; repeatable")] = None,
    after_failed: Annotated[list[str] | None, typer.Option(
        help="start once this job failed (an array: once one of its tasks did not "
             "succeed); repeatable")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="print the request and whether and where it would start now; "
                          "submit nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job: fairpool submit -p vision --gpus 1 -- python train.py; an array or a
    sweep (--array, --sweep); or a spec file: fairpool submit -f job.yaml"""
    if sweep and sweep_file:
        fail("give --sweep or --sweep-file, not both", code=2)
    flags = Flags()
    for path, value, flag in (
            ("project", project, "--project"), ("name", name, "--name"),
            ("command", command or None, "the command"), ("workers", workers, "--workers"),
            ("resources.gpus", gpus_, "--gpus"),
            ("resources.gpu_fraction", gpu_fraction, "--gpu-fraction"),
            ("resources.gpu_memory_mib", gpu_memory, "--gpu-memory"),
            ("resources.cpus", cpus, "--cpus"), ("resources.memory_mib", memory, "--memory"),
            ("priority", priority, "--priority"), ("preemptible", preemptible, "--preemptible"),
            ("env", _pairs("--env", env), "--env"), ("labels", _pairs("--label", label),
                                                     "--label"),
            ("node_pool", node_pool, "--node-pool"), ("same_node", same_node, "--same-node"),
            ("key", key, "--key"), ("retries", max_retries, "--max-retries"),
            ("max_runtime", max_runtime, "--max-runtime"),
            ("min_runtime", min_runtime, "--min-runtime"),
            ("workdir", None if workdir is None else str(workdir.resolve()), "--workdir"),
            ("image", image, "--image"), ("mounts", _mounts(mount), "--mount"),
            ("array", array, "--array"), ("sweep", _grid(sweep), "--sweep"),
            ("sweep", None if sweep_file is None else load_sweep_file(sweep_file),
             "--sweep-file"),
            ("after", after or None, "--after"), ("after_any", after_any or None, "--after-any"),
            ("after_failed", after_failed or None, "--after-failed")):
        flags.put(path, value, flag)
    data: Any = {}
    base = Path.cwd()
    if file is not None:
        data, folder = load_spec_file(file)
        base = folder or base
    try:
        spec = parse_spec(merge(data, flags.fields) if isinstance(data, Mapping) else data)
    except SpecError as exc:
        fail(flags.named(exc))
    if spec.project is None:
        fail("give the project: -p PROJECT, or project: in the spec file", code=2)
    if not spec.command:
        fail("give the command after --, or command: in the spec file", code=2)
    spec.workdir = str((base / (spec.workdir or ".")).resolve())  # relative: to the file
    with _client() as c:
        try:
            req = to_request(spec, _resolver(c))
        except SpecError as exc:
            fail(flags.named(exc))
        if dry_run:
            checked = call(lambda: c.dry_run(req))
            if as_json:
                emit_json(checked)
            else:
                _show_dry_run(req, checked)
            return
        if isinstance(req, ArraySubmit):
            made = call(lambda: c.submit_array(req))
            if as_json:
                emit_json(made)
            else:
                show("submitted array ", styled(made.id, "bold"),
                     f" ({plural(made.size, 'task')}) to {made.project}")
            return
        job = call(lambda: c.submit(req))
    if as_json:
        emit_json(job)
    else:
        waits = (f"; it waits for {plural(len(job.depends), 'dependency', 'dependencies')}"
                 if job.deps_waiting else "")
        show("submitted ", styled(job.id, "bold"), f" to {job.project} ({job.state}){waits}")


def _show_dry_run(req: JobSubmit, out: DryRunOut) -> None:
    """The request as a spec file would write it (the server's defaults filled in), then
    whether and where it would start now and what its quota says."""
    shown = from_request(out.request)
    local = from_request(req)  # the server answers with a job's fields; an array's are ours
    for extra in ("array", "sweep"):
        if extra in local:
            shown[extra] = local[extra]
    sets = len(shown.get("sweep", []))
    if sets > SHOWN_SETS:
        shown["sweep"] = shown["sweep"][:SHOWN_SETS]
    plain(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True, width=1000).rstrip())
    if sets > SHOWN_SETS:
        plain(f"# … the first {SHOWN_SETS} of {sets} parameter sets")
    show("# dry run: nothing was submitted")
    if out.tasks != 1:
        show(f"tasks: {out.tasks}")
    show("fits now: ", styled("yes", "green") if out.fits else styled("no", "yellow"),
         f" (on {', '.join(out.nodes)})" if out.nodes else "")
    show(f"quota: {out.quota}")
    show(out.message)
