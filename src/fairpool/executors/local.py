"""The local executor: workers are subprocesses of this machine.

Every worker runs here whatever node its spec names, which is how several simulated nodes (see
:func:`fairpool.executors.gpus.load_nodes_file`) are emulated on one box. Each worker gets its own
session and process group, so ``stop`` signals the worker and everything it spawned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fairpool.executors import adopt
from fairpool.executors.base import (
    NodeInfo,
    WorkerPhase,
    WorkerSpec,
    WorkerStatus,
    free_port,
    worker_env,
    write_stop_reason,
)
from fairpool.executors.utilisation import (
    Nvml,
    WorkerUsage,
    group_pids,
    read_reported,
    util_file,
)

EXIT_NOT_FOUND = 127  # shell convention: command not found
EXIT_CANNOT_EXECUTE = 126  # shell convention: found but not executable


@dataclass(slots=True)
class _Worker:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes] | None  # None: never started, or adopted (then ``pid``)
    failed_code: int | None = None  # exit code reported for a worker that never started
    detail: str = ""
    pid: int | None = None  # the process group leader: the worker, or its supervisor
    reported_running: bool = False
    term_sent: bool = False
    kill_deadline: float | None = None  # monotonic time after which poll sends SIGKILL
    killed: bool = False


def exit_detail(code: int, killed: bool) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}" + (" after the stop grace period" if killed else "")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the worker's process group; the caller has checked that it is not reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LocalExecutor:
    """Runs workers as subprocesses of this machine; reports ``nodes`` as its inventory.

    With a ``state_dir`` each worker runs under a supervisor that records its exit code, and a
    new executor on the same directory adopts the workers an earlier one left running (the
    server crashed or restarted): none is started twice and none is forgotten."""

    def __init__(self, nodes: Sequence[NodeInfo], state_dir: Path | None = None) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate node names in inventory: {sorted(names)}")
        self._nodes = list(nodes)
        self._node_names = frozenset(names)
        self._simulated = frozenset(n.name for n in nodes if n.simulated)
        self._nvml: Nvml | None = None  # opened on the first reading of a real GPU
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.state_dir = state_dir
        self.adopted: set[str] = set()
        self._reported: dict[str, float] = {}  # exits reported (monotonic time), records kept
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._adopt(state_dir)

    def _adopt(self, state: Path) -> None:
        """Take over the workers of an earlier executor: running ones by their supervisors,
        and those that ended meanwhile by their exit records."""
        for wid in adopt.old_records(state):
            adopt.forget(state, wid)
        running = adopt.running_supervisors(state)
        ended = [w for w in adopt.ended_workers(state) if w not in running]
        for wid in [*running, *ended]:
            spec = adopt.load_spec(state, wid)
            if spec is None:
                continue
            self._workers[wid] = _Worker(spec, None, pid=running.get(wid))
            self.adopted.add(wid)

    def nodes(self) -> list[NodeInfo]:
        return list(self._nodes)

    def start(self, worker: WorkerSpec) -> None:
        if worker.node not in self._node_names:
            raise ValueError(
                f"worker {worker.worker_id}: node {worker.node!r} is not in this executor's "
                f"inventory ({', '.join(sorted(self._node_names)) or 'empty'})"
            )
        with self._lock:
            if self._closed:
                raise RuntimeError("LocalExecutor is closed")
            if worker.worker_id in self._workers:
                return
            self._workers[worker.worker_id] = self._spawn(worker)

    def _spawn(self, spec: WorkerSpec) -> _Worker:
        try:
            log_path = Path(spec.log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            if spec.checkpoint_dir is not None:
                Path(spec.checkpoint_dir).mkdir(parents=True, exist_ok=True)
            log = log_path.open("ab", buffering=0)
        except OSError as exc:
            return _Worker(spec, None, EXIT_CANNOT_EXECUTE,
                           f"cannot open log file {spec.log_path}: {exc}")
        with log:
            try:
                env = {**os.environ, **spec.env, **worker_env(spec)}
                if spec.master_port == 0:
                    env["MASTER_PORT"] = str(free_port())
                argv = list(spec.command)
                if self.state_dir is not None:
                    adopt.save_spec(self.state_dir, spec)
                    argv = adopt.supervised(self.state_dir, spec)
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=spec.workdir,
                    start_new_session=True,
                )
            except (OSError, ValueError) as exc:  # ValueError: empty argv, NUL in an argument
                code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else (
                    EXIT_CANNOT_EXECUTE)
                detail = f"cannot start {list(spec.command)!r}: {exc}"
                with contextlib.suppress(OSError):
                    log.write(f"fairpool: worker {spec.worker_id}: {detail}\n".encode())
                return _Worker(spec, None, code, detail)
        return _Worker(spec, proc, pid=proc.pid)

    def _exit(self, w: _Worker) -> tuple[int, str] | None:
        """How the worker ended, or None while it runs."""
        if w.proc is not None:
            code = w.proc.poll()
            if code is None:
                return None
            record = None if self.state_dir is None else adopt.read_exit(self.state_dir,
                                                                       w.spec.worker_id)
            if record is not None:  # the command's own end, as its supervisor saw it
                return record[0], record[1] or exit_detail(record[0], w.killed)
            return code, exit_detail(code, w.killed)
        if w.pid is not None and adopt.pid_alive(w.pid):
            return None
        record = None if self.state_dir is None else adopt.read_exit(self.state_dir,
                                                                       w.spec.worker_id)
        if record is None:
            return -9, "its supervisor vanished while no server watched it (no exit record)"
        code, detail = record
        return code, detail or exit_detail(code, w.killed)

    def rendezvous_port(self, node: str) -> int:
        return free_port()  # every node of this executor is this machine

    def stop(self, worker_id: str, grace_s: float, reason: str = "") -> None:
        with self._lock:
            w = self._workers.get(worker_id)
            if w is None or w.pid is None or self._exit(w) is not None:
                return  # unknown, never started, or exited (reported by the next poll)
            if not w.term_sent:
                write_stop_reason(w.spec.log_path, reason)
            deadline = time.monotonic() + max(grace_s, 0.0)
            if w.kill_deadline is None or deadline < w.kill_deadline:
                w.kill_deadline = deadline
            if not w.term_sent:
                w.term_sent = True
                _signal_group(w.pid, signal.SIGTERM)

    def known(self) -> set[str]:
        with self._lock:
            return set(self._workers)

    def poll(self) -> list[WorkerStatus]:
        out: list[WorkerStatus] = []
        now = time.monotonic()
        with self._lock:
            done: list[str] = []
            for wid, w in self._workers.items():
                if w.pid is None and w.failed_code is not None:  # could not be started
                    out.append(WorkerStatus(wid, WorkerPhase.EXITED, w.failed_code, w.detail))
                    done.append(wid)
                    continue
                ended = self._exit(w)
                if not w.reported_running and (ended is None or wid not in self.adopted):
                    w.reported_running = True
                    out.append(WorkerStatus(wid, WorkerPhase.RUNNING, detail=f"pid {w.pid}"))
                if ended is not None:
                    out.append(WorkerStatus(wid, WorkerPhase.EXITED, ended[0], ended[1]))
                    done.append(wid)
                elif w.kill_deadline is not None and now >= w.kill_deadline and not w.killed:
                    w.killed = True
                    assert w.pid is not None
                    _signal_group(w.pid, signal.SIGKILL)
            for wid in done:
                del self._workers[wid]
                self.adopted.discard(wid)
                self._reported[wid] = now
            self._forget_reported(now)
        return out

    def _forget_reported(self, now: float) -> None:
        """Drop the records of workers reported long enough ago that the loop has committed
        their ends (a restart in between finds them still)."""
        old = [w for w, at in self._reported.items() if now - at > adopt.KEEP_EXITS_S]
        for wid in old:
            del self._reported[wid]
            if self.state_dir is not None:
                adopt.forget(self.state_dir, wid)

    def utilisation(self) -> dict[str, WorkerUsage]:
        """NVML readings of the worker's devices on nodes with real GPUs; on simulated ones, what
        the worker reported itself (labelled simulated)."""
        with self._lock:
            running = [(wid, w.spec, w.pid) for wid, w in self._workers.items()
                       if w.pid is not None and self._exit(w) is None]
        out: dict[str, WorkerUsage] = {}
        now = time.time()
        for wid, spec, pid in running:
            reading = None
            if spec.devices and spec.node not in self._simulated:
                if self._nvml is None:
                    self._nvml = Nvml()
                # a GPU fraction shares its device: count only the worker's own processes
                reading = (self._nvml.processes(spec.devices, group_pids(pid))
                           if spec.gpu_fraction is not None or spec.gpu_memory_mib is not None
                           else self._nvml.devices(spec.devices))
            if reading is None:
                reading = read_reported(util_file(spec.log_path), now)
            if reading is not None:
                out[wid] = reading
        return out

    def close(self) -> None:
        """Forget every worker; running ones keep running (they have their own sessions)."""
        with self._lock:
            self._closed = True
            self._workers.clear()
        if self._nvml is not None:
            self._nvml.close()
