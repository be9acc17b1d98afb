"""Job commands: list jobs and arrays, show one, follow its logs, explain and list its events
(``submit`` is in cli/submit.py, ``cancel`` and ``wait`` in cli/manage.py). Every command that
takes a job takes what ``/resolve`` takes: an id, a unique id prefix, a name, ``ARRAY:INDEX``;
those that take an array too say so."""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Annotated

import typer

from fairpool.cli import manage, spec
from fairpool.cli.common import JsonOpt, WideOpt
from fairpool.cli.common import client as _client
from fairpool.cli.lookup import counts, job_id, runtime, target, tasks_of
from fairpool.cli.output import (
    Cell,
    Col,
    emit_json,
    emit_value,
    fail,
    line,
    show,
    show_err,
    styled,
    table,
    when,
)
from fairpool.cli.output import call as _call
from fairpool.cli.submit import submit
from fairpool.client import Client, FairpoolError
from fairpool.client.handle import poll_delays
from fairpool.client.http import JOB_ID
from fairpool.domain.states import FINISHED_VALUES, PENDING_VALUES
from fairpool.schemas.arrays import ArrayOut
from fairpool.schemas.jobs import DependOut, JobOut

#: at 80 columns util, workers, submitted, name and runtime give way, in this order
JOB_COLUMNS = [Col("id", "id"), Col("name", "text", drop=2), Col("project", "id"),
               Col("state", "id"), Col("gpus", "num"), Col("workers", "num", drop=4),
               Col("submitted", "num", drop=3), Col("runtime", "num", drop=1),
               Col("gpu util", "text", drop=5), Col("reason", "wrap")]
TASK_COLUMNS = [Col("index", "num"), Col("id", "id"), Col("state", "id"),
                Col("runtime", "num", drop=1), Col("exit", "num", drop=2),
                Col("reason", "wrap")]
WORKER_COLUMNS = [Col("rank", "num"), Col("node", "id"), Col("devices", "id"),
                  Col("share", "num"), Col("phase", "id"), Col("exit", "num")]
EVENT_COLUMNS = [Col("time", "num"), Col("kind", "id"), Col("message", "wrap")]
DEP_COLUMNS = [Col("on", "id"), Col("needs", "id"), Col("now", "wrap")]
NEEDS = {"ok": "succeeded", "any": "finished", "failed": "failed"}
#: an array's tasks ``fairpool job ARRAY`` lists
SHOWN_TASKS = 100
#: states in which a job has no log to follow yet
NOT_STARTED = (*PENDING_VALUES, "admitted")


def register(app: typer.Typer) -> None:
    for command in (submit, jobs, job, logs, manage.cancel, explain, events, manage.wait):
        app.command()(command)
    spec.register(app)


