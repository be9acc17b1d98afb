"""Worker ids, the placement JSON a bind writes (one
:class:`~fairpool.store.workers.WorkerRecord` per rank), and the specs the executor receives."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from fairpool.domain import GPU_UNIT
from fairpool.executors.base import WorkerSpec
from fairpool.executors.sandbox import jobfiles
from fairpool.scheduler.plan import Bind
from fairpool.services.jobs import log_path
from fairpool.store.models import JobRow
from fairpool.store.workers import Phase, WorkerRecord


def worker_id(job_id: str, attempt: int, rank: int) -> str:
    return f"{job_id}.{attempt}.{rank}"


def parse_worker_id(wid: str) -> tuple[str, int, int]:
    job_id, attempt, rank = wid.rsplit(".", 2)
    return job_id, int(attempt), int(rank)


def placement_json(row: JobRow, bind: Bind) -> list[dict[str, Any]]:
    workers = [
        WorkerRecord(rank=p.worker, worker_id=worker_id(row.id, row.attempt, p.worker),
                     node=p.node, devices=list(p.devices), share=p.share,
                     gpu_memory=p.gpu_memory, phase=Phase.PENDING, exit_code=None)
        for p in bind.placements
    ]
    return cast(list[dict[str, Any]], workers)


def worker_specs(row: JobRow, addresses: dict[str, str], data_dir: Path,
                 port: Callable[[str], int], secrets: dict[str, str] | None = None,
                 account: str | None = None) -> list[WorkerSpec]:
    """Specs of the job's workers; ``port(node)`` gives a free port on rank 0's node for a gang
    (a single worker gets 0: its executor picks a port when it starts). The project's
    ``secrets`` join the environment; a variable the job sets itself wins. ``account``: the
    Unix account an admin mapped the submitter to (``run_as=user``)."""
    env = {**(secrets or {}), **row.env}
    if row.attempt > (row.retries or 0):  # an earlier attempt was preempted (or lost): resume
        env["FAIRPOOL_PREEMPTED"] = "1"
    workers = sorted(row.placement or (), key=lambda w: w["rank"])
    master = addresses.get(workers[0]["node"], "127.0.0.1") if workers else "127.0.0.1"
    master_port = port(workers[0]["node"]) if len(workers) > 1 else 0
    per_node: dict[str, int] = {}
    specs = []
    job_dir = jobfiles.job_dir(data_dir, row.id)
    mounts = tuple((m["source"], m["target"], bool(m.get("read_only")))
                   for m in row.mounts or ())
    for w in workers:
        local_rank = per_node.get(w["node"], 0)
        per_node[w["node"]] = local_rank + 1
        fractional = w["share"] < GPU_UNIT and w["devices"]
        specs.append(WorkerSpec(
            worker_id=w["worker_id"], job_id=row.id, attempt=row.attempt, rank=w["rank"],
            world_size=row.workers, local_rank=local_rank, node=w["node"],
            devices=tuple(w["devices"]), command=tuple(row.command), env=dict(env),
            master_addr=master, master_port=master_port,
            log_path=str(log_path(data_dir, row.id, row.attempt, w["rank"])),
            gpu_fraction=w["share"] / GPU_UNIT if fractional else None,
            gpu_memory_mib=w["gpu_memory"] if fractional else None,
            workdir=row.workdir,
            checkpoint_dir=str(job_dir / "checkpoint"),
            job_dir=str(job_dir), project=row.project, owner=row.submitted_by,
            account=account, image=row.image, mounts=mounts, memory_mib=row.memory,
            cpu_millis=row.cpu,
        ))
    return specs
