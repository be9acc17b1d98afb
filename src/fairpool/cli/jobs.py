"""Job commands: submit, list, show, follow logs, cancel and explain."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from fairpool.cli.common import JsonOpt
from fairpool.cli.common import client as _client
from fairpool.cli.common import validation as _validation
from fairpool.cli.output import Cell, emit_json, fail, line, show, styled, table, when
from fairpool.cli.output import call as _call
from fairpool.client import FairpoolError
from fairpool.schemas.jobs import JobOut, JobSubmit, MountSpec, parse_mount


def register(app: typer.Typer) -> None:
    for command in (submit, jobs, job, logs, cancel, explain):
        app.command()(command)



def submit(
    command: Annotated[list[str], typer.Argument(help="the command, after --")],
    project: Annotated[str, typer.Option("--project", "-p", help="project to charge")],
    gpus_: Annotated[int, typer.Option("--gpus", help="whole GPUs per worker")] = 0,
    gpu_fraction: Annotated[float | None, typer.Option(help="share of one GPU")] = None,
    gpu_memory: Annotated[int | None, typer.Option(help="GPU memory in MiB")] = None,
    workers: Annotated[int, typer.Option(help="workers in the gang")] = 1,
    cpus: Annotated[float, typer.Option(help="CPUs per worker")] = 0,
    memory: Annotated[int, typer.Option(help="memory per worker, MiB")] = 0,
    priority: Annotated[str, typer.Option(help="train, build or inference")] = "train",
    preemptible: Annotated[bool | None, typer.Option(
        "--preemptible/--no-preemptible", help="default: from the priority class")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable")] = None,
    name: Annotated[str, typer.Option(help="a name for the job")] = "",
    node_pool: Annotated[str | None, typer.Option(help="run only in this node pool")] = None,
    same_node: Annotated[bool, typer.Option(help="all workers on one node")] = False,
    key: Annotated[str | None, typer.Option(help="idempotency key")] = None,
    max_retries: Annotated[int, typer.Option(
        help="retry a failed attempt this often (backoff doubles each time)")] = 0,
    max_runtime: Annotated[float | None, typer.Option(
        help="stop the job after running this many seconds (default: the project's)")] = None,
    workdir: Annotated[Path | None, typer.Option(
        help="directory the workers start in (default: this one)")] = None,
    image: Annotated[str | None, typer.Option(
        help="run every worker in this OCI image with podman")] = None,
    mount: Annotated[list[str] | None, typer.Option(
        help="SRC:DST[:ro], repeatable: bind a host path (under an allowed mount root) into "
             "the image")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job: fairpool submit -p vision --gpus 1 -- python train.py"""
    env_map: dict[str, str] = {}
    for item in env or []:
        k, sep, v = item.partition("=")
        if not sep:
            fail(f"--env {item!r}: write it as KEY=VALUE")
        env_map[k] = v
    mounts: list[MountSpec] = []
    for item in mount or []:
        try:
            mounts.append(parse_mount(item))
        except ValidationError as exc:
            fail(_validation(exc))
        except ValueError:
            fail("--mount takes SRC:DST or SRC:DST:ro")
    try:
        spec = JobSubmit(project=project, command=command, gpus=gpus_,
                         gpu_fraction=gpu_fraction, gpu_memory_mib=gpu_memory, workers=workers,
                         cpus=cpus, memory_mib=memory, priority=priority,
                         preemptible=preemptible, env=env_map, name=name, node_pool=node_pool,
                         same_node=same_node, client_key=key, max_retries=max_retries,
                         max_runtime_s=max_runtime, image=image, mounts=mounts,
                         workdir=str((workdir or Path.cwd()).resolve()))
    except ValidationError as exc:
        fail(_validation(exc))
    with _client() as c:
        job = _call(lambda: c.submit(spec))
    if as_json:
        emit_json(job)
    else:
        show("submitted ", styled(job.id, "bold"), f" to {job.project} ({job.state})")