def jobs(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    state: Annotated[str | None, typer.Option()] = None,
    user: Annotated[str | None, typer.Option(help="only jobs this user submitted")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="only jobs I submitted")] = False,
    tasks: Annotated[bool, typer.Option(
        "--tasks", help="list the tasks of arrays, not one line per array")] = False,
    array: Annotated[str | None, typer.Option(help="only this array's tasks")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List jobs, newest first; an array is one line with its tasks counted by state."""
    if mine and user:
        fail("give --mine or --user, not both", code=2)
    with _client() as c:
        if mine:
            user = _call(c.whoami).user
        arrays: list[ArrayOut] = []
        if array is not None:
            found = target(c, array)
            if found.kind != "array":
                fail(f"{array!r} is job {found.id}, not an array")
            items = _call(lambda: c.jobs(project, state, limit, user=user, array=found.id))
        else:
            items = _call(lambda: c.jobs(project, state, limit, user=user, tasks=tasks))
            if not tasks:
                arrays = [a for a in _call(lambda: c.arrays(project, user, limit))
                          if state is None or a.counts.get(state)]
    rows: list[tuple[float, JobOut | ArrayOut]] = [(j.submitted_at, j) for j in items]
    rows += [(a.submitted_at, a) for a in arrays]
    rows = sorted(rows, key=lambda r: -r[0])[:limit]
    if as_json:
        emit_value([{"kind": "job" if isinstance(r, JobOut) else "array",
                     **r.model_dump(mode="json")} for _, r in rows])
        return
    now = time.time()
    table("jobs", JOB_COLUMNS, [_job_row(r, now) if isinstance(r, JobOut) else _array_row(r)
                                for _, r in rows], wide=wide)


def _job_row(j: JobOut, now: float) -> list[Cell]:
    return [j.id, j.name, j.project, j.state, _job_gpus(j), str(j.workers),
            when(j.submitted_at), runtime(j, now), _util(j), j.reason or ""]


def _array_row(a: ArrayOut) -> list[Cell]:
    return [a.id, a.name, a.project, a.state, "", f"×{a.size}", when(a.submitted_at), "",
            "", counts(a)]


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


def job(ref: Annotated[str, typer.Argument(help="a job or an array")],
        as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Show one job with its dependencies, workers and events (or an array and its tasks)."""
    with _client() as c:
        kind, the_id = "job", ref
        if not JOB_ID.fullmatch(ref):
            found = target(c, ref)
            kind, the_id = found.kind, found.id
        if kind == "array":
            _show_array(c, _call(lambda: c.array(the_id)), as_json, wide)
            return
        try:
            item = c.job(the_id)
        except FairpoolError as exc:  # a full id may be an array's
            if exc.status != 404:
                fail(exc.message)
            _show_array(c, _call(lambda: c.array(the_id)), as_json, wide)
            return
        if as_json:
            emit_json(item)
            return
        evs = _call(lambda: c.events(item.id))
        deps = [[d.id + (" (array)" if d.array else ""), NEEDS.get(d.on, d.on),
                 _dep_now(c, d)] for d in item.depends]
    show(styled(item.id, "bold"), f" {item.name}  project {item.project}  state ",
         styled(item.state, "bold"), f"  attempt {item.attempt}",
         f"  exit {item.exit_code}" if item.exit_code is not None else "",
         f"  runtime {runtime(item)}" if item.started_at is not None else "")
    show(f"command: {shlex.join(item.command)}")
    if item.workdir:
        show(f"workdir: {item.workdir}")
    if item.array_id is not None:
        show(f"task {item.array_index} of array {item.array_id}")
    if item.params:
        show("params: ", " ".join(f"{k}={v}" for k, v in item.params.items()))
    if item.image is not None:
        show(f"image: {item.image}")
    for m in item.mounts:
        show(f"mount: {m.source} -> {m.target}", " (read-only)" if m.read_only else "")
    if item.reason:
        show(f"waiting: {item.reason}")
    if deps:
        table("dependencies" + (" (waiting)" if item.deps_waiting else " (met)"),
              DEP_COLUMNS, deps, wide=wide)
    if item.placement:
        table("workers", WORKER_COLUMNS, [
            [str(w.rank), w.node, ",".join(map(str, w.devices)), f"{w.share:g}", w.phase,
             "" if w.exit_code is None else str(w.exit_code)] for w in item.placement],
            wide=wide)
    table("events", EVENT_COLUMNS, [[when(e.at), e.kind, e.message] for e in evs], wide=wide)


def _dep_now(c: Client, d: DependOut) -> str:
    """How the job or array depended on stands now."""
    try:
        return counts(c.array(d.id)) if d.array else c.job(d.id).state
    except FairpoolError as exc:
        return f"unknown ({exc.message})"


def _show_array(c: Client, a: ArrayOut, as_json: bool, wide: bool) -> None:
    if as_json:
        emit_json(a)
        return
    tasks = tasks_of(c, a.id, limit=SHOWN_TASKS)
    show(styled(a.id, "bold"), f" {a.name}  project {a.project}  array of {a.size} "
         f"(indices {a.indices})  state ", styled(a.state, "bold"),
         "" if a.max_running is None else f"  at most {a.max_running} running")
    show(f"tasks: {counts(a)}")
    now = time.time()
    table("tasks", TASK_COLUMNS, [
        [str(t.array_index), t.id, t.state, runtime(t, now),
         "" if t.exit_code is None else str(t.exit_code), t.reason or ""] for t in tasks],
        wide=wide)
    if a.size > len(tasks):
        show(f"the first {len(tasks)} of {a.size} tasks: fairpool jobs --array {a.id} "
             f"--limit {a.size} lists them all")


def _until_started(c: Client, the_id: str) -> JobOut:
    """The job once it has started (or finished); while it waits, says so on stderr, once."""
    told = False
    for delay in poll_delays():
        now = c.job(the_id)
        if now.state not in NOT_STARTED:
            return now
        if not told:
            show_err(f"job {the_id} is waiting ({now.state}): "
                     f"{now.reason or 'not scheduled yet'}; following its log once it starts")
            told = True
        time.sleep(delay)
    raise AssertionError("unreachable")  # poll_delays never ends


def logs(
    ref: Annotated[str, typer.Argument(help="a job, or an array's task as ARRAY:INDEX")],
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    rank: Annotated[int, typer.Option()] = 0,
    attempt: Annotated[int | None, typer.Option(help="an earlier attempt (default: the last)")
                       ] = None,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="only the last N lines")
                    ] = None,
    offset: Annotated[int | None, typer.Option(help="start at this byte of the log")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many bytes")] = None,
) -> None:
    """Print a worker's output as it is streamed; -f follows it until the job ends (a job that
    waits is said to, on stderr, and followed once it starts; a requeued one, from its next
    attempt)."""
    live = follow and attempt is None
    with _client() as c:
        the_id = job_id(c, ref)
        try:
            while True:
                if live:
                    _until_started(c, the_id)
                for chunk in c.stream_logs(the_id, rank, attempt, tail=tail, offset=offset,
                                           limit=limit, follow=live):
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                if not live or c.job(the_id).state in FINISHED_VALUES:
                    break
                tail = offset = None  # requeued: its next attempt, from the start
        except FairpoolError as exc:
            fail(exc.message)
        except BrokenPipeError:  # the reader went away (`fairpool logs ID | head`): done
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None


