"""The executor protocol: what the control plane asks of whatever runs workers.

Nomenclature: a *worker* is one process of a job on one node (rank ``rank`` of ``world_size``);
its ``worker_id`` is unique per attempt (``{job_id}.{attempt}.{rank}``). ``start`` is idempotent on
the worker id; ``stop`` sends SIGTERM now and SIGKILL once ``grace_s`` has passed without exit (the
kill happens during a later ``poll``, so no call blocks); ``poll`` reports every worker it knows
whose phase changed since the last poll, an exited worker exactly once. Executors never touch the
database; the control loop turns their reports into job states.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from fairpool.executors.sandbox import jobfiles
from fairpool.executors.utilisation import WorkerUsage, util_file


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    memory_mib: int
    model: str
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    devices: tuple[DeviceInfo, ...]
    cpu: int  # millicores
    memory: int  # MiB
    pool: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    simulated: bool = False
    address: str = "127.0.0.1"  # where other ranks reach this node (MASTER_ADDR)
    #: what the node's sandbox enforces: level (full, partial, none), run_as, missing, ...
    isolation: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    worker_id: str
    job_id: str
    attempt: int
    rank: int
    world_size: int
    local_rank: int
    node: str
    devices: tuple[int, ...]  # device indexes on ``node``; empty for CPU-only workers
    command: tuple[str, ...]  # argv, executed without a shell
    env: Mapping[str, str]
    master_addr: str
    master_port: int  # 0: the executor picks a free port on the node when the worker starts
    log_path: str  # stdout and stderr of the worker are appended here
    gpu_fraction: float | None = None  # share of each device for fractional workers
    gpu_memory_mib: int | None = None  # GPU memory granted per device for fractional workers
    workdir: str | None = None
    checkpoint_dir: str | None = None  # kept across the job's attempts
    job_dir: str | None = None  # the job's own directory (see sandbox.jobfiles); None: none
    project: str = ""
    owner: str | None = None  # the fairpool user who submitted the job
    account: str | None = None  # the Unix account an admin mapped the owner to
    image: str | None = None  # run in this OCI image (podman)
    mounts: tuple[tuple[str, str, bool], ...] = ()  # (source, target, read only)
    memory_mib: int = 0  # the worker's requests, enforced as limits where cgroups allow
    cpu_millis: int = 0


class WorkerPhase(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    LOST = "lost"  # the executor can no longer see the worker (node gone, process vanished)


class Failure(StrEnum):
    """Whose fault a worker's end is, as the node circuit breaker needs to know: ``LOST`` and
    ``START`` are the machine's; ``COMMAND`` and ``SIGNAL`` are the job's own (they point at
    the machine only when jobs of several users and projects fail so on it); the others never
    point at it."""

    LOST = "lost"  # the executor lost the worker: how it ended is unknown
    START = "start"  # the executor could not start it for want of the machine's resources
    COMMAND = "command"  # the job's command could not run (126/127, not found, a bad workdir)
    SIGNAL = "signal"  # killed by a signal the executor did not send (itself, its memory limit)
    STOPPED = "stopped"  # ended by the executor's stop (SIGTERM, SIGKILL after the grace)
    EXIT = "exit"  # an ordinary non-zero exit code
    FINAL = "final"  # cannot succeed however often it is retried (see ``final``)


NODE_FAULTS = frozenset({Failure.LOST, Failure.START})
JOB_FAULTS = frozenset({Failure.COMMAND, Failure.SIGNAL})

#: errors of starting a process that tell of the machine (no memory, no processes or files
#: left, a full or broken disk), not of the command or its spec
_MACHINE_ERRNOS = frozenset({errno.EAGAIN, errno.ENOMEM, errno.EMFILE, errno.ENFILE,
                             errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def start_failure(exc: BaseException) -> Failure:
    """Whose fault an executor's failure to start a worker is: the machine's only for errors
    that tell of its resources; anything else (not found, not executable, a bad argument) is
    the job's, so that no job can make its own start look like a node fault."""
    return errno_failure(exc.errno if isinstance(exc, OSError) else None)


def errno_failure(number: int | None) -> Failure:
    """:func:`start_failure` of an error number (None: not an OS error)."""
    return Failure.START if number in _MACHINE_ERRNOS else Failure.COMMAND


