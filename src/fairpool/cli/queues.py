"""CLI commands that list and delete queues: ``fairpool project list``, ``fairpool department
list``, ``fairpool project delete`` and ``fairpool department delete`` (the queue tree as a
whole is ``fairpool queues``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fairpool.cli.common import JsonOpt, WideOpt
from fairpool.cli.common import client as _client
from fairpool.cli.output import Col, call, emit_json, fail, gpus, show, table
from fairpool.client import Client
from fairpool.domain.words import plural
from fairpool.schemas.queues import QueueOut, ResourcesOut

#: at 80 columns the weight, limit and department columns give way, in this order
PROJECT_COLUMNS = [Col("name", "id"), Col("department", "id", drop=1), Col("quota", "num"),
                   Col("limit", "num", drop=2), Col("weight", "num", drop=3),
                   Col("order", "id", drop=4), Col("allocated", "num"),
                   Col("jobs run/wait", "num")]
DEPARTMENT_COLUMNS = [Col("name", "id"), Col("projects", "num"), Col("quota", "num"),
                      Col("limit", "num", drop=2), Col("weight", "num", drop=3),
                      Col("allocated", "num"), Col("jobs run/wait", "num")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="do not ask")]


def over_by(r: ResourcesOut) -> str:
    """An over-commitment in words: ``2 GPUs``, ``2 GPUs, 4 CPUs``."""
    parts = [plural(r.gpus, "GPU") if r.gpus else "", plural(r.cpus, "CPU") if r.cpus else "",
             f"{r.memory_mib} MiB" if r.memory_mib else ""]
    return ", ".join(p for p in parts if p)


def register(project_app: typer.Typer, department_app: typer.Typer) -> None:
    project_app.command(name="list")(project_list)
    project_app.command(name="delete")(project_delete)
    department_app.command(name="list")(department_list)
    department_app.command(name="delete")(department_delete)


def _numbers(q: QueueOut) -> list[str]:
    return [gpus(q.quota.gpus), gpus(q.limit.gpus) if q.limit else "∞",
            str(q.over_quota_weight)]


def project_list(
    department: Annotated[str | None, typer.Option(
        "--department", "-d", help="only this department's projects")] = None,
    as_json: JsonOpt = False, wide: WideOpt = False,
) -> None:
    """Projects you can see, with quota, limit, weight, what they hold and their jobs."""
    with _client() as c:
        items = call(c.queues)
    projects = [q for q in items if q.kind == "project"
                and (department is None or q.parent == department)]
    if department is not None and not projects and not any(
            q.name == department and q.kind == "department" for q in items):
        fail(f"no department {department} among the queues you can see "
             "(`fairpool department list` shows them)")
    if as_json:
        emit_json(projects)
        return
    table("projects (GPUs)", PROJECT_COLUMNS, [
        [q.name, q.parent or "", *_numbers(q), q.job_order or "default",
         gpus(q.allocated.gpus), f"{q.running_jobs}/{q.pending_jobs}"] for q in projects],
          wide=wide)


def department_list(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Departments you can see, with how many projects, quota, limit, weight and jobs."""
    with _client() as c:
        items = call(c.queues)
    departments = [q for q in items if q.kind == "department"]
    if as_json:
        emit_json(departments)
        return
    table("departments (GPUs)", DEPARTMENT_COLUMNS, [
        [q.name, str(sum(1 for p in items if p.parent == q.name)), *_numbers(q),
         gpus(q.allocated.gpus), f"{q.running_jobs}/{q.pending_jobs}"]
        for q in departments], wide=wide)
    for q in departments:
        if q.over_committed is not None:
            show(f"department {q.name} is over-committed by {over_by(q.over_committed)}: its "
                 "projects' quotas add up to more than its own")


def _delete(c: Client, kind: str, name: str, yes: bool) -> None:
    """Delete queue ``name`` of ``kind`` once asked (unless ``yes``); the server refuses a
    project with live jobs and a department with projects."""
    found = next((q for q in call(c.queues) if q.name == name), None)
    if found is None:
        fail(f"{kind} {name} does not exist")
    if found.kind != kind:
        fail(f"{name} is a {found.kind}, not a {kind}; use `fairpool {found.kind} delete "
             f"{name}`")
    if not yes:
        if not sys.stdin.isatty():
            fail(f"not deleting {kind} {name} without asking, and there is no terminal to ask "
                 "on: add --yes")
        if not typer.confirm(f"delete {kind} {name}?", default=False):
            fail("nothing deleted")
    call(lambda: c.delete_queue(name))


def project_delete(name: str, yes: Yes = False) -> None:
    """Delete a project that has no live job (cancel them first, or wait). Its finished jobs
    and usage history stay; its role bindings and secrets go; `fairpool project create NAME`
    makes it again."""
    with _client() as c:
        _delete(c, "project", name, yes)
    show(f"project {name} deleted; its finished jobs and usage history stay")


def department_delete(name: str, yes: Yes = False) -> None:
    """Delete a department that has no project left (delete them first). Its usage history
    stays; its role bindings go; `fairpool department create NAME` makes it again."""
    with _client() as c:
        _delete(c, "department", name, yes)
    show(f"department {name} deleted; its usage history stays")