def jobs(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    state: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    with _client() as c:
        items = _call(lambda: c.jobs(project, state, limit))
    if as_json:
        emit_json(items)
        return
    table("jobs", ["id", "project", "state", "gpus", "workers", "submitted", "gpu util",
                   "reason"], [
        [j.id, j.project, j.state, _job_gpus(j), str(j.workers), when(j.submitted_at),
         _util(j), (j.reason or "")[:80]] for j in items])


def _util(j: JobOut) -> Cell:
    """The last utilisation reading, marked sim(ulated), and IDLE when the policy flagged it."""
    if j.gpu_util is None:
        return ""
    text = f"{j.gpu_util:.0%}" + (" sim" if j.util_simulated else "")
    if j.idle:
        since = "" if j.idle_since is None else f" {(time.time() - j.idle_since) / 60:.0f}m"
        return line(styled(f"IDLE{since}", "bold yellow"), f" {text}")
    return text


def _job_gpus(j: JobOut) -> str:
    if j.gpus:
        return str(j.gpus)
    if j.gpu_fraction is not None:
        return f"{j.gpu_fraction:g}"
    if j.gpu_memory_mib is not None:
        return f"{j.gpu_memory_mib}MiB"
    return "0"



def job(job_id: str, as_json: JsonOpt = False) -> None:
    """Show one job with its workers and events."""
    with _client() as c:
        item = _call(lambda: c.job(job_id))
        evs = _call(lambda: c.events(job_id))
    if as_json:
        emit_json(item)
        return
    show(styled(item.id, "bold"), f" {item.name}  project {item.project}  state ",
         styled(item.state, "bold"), f"  attempt {item.attempt}",
         f"  exit {item.exit_code}" if item.exit_code is not None else "")
    show(f"command: {' '.join(item.command)}")
    if item.image is not None:
        show(f"image: {item.image}")
    for m in item.mounts:
        show(f"mount: {m.source} -> {m.target}", " (read-only)" if m.read_only else "")
    if item.reason:
        show(f"waiting: {item.reason}")
    if item.placement:
        table("workers", ["rank", "node", "devices", "share", "phase", "exit"], [
            [str(w.rank), w.node, ",".join(map(str, w.devices)), f"{w.share:g}", w.phase,
             "" if w.exit_code is None else str(w.exit_code)] for w in item.placement])
    table("events", ["time", "kind", "message"],
          [[when(e.at), e.kind, e.message] for e in evs])



def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    rank: Annotated[int, typer.Option()] = 0,
    attempt: Annotated[int | None, typer.Option(help="an earlier attempt (default: the last)")
                       ] = None,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="only the last N lines")
                    ] = None,
    offset: Annotated[int | None, typer.Option(help="start at this byte of the log")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many bytes")] = None,
) -> None:
    """Print a worker's output as it is streamed; -f follows it until the job ends."""
    with _client() as c:
        chunks = c.stream_logs(job_id, rank, attempt, tail=tail, offset=offset, limit=limit,
                               follow=follow and attempt is None)
        try:
            for chunk in chunks:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        except FairpoolError as exc:
            fail(exc.message)
        except BrokenPipeError:  # the reader went away (`fairpool logs ID | head`): done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None



def cancel(job_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a job (its workers get SIGTERM, then SIGKILL after the grace period)."""
    with _client() as c:
        item = _call(lambda: c.cancel(job_id))
    if as_json:
        emit_json(item)
    else:
        show(f"{item.id}: {item.state}")  # stopping: its workers are being stopped



def explain(job_id: str, as_json: JsonOpt = False) -> None:
    """Why a job waits (or what it is doing)."""
    with _client() as c:
        item = _call(lambda: c.explain(job_id))
    if as_json:
        emit_json(item)
    else:
        show(f"{item.job_id} {item.state}: {item.reason}")