def explain(ref: Annotated[str, typer.Argument(help="a job or an array")],
            as_json: JsonOpt = False) -> None:
    """Why a job waits (or what it is doing); for an array, its counts and why its first
    waiting task waits."""
    with _client() as c:
        found = target(c, ref)
        if found.kind == "job":
            item = _call(lambda: c.explain(found.id))
            if as_json:
                emit_json(item)
            else:
                show(f"{item.job_id} {item.state}: {item.reason}")
                if item.estimate:
                    show(item.estimate)
            return
        a = _call(lambda: c.array(found.id))
        waiting = next((t for s in PENDING_VALUES
                        for t in tasks_of(c, a.id, s, 1)), None)
        why = None if waiting is None else _call(lambda: c.explain(waiting.id))
    if as_json:
        emit_value({"array": a.model_dump(mode="json"),
                    "first_waiting": None if why is None else why.model_dump(mode="json")})
        return
    show(f"array {a.id} {a.name} {a.state}: {counts(a)}")
    if waiting is not None and why is not None:
        show(f"first waiting task {a.id}:{waiting.array_index} ({waiting.id}): {why.reason}")
        if why.estimate:
            show(why.estimate)


def events(ref: Annotated[str, typer.Argument(help="a job, or ARRAY:INDEX")],
           as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """What happened to a job, oldest first."""
    with _client() as c:
        the_id = job_id(c, ref)
        evs = _call(lambda: c.events(the_id))
    if as_json:
        emit_json(evs)
        return
    table(f"events of {the_id}", EVENT_COLUMNS, [[when(e.at), e.kind, e.message] for e in evs],
          wide=wide)
