"""The ``fairpool`` command: start the pool, manage queues, submit and follow jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from fairpool.cli import access, jobs, reports, webhooks
from fairpool.cli import queues as queue_commands
from fairpool.cli.common import JsonOpt, WideOpt
from fairpool.cli.common import client as _client
from fairpool.cli.common import validation as _validation
from fairpool.cli.output import (
    Col,
    emit_json,
    fail,
    gpu_count,
    gpus,
    plain,
    run,
    show,
    show_err,
    table,
)
from fairpool.cli.output import call as _call
from fairpool.cli.simulate import simulate as simulate_command
from fairpool.client import FairpoolError
from fairpool.domain.queue import InQueueOrder
from fairpool.domain.words import plural
from fairpool.scheduler.snapshot import Strategy
from fairpool.schemas.nodes import NodeOut
from fairpool.schemas.queues import (
    LimitSpec,
    ProjectCreate,
    QueueCreate,
    QueueOut,
    QueueUpdate,
    ResourceSpec,
)

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="fairpool: share GPUs among teams with quotas and fair share.")
project_app = typer.Typer(no_args_is_help=True, help="Projects (leaf queues).")
department_app = typer.Typer(no_args_is_help=True, help="Departments (groups of projects).")
app.add_typer(project_app, name="project")
app.add_typer(department_app, name="department")
node_app = typer.Typer(no_args_is_help=True, help="Node operations (admins).")
app.add_typer(node_app, name="node")
app.command(name="simulate")(simulate_command)
access.register(app)
webhooks.register(app)
jobs.register(app)
reports.register(app, project_app)
queue_commands.register(project_app, department_app)



def _limit(gpus_: float | None, cpus: float | None, memory: int | None) -> LimitSpec | None:
    if gpus_ is None and cpus is None and memory is None:
        return None
    return LimitSpec(gpus=gpus_, cpus=cpus, memory_mib=memory)  # one left out: no limit on it


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="port of the REST API [default: 8765]")] = None,
    host: Annotated[str | None, typer.Option(
        help="address to listen on [default: 127.0.0.1]")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="database and logs")] = None,
    db: Annotated[str | None, typer.Option(
        help="database URL, e.g. postgresql+psycopg://user@host/db (default: SQLite)")] = None,
    simulate_gpus: Annotated[int | None, typer.Option(
        help="pretend this machine has N GPUs (shown as simulated)")] = None,
    nodes_file: Annotated[Path | None, typer.Option(
        help="TOML file describing several simulated nodes")] = None,
    grace: Annotated[float | None, typer.Option(
        help="seconds between SIGTERM and SIGKILL [default: 10]")] = None,
    strategy: Annotated[Strategy | None, typer.Option(
        help="placement strategy; fragmentation puts GPU fractions where they leave the most "
             "room for the jobs the pool sees [default: binpack]")] = None,
    job_order: Annotated[InQueueOrder | None, typer.Option(
        help="order of waiting jobs in projects that set none [default: priority]")] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="run workers on a Ray cluster: auto, host:port or ray://host:port")] = None,
    ray_gpu_resource: Annotated[str | None, typer.Option(
        help="the Ray resource counted as GPUs [default: GPU]")] = None,
    ray_token_file: Annotated[Path | None, typer.Option(
        help="file holding the Ray cluster's authentication token")] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        help="serve HTTPS with this certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="the certificate's key (PEM)")] = None,
    config: Annotated[Path | None, typer.Option(
        help="TOML file of settings (flags and FAIRPOOL_* variables win over it)")] = None,
    run_as: Annotated[str | None, typer.Option(
        help="the Unix account of jobs: auto, dynamic, user, project or server "
             "[default: auto: dynamic when root, else server]")] = None,
) -> None:
    """Start the pool: the REST API, and the scheduler with the local or Ray executor."""
    from fairpool.config import load_server_settings
    from fairpool.server import serve

    values: dict[str, object] = {}
    for key, value in (("port", port), ("host", host), ("grace_s", grace),
                       ("strategy", strategy), ("job_order", job_order),
                       ("data_dir", data_dir), ("db", db),
                       ("simulate_gpus", simulate_gpus), ("nodes_file", nodes_file),
                       ("ray_address", ray_address), ("ray_gpu_resource", ray_gpu_resource),
                       ("ray_token_file", ray_token_file), ("tls_cert", tls_cert),
                       ("tls_key", tls_key), ("run_as", run_as)):
        if value is not None:
            values[key] = value
    from sqlalchemy.exc import SQLAlchemyError

    try:
        settings = load_server_settings(values, config)
    except ValidationError as exc:
        fail(_validation(exc))
    except ValueError as exc:
        fail(str(exc))
    try:
        serve(settings, say=show_err)  # on stopping: which workers keep running (stderr)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        fail(f"cannot use the database {settings.database_url()}: {reason}")
    except ImportError as exc:
        extra = "ray" if (exc.name or "").startswith("ray") else "postgres"
        fail(f"the package {exc.name} is missing; install 'fairpool[{extra}]'")
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start: {exc}")


@app.command(name="recover-admin")
def recover_admin(
    data_dir: Annotated[Path | None, typer.Option(help="the pool's data directory")] = None,
    db: Annotated[str | None, typer.Option(help="the pool's database URL")] = None,
    config: Annotated[Path | None, typer.Option(help="the pool's TOML settings")] = None,
) -> None:
    """Lost the admin token? With direct access to the pool's database, make the configured
    admin user admin again and print a new token (valid one day) for it."""
    from sqlalchemy.exc import SQLAlchemyError

    from fairpool.config import load_server_settings
    from fairpool.services.tokens import recover_admin as recover
    from fairpool.store.db import Store

    values: dict[str, object] = {k: v for k, v in (("data_dir", data_dir), ("db", db))
                                 if v is not None}
    try:
        settings = load_server_settings(values, config)
        store = Store(settings.database_url())
        try:
            store.migrate()
            token = recover(store, settings.admin_user)
        finally:
            store.close()
    except ValidationError as exc:
        fail(_validation(exc))
    except (ValueError, SQLAlchemyError, OSError) as exc:
        fail(f"cannot use the pool's database: {str(exc).strip().splitlines()[0]}")
    plain(f"new token for {settings.admin_user} (admin), valid for one day:", stderr=True)
    plain(token)


@app.command()
def queues(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Departments and projects: quota, fair share, allocated, pending."""
    with _client() as c:
        items = _call(c.queues)
    if as_json:
        emit_json(items)
        return
    table("queues (GPUs)", QUEUE_COLUMNS, [
        [q.name if q.parent is None else f"  {q.name}", q.kind, gpus(q.quota.gpus),
         gpus(q.limit.gpus) if q.limit else "∞", str(q.over_quota_weight),
         "" if q.fair_share is None else gpus(q.fair_share.gpus), gpus(q.allocated.gpus),
         gpus(q.pending.gpus), f"{q.running_jobs}/{q.pending_jobs}"]
        for q in _tree_order(items)], wide=wide)
    for q in items:
        if q.over_committed is not None:
            show(f"department {q.name} is over-committed by "
                 f"{queue_commands.over_by(q.over_committed)}: its "
                 "projects' quotas add up to more than its own")