def exit_failure(code: int | None, stopped: bool) -> Failure | None:
    """How an exit code is read when the executor knows nothing better: None for success,
    ``stopped`` (the executor signalled the worker) makes a signal death ``STOPPED``."""
    if code is None:
        return Failure.LOST
    if code == 0:
        return None
    if code < 0:
        return Failure.STOPPED if stopped else Failure.SIGNAL
    if code in (126, 127):
        return Failure.COMMAND
    return Failure.EXIT


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    worker_id: str
    phase: WorkerPhase
    exit_code: int | None = None  # for EXITED: the code, or -N when killed by signal N
    detail: str = ""
    #: the attempt cannot succeed however often it is retried (an image that is not there, an
    #: account that does not exist): it is not retried and does not count against the node
    final: bool = False
    #: whose fault the end is, where the executor knows (see :meth:`fault`)
    failure: Failure | None = None
    #: the worker's log reached this cap (bytes) and its later output is discarded (see
    #: :mod:`fairpool.executors.logcap`); said once per worker, on a running or exit report
    log_truncated: int | None = None

    def fault(self) -> Failure | None:
        """Whose fault this end is: what the executor said, else read from the phase and exit
        code (a report of an executor that does not tell never blames the machine but for a
        lost worker or an unknown exit code); None for a running worker or a success."""
        if self.phase == WorkerPhase.RUNNING:
            return None
        if self.phase == WorkerPhase.LOST:  # unless the executor knows better (a Ray host
            return self.failure or Failure.LOST  # that died on a node still in the cluster)
        if self.final:
            return Failure.FINAL
        if self.failure is not None:
            return self.failure
        return exit_failure(self.exit_code, stopped=False)


class Executor(Protocol):
    def nodes(self) -> list[NodeInfo]:
        """Inventory: nodes with their GPUs (NVML or simulated), CPU and memory."""
        ...

    def start(self, worker: WorkerSpec) -> None:
        """Start the worker; a second call with the same worker id does nothing."""
        ...

    def stop(self, worker_id: str, grace_s: float, reason: str = "") -> None:
        """SIGTERM now, SIGKILL after ``grace_s``; unknown or finished workers are ignored.
        ``reason`` ("preempted", "cancelled", ...) is written to the worker's
        ``$FAIRPOOL_STOP_FILE`` before the signal, so it knows whether to checkpoint."""
        ...

    def known(self) -> set[str]:
        """Ids of the workers this executor tracks (running, or exited and not yet reported)."""
        ...

    def poll(self) -> list[WorkerStatus]:
        """Workers whose phase changed since the last poll (each exit reported once), and a
        running worker once more when its log was truncated (``log_truncated``)."""
        ...

    def rendezvous_port(self, node: str) -> int:
        """A TCP port free on ``node`` now, for the rank 0 of a gang placed there."""
        ...

    def utilisation(self) -> dict[str, WorkerUsage]:
        """GPU utilisation of running workers that have a reading now (by worker id)."""
        ...

    def close(self) -> None:
        """Release the executor's resources; running workers are left alone."""
        ...


def worker_env(spec: WorkerSpec) -> dict[str, str]:
    """The environment fairpool adds for a worker: its devices and the torch.distributed
    rendezvous, so launchers work unchanged."""
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(str(d) for d in spec.devices),
        "FAIRPOOL_JOB_ID": spec.job_id,
        "FAIRPOOL_WORKER_ID": spec.worker_id,
        "FAIRPOOL_ATTEMPT": str(spec.attempt),
        "FAIRPOOL_NODE": spec.node,
        "FAIRPOOL_UTIL_FILE": util_path(spec),
        "FAIRPOOL_STOP_FILE": stop_path(spec),
        "MASTER_ADDR": spec.master_addr,
        "MASTER_PORT": str(spec.master_port),
        "RANK": str(spec.rank),
        "WORLD_SIZE": str(spec.world_size),
        "LOCAL_RANK": str(spec.local_rank),
    }
    if spec.checkpoint_dir is not None:
        env["FAIRPOOL_CHECKPOINT_DIR"] = spec.checkpoint_dir
    if spec.gpu_fraction is not None:
        env["FAIRPOOL_GPU_FRACTION"] = f"{spec.gpu_fraction:g}"
    if spec.gpu_memory_mib is not None:
        env["FAIRPOOL_GPU_MEMORY_MIB"] = str(spec.gpu_memory_mib)
    return env


def stop_file(log_path: str) -> str:
    """Where a worker without a job directory learns why it is being stopped."""
    return log_path + ".stop"


def stop_path(spec: WorkerSpec) -> str:
    """Where a worker learns why it is being stopped (see :mod:`fairpool.checkpoint`)."""
    if spec.job_dir is None:
        return stop_file(spec.log_path)
    return str(Path(spec.job_dir, jobfiles.stop_name(spec.attempt, spec.rank)))


def util_path(spec: WorkerSpec) -> str:
    """Where a worker reports its own utilisation."""
    if spec.job_dir is None:
        return util_file(spec.log_path)
    return str(Path(spec.job_dir, jobfiles.util_name(spec.attempt, spec.rank)))


def write_stop_reason(spec: WorkerSpec, reason: str) -> None:
    if reason:
        jobfiles.write_safely(stop_path(spec), reason + "\n")


def free_port() -> int:
    """A TCP port free on this machine now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])