#: at 80 columns the weight, kind, limit and pending columns give way, in this order
QUEUE_COLUMNS = [Col("queue", "id"), Col("kind", "id", drop=3), Col("quota", "num"),
                 Col("limit", "num", drop=2), Col("weight", "num", drop=4),
                 Col("fair share", "num"), Col("allocated", "num"),
                 Col("pending", "num", drop=1), Col("jobs run/wait", "num")]
#: device rows of ``fairpool nodes``; status (with a cordon's reason) and holders wrap; the
#: isolation (also told below the table when it lacks something), model and pool give way
NODE_COLUMNS = [Col("node", "id"), Col("pool", "id", drop=1), Col("status", "wrap"),
                Col("isolation", "text", drop=3), Col("gpu", "num"),
                Col("model", "text", drop=2), Col("used", "num"), Col("held by", "wrap")]


def _tree_order(items: list[QueueOut]) -> list[QueueOut]:
    depts = [q for q in items if q.parent is None]
    out: list[QueueOut] = []
    for d in depts:
        out.append(d)
        out.extend(q for q in items if q.parent == d.name)
    # projects whose department the caller may not see
    out.extend(q for q in items if q not in out)
    return out


@app.command()
def nodes(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Nodes and devices, with who holds what."""
    with _client() as c:
        items = _call(c.nodes)
    if as_json:
        emit_json(items)
        return
    rows = []
    for n in items:
        status = ("ready" if n.ready and not n.cordoned else (
            f"cordoned ({n.cordon_reason})" if n.cordoned and n.cordon_reason else
            "cordoned" if n.cordoned else "not ready"))
        isolation = _isolation(n)
        for d in n.devices or []:
            rows.append([n.name, n.pool, status, isolation, f"{d.index}",
                         d.model + (" (simulated)" if n.simulated else ""),
                         f"{d.used:g}", ", ".join(map(_holder, d.holders))])
        if not n.devices:
            rows.append([n.name, n.pool, status, isolation, "-", "no GPUs", "", ""])
    table("nodes", NODE_COLUMNS, rows, wide=wide)
    for n in items:  # what a node cannot enforce, below the table
        iso = n.isolation
        if iso is not None and iso.level == "none":
            show(f"{n.name}: jobs run as the server's own account (run_as={iso.run_as}) and "
                 "are NOT isolated from one another")
        elif iso is not None and iso.missing:
            show(f"{n.name}: isolation {iso.level}; missing: ", "; ".join(iso.missing))


def _holder(holder: str) -> str:
    """``project/job`` as ``job (project)``: the job id a word of its own, whole on its line."""
    project, slash, job_id = holder.partition("/")
    return f"{job_id} ({project})" if slash else holder


def _isolation(n: NodeOut) -> str:
    """``full``, ``partial`` or ``none``, and the account jobs run as."""
    iso = n.isolation
    if iso is None:
        return "unknown"
    return f"{iso.level}, run as {iso.run_as}"


def _queue_spec(name: str, qg: float, qc: float, qm: int, lg: float | None, lc: float | None,
                lm: int | None, weight: int, priority: int, over: bool) -> dict[str, Any]:
    return {"name": name, "quota": ResourceSpec(gpus=qg, cpus=qc, memory_mib=qm),
            "limit": _limit(lg, lc, lm), "over_quota_weight": weight, "priority": priority,
            "over_commit": over}


QuotaG = Annotated[float, typer.Option("--quota-gpus", help="guaranteed GPUs")]
QuotaC = Annotated[float, typer.Option("--quota-cpus", help="guaranteed CPUs")]
QuotaM = Annotated[int, typer.Option("--quota-memory", help="guaranteed memory, MiB")]
LimG = Annotated[float | None, typer.Option("--limit-gpus", help="hard cap on GPUs")]
LimC = Annotated[float | None, typer.Option("--limit-cpus", help="hard cap on CPUs")]
LimM = Annotated[int | None, typer.Option("--limit-memory", help="hard cap, MiB")]
Weight = Annotated[int, typer.Option("--weight", help="share of idle GPUs beyond quota")]
Prio = Annotated[int, typer.Option("--priority", help="higher gets surplus first")]
OverCommit = Annotated[bool, typer.Option(
    "--over-commit", help="accept quotas that add up to more than the department (or the "
                          "pool) has; views then say by how much")]


@department_app.command("create")
def department_create(name: str, quota_gpus: QuotaG = 0, quota_cpus: QuotaC = 0,
                      quota_memory: QuotaM = 0, limit_gpus: LimG = None, limit_cpus: LimC = None,
                      limit_memory: LimM = None, weight: Weight = 1, priority: Prio = 0,
                      over_commit: OverCommit = False) -> None:
    """Create a department."""
    try:
        spec = QueueCreate(**_queue_spec(name, quota_gpus, quota_cpus, quota_memory,
                                         limit_gpus, limit_cpus, limit_memory, weight, priority,
                                         over_commit))
    except ValidationError as exc:
        fail(_validation(exc))
    with _client() as c:
        q = _call(lambda: c.create_department(spec))
    show(f"department {q.name} created (quota {gpu_count(q.quota.gpus)})")


@project_app.command("create")
def project_create(name: str,
                   department: Annotated[str, typer.Option("--department", "-d")],
                   quota_gpus: QuotaG = 0, quota_cpus: QuotaC = 0, quota_memory: QuotaM = 0,
                   limit_gpus: LimG = None, limit_cpus: LimC = None, limit_memory: LimM = None,
                   weight: Weight = 1, priority: Prio = 0, over_commit: OverCommit = False,
                   order: Annotated[InQueueOrder | None, typer.Option(
                       "--order", help="order of its waiting jobs: fifo, priority or attained "
                                       "[default: the pool's]")] = None) -> None:
    """Create a project in a department."""
    try:
        job_order = None if order is None else order.value
        spec = ProjectCreate(department=department, job_order=job_order, **_queue_spec(
            name, quota_gpus, quota_cpus, quota_memory, limit_gpus, limit_cpus, limit_memory,
            weight, priority, over_commit))
    except ValidationError as exc:
        fail(_validation(exc))
    with _client() as c:
        q = _call(lambda: c.create_project(spec))
    show(f"project {q.name} created in {q.parent} (quota {gpu_count(q.quota.gpus)})")


def _renamed(old: str, old_value: T | None, new: str, value: T | None) -> T | None:
    """The value of an option given by its old name (a note on stderr says the new one)."""
    if old_value is None:
        return value
    if value is not None:
        fail(f"{old} is the old name of {new}: give {new} alone", code=2)
    show_err(f"note: {old} is deprecated; use {new}")
    return old_value


def _hidden(flag: str) -> Any:
    return typer.Option(flag, hidden=True, help="deprecated")


@project_app.command("set-quota")
def project_set_quota(
    name: str,
    quota_gpus: Annotated[float | None, typer.Option("--quota-gpus", help="guaranteed GPUs")
                          ] = None,
    quota_cpus: Annotated[float | None, typer.Option("--quota-cpus", help="guaranteed CPUs")
                          ] = None,
    quota_memory: Annotated[int | None, typer.Option(
        "--quota-memory", help="guaranteed memory, MiB")] = None,
    limit_gpus: LimG = None, limit_cpus: LimC = None, limit_memory: LimM = None,
    unlimited: Annotated[bool, typer.Option("--unlimited", help="remove the limit")] = False,
    weight: Annotated[int | None, typer.Option(
        "--weight", help="share of idle GPUs beyond quota")] = None,
    priority: Annotated[int | None, typer.Option(
        "--priority", help="higher gets surplus first")] = None,
    old_gpus: Annotated[float | None, _hidden("--gpus")] = None,
    old_cpus: Annotated[float | None, _hidden("--cpus")] = None,
    old_memory: Annotated[int | None, _hidden("--memory")] = None,
    over_commit: OverCommit = False,
) -> None:
    """Change a queue's quota, limit, weight or priority (departments too); what is not given
    stays as it is (a limit given on GPUs alone keeps the CPU and memory limits)."""
    quota_gpus = _renamed("--gpus", old_gpus, "--quota-gpus", quota_gpus)
    quota_cpus = _renamed("--cpus", old_cpus, "--quota-cpus", quota_cpus)
    quota_memory = _renamed("--memory", old_memory, "--quota-memory", quota_memory)
    quota_given = (quota_gpus, quota_cpus, quota_memory) != (None, None, None)
    limit_given = (limit_gpus, limit_cpus, limit_memory) != (None, None, None)
    if unlimited and limit_given:
        fail("--unlimited removes the limit: give it or --limit-*, not both", code=2)
    if not (quota_given or limit_given or unlimited or weight is not None
            or priority is not None):
        fail("nothing to change: give --quota-gpus, --limit-gpus, --unlimited, --weight, … "
             "(see fairpool project set-quota --help)", code=2)
    with _client() as c:
        current = next((q for q in _call(c.queues) if q.name == name), None)
        if current is None:
            fail(f"queue {name} does not exist")
        held = current.limit  # what is not given stays as it is
        try:
            quota = None if not quota_given else ResourceSpec(
                gpus=current.quota.gpus if quota_gpus is None else quota_gpus,
                cpus=current.quota.cpus if quota_cpus is None else quota_cpus,
                memory_mib=current.quota.memory_mib if quota_memory is None else quota_memory)
            limit = None if not limit_given else LimitSpec(
                gpus=held.gpus if limit_gpus is None and held else limit_gpus,
                cpus=held.cpus if limit_cpus is None and held else limit_cpus,
                memory_mib=held.memory_mib if limit_memory is None and held else limit_memory)
            spec = QueueUpdate(quota=quota, limit=limit, over_commit=over_commit,
                               unlimited=unlimited, over_quota_weight=weight, priority=priority)
        except ValidationError as exc:
            fail(_validation(exc))
        q = _call(lambda: c.update_queue(name, spec))
    show(f"{q.name}: quota {gpu_count(q.quota.gpus)}, limit "
         f"{gpus(q.limit.gpus) if q.limit else '∞'}, weight {q.over_quota_weight}")


department_app.command("set-quota")(project_set_quota)  # the same command, found where looked


@node_app.command("cordon")
def node_cordon(name: str, reason: Annotated[str, typer.Option(help="why, for the event")] = ""
                ) -> None:
    """Send no new work to a node; what runs there stays."""
    with _client() as c:
        n = _call(lambda: c.cordon(name, reason))
    show(f"{n.name} cordoned: {n.cordon_reason}")


@node_app.command("uncordon")
def node_uncordon(name: str) -> None:
    """Let a node take work again."""
    with _client() as c:
        n = _call(lambda: c.uncordon(name))
    show(f"{n.name} takes work again")


@node_app.command("drain")
def node_drain(name: str) -> None:
    """Cordon a node and requeue its jobs (SIGTERM, the grace period, then SIGKILL)."""
    with _client() as c:
        n, moved = _call(lambda: c.drain(name))
    show(f"{n.name} cordoned; {plural(moved, 'job')} requeued")


def main() -> None:
    """``fairpool``: usage errors as one line (``output.run``), a client error as one line."""
    try:
        run(app)
    except FairpoolError as exc:  # e.g. an unreadable CA bundle, found making the client
        fail(exc.message)


if __name__ == "__main__":
    main()
