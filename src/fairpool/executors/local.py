"""The local executor: workers are subprocesses of this machine.

Every worker runs here whatever node its spec names, which is how several simulated nodes (see
:func:`fairpool.executors.gpus.load_nodes_file`) are emulated on one box. Each worker gets its own
session and process group, so ``stop`` signals the worker and everything it spawned, and runs in
the machine's sandbox (:mod:`fairpool.executors.sandbox`): a clean environment always, and, as
the settings and the machine allow, its own account, cgroup, namespaces or container. Its
output reaches its log through a copier that caps it (:mod:`fairpool.executors.logcap`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fairpool.executors import adopt, logcap
from fairpool.executors.base import (
    Failure,
    NodeInfo,
    WorkerPhase,
    WorkerSpec,
    WorkerStatus,
    exit_failure,
    free_port,
    start_failure,
    util_path,
    worker_env,
    write_stop_reason,
)
from fairpool.executors.sandbox.policy import Sandbox, SandboxConfig, SandboxError
from fairpool.executors.utilisation import (
    Nvml,
    WorkerUsage,
    group_pids,
    read_reported,
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
    record: dict[str, Any] = field(default_factory=dict)  # what its sandbox holds
    final: bool = False  # a start failure that no retry can mend
    failure: Failure | None = None  # whose fault a start failure is (see Failure)
    copier: subprocess.Popen[bytes] | None = None  # copies its output into the log (logcap)
    drain_until: float | None = None  # its end is reported once the copier is done, or then
    log_told: bool = False  # its log's truncation was reported


def exit_detail(code: int, killed: bool) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}" + (" after the stop grace period" if killed else "")


def _open_log(path: str) -> Any:
    """The worker's log, opened for appending by the executor: never through a link."""
    log_path = Path(path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "ab", buffering=0)


@contextlib.contextmanager
def _stdin(text: str | None, state_dir: Path | None) -> Any:
    """The worker's stdin: its environment for the sandbox's last step, in a file that exists
    only as an open descriptor (root's, unlinked at once), or /dev/null."""
    if text is None:
        yield subprocess.DEVNULL
        return
    with tempfile.TemporaryFile(dir=state_dir) as f:
        f.write(text.encode())
        f.seek(0)
        yield f


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the worker's process group; the caller has checked that it is not reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LocalExecutor:
    """Runs workers as subprocesses of this machine; reports ``nodes`` as its inventory.

    With a ``state_dir`` each worker runs under a supervisor that records its exit code, and a
    new executor on the same directory adopts the workers an earlier one left running (the
    server crashed or restarted): none is started twice and none is forgotten."""

    def __init__(self, nodes: Sequence[NodeInfo], state_dir: Path | None = None,
                 sandbox: Sandbox | None = None, log_max_bytes: int = 1024 * logcap.MIB
                 ) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate node names in inventory: {sorted(names)}")
        self._nodes = list(nodes)
        self._node_names = frozenset(names)
        self._simulated = frozenset(n.name for n in nodes if n.simulated)
        self._nvml: Nvml | None = None  # opened on the first reading of a real GPU
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.RLock()
        self._closed = False
        self.state_dir = state_dir
        self.adopted: set[str] = set()
        self._reported: dict[str, float] = {}  # exits reported (monotonic time), records kept
        self.log_max_bytes = log_max_bytes  # each worker's log is capped here (logcap)
        self._logs_checked = 0.0  # when running workers' logs were last looked at
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(state_dir, 0o700)
        self.sandbox = sandbox or Sandbox(SandboxConfig(cgroups=False, namespaces=False),
                                          state_dir or Path("/nonexistent"),
                                          state_dir or Path("/nonexistent"))
        report = self.sandbox.report()
        self._nodes = [replace(n, isolation=report) for n in self._nodes]
        self._cleanups: list[threading.Thread] = []
        if state_dir is not None:
            self._adopt(state_dir)
            self.sandbox.retain({w.spec.job_id for w in self._workers.values()})

    def _adopt(self, state: Path) -> None:
        """Take over the workers of an earlier executor: running ones by their supervisors,
        and those that ended meanwhile by their exit records."""
        for wid in adopt.old_records(state):
            adopt.forget(state, wid)
        running = adopt.running_supervisors(state)
        ended = [w for w in adopt.ended_workers(state) if w not in running]
        for wid in [*running, *ended]:
            loaded = adopt.load_spec(state, wid)
            if loaded is None:
                continue
            spec, record = loaded
            pid = running.get(wid)
            if pid is not None and not adopt.same_process(pid, record.get("supervisor")):
                pid = None  # not the process that was started for it
            self._workers[wid] = _Worker(spec, None, pid=pid, record=record)
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
            log = _open_log(spec.log_path)
        except OSError as exc:
            return _Worker(spec, None, EXIT_CANNOT_EXECUTE,
                           f"cannot open log file {spec.log_path}: {exc}",
                           failure=start_failure(exc))
        with log:
            fairpool = worker_env(spec)
            if spec.master_port == 0:
                fairpool["MASTER_PORT"] = str(free_port())
            try:
                launch = self.sandbox.prepare(spec, fairpool, spec.node in self._simulated)
            except SandboxError as exc:
                with contextlib.suppress(OSError):
                    log.write(f"fairpool: worker {spec.worker_id}: {exc}\n".encode())
                if self._last_of(spec):  # a uid taken for it goes back at once
                    self.sandbox.release(spec.job_id, {"job_dir": spec.job_dir})
                return _Worker(spec, None, EXIT_CANNOT_EXECUTE, str(exc), final=True)
            try:
                argv = launch.argv
                if self.state_dir is not None:
                    adopt.save_spec(self.state_dir, spec, launch.record)
                    argv = adopt.supervised(self.state_dir, spec, argv)
                copier, output = logcap.start_copier(log, self.log_max_bytes)
                try:
                    with _stdin(launch.stdin, self.state_dir) as stdin:
                        proc = subprocess.Popen(
                            argv,
                            env=launch.env,
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            stdin=stdin,
                            cwd=launch.cwd,
                            start_new_session=True,
                            umask=0o022,  # the server's own is 0077
                        )
                finally:
                    os.close(output)  # the copier ends once the worker and its children have
                if self.state_dir is not None:  # adopt only these very processes later
                    launch.record["supervisor"] = adopt.identity(proc.pid)
                    launch.record["copier"] = adopt.identity(copier.pid)
                    adopt.save_spec(self.state_dir, spec, launch.record)
            except (OSError, ValueError) as exc:  # ValueError: empty argv, NUL in an argument
                code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else (
                    EXIT_CANNOT_EXECUTE)
                detail = f"cannot start {list(spec.command)!r}: {exc}"
                with contextlib.suppress(OSError):
                    log.write(f"fairpool: worker {spec.worker_id}: {detail}\n".encode())
                self.sandbox.finish(launch.record)
                if self._last_of(spec):
                    self.sandbox.release(spec.job_id, launch.record)
                return _Worker(spec, None, code, detail, failure=start_failure(exc))
        return _Worker(spec, proc, pid=proc.pid, record=launch.record, copier=copier)

    def _cleanup(self, w: _Worker) -> None:
        """After a worker: its sandbox's leftovers, then (once no worker of its job is known
        here, checked under the lock so that no new attempt starts meanwhile) its uid; a uid
        whose cgroup could not be emptied is kept, never handed to another job."""
        if not self.sandbox.finish(w.record):
            return
        with self._lock:
            if self._last_of(w.spec):
                self.sandbox.release(w.spec.job_id, w.record)

    def _last_of(self, spec: WorkerSpec) -> bool:
        """Whether no other worker of the job is known here (its uid can then go)."""
        return not any(w.spec.job_id == spec.job_id for wid, w in self._workers.items()
                       if wid != spec.worker_id)

    def _ended(self, w: _Worker, code: int, detail: str, recorded: bool = True
               ) -> tuple[int, str, Failure | None]:
        """How the worker ended, told apart (see :meth:`_explain`), and whose fault it is: a
        signal the executor did not send (the job's own, or its memory limit's) is the job's;
        a supervisor that ended without recording the command's end lost it (see
        :meth:`_unrecorded`)."""
        if code != 0 and self.sandbox.out_of_memory(w.record, code):
            return code, f"killed: out of memory (limit {w.spec.memory_mib} MiB)", Failure.SIGNAL
        explained = self._explain(w, code, detail or exit_detail(code, w.killed))
        if not recorded:
            return code, explained, self._unrecorded(w)
        return code, explained, exit_failure(code, stopped=w.term_sent or w.killed)

    def _unrecorded(self, w: _Worker) -> Failure:
        """Whose fault it is that a supervisor ended without recording how the command ended:
        the executor's kill, or the machine's (the worker is lost) where the job runs under an
        account of its own and so cannot signal its supervisor; a job running as the server's
        account could have killed its supervisor itself, so then it is the job's."""
        if w.killed:
            return Failure.STOPPED
        uid = w.record.get("uid")
        if uid is not None and uid != os.geteuid():
            return Failure.LOST
        return Failure.SIGNAL

    def _explain(self, w: _Worker, code: int, detail: str) -> str:
        """The exit detail, told apart: the command not found, or podman unable to run the
        image."""
        if code in (EXIT_NOT_FOUND, EXIT_CANNOT_EXECUTE) and detail.startswith("exited with"):
            what = "not found" if code == EXIT_NOT_FOUND else "not executable"
            return (f"cannot start the command {w.spec.command[0]!r}: {what} (exit {code}; "
                    f"the log says more)")
        if w.spec.image is not None and code == 125:
            w.final = True
            return (f"podman could not run image {w.spec.image} (exit 125: not there, cannot "
                    f"be pulled, or refused; the log says why)")
        return detail

    def _exit(self, w: _Worker) -> tuple[int, str, Failure | None] | None:
        """How the worker ended (code, detail, whose fault), or None while it runs."""
        if w.proc is not None:
            code = w.proc.poll()
            if code is None:
                return None
            record = None if self.state_dir is None else adopt.read_exit(self.state_dir,
                                                                       w.spec.worker_id)
            if record is not None:  # the command's own end, as its supervisor saw it
                return self._ended(w, *record)
            return self._ended(w, code, "", recorded=self.state_dir is None)
        if w.pid is not None and adopt.pid_alive(w.pid):
            return None
        record = None if self.state_dir is None else adopt.read_exit(self.state_dir,
                                                                       w.spec.worker_id)
        if record is None:
            return (-9, "its supervisor vanished while no server watched it (no exit record)",
                    self._unrecorded(w))
        return self._ended(w, *record)

    def rendezvous_port(self, node: str) -> int:
        return free_port()  # every node of this executor is this machine

    def stop(self, worker_id: str, grace_s: float, reason: str = "") -> None:
        with self._lock:
            w = self._workers.get(worker_id)
            if w is None or w.pid is None or self._exit(w) is not None:
                return  # unknown, never started, or exited (reported by the next poll)
            if not w.term_sent:
                write_stop_reason(w.spec, reason)
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
        look = now - self._logs_checked >= 1.0  # running workers' logs, once a second
        if look:
            self._logs_checked = now
        with self._lock:
            done: list[str] = []
            for wid, w in self._workers.items():
                if w.pid is None and w.failed_code is not None:  # could not be started
                    out.append(WorkerStatus(wid, WorkerPhase.EXITED, w.failed_code, w.detail,
                                            final=w.final, failure=w.failure))
                    done.append(wid)
                    continue
                ended = self._exit(w)
                if not w.reported_running and (ended is None or wid not in self.adopted):
                    w.reported_running = True
                    out.append(WorkerStatus(wid, WorkerPhase.RUNNING, detail=f"pid {w.pid}"))
                if ended is not None and self._draining(w, now):
                    continue  # the last of its output is still on its way to the log
                cut = self._log_cut(w, ended is not None or look)
                if ended is not None:
                    out.append(WorkerStatus(wid, WorkerPhase.EXITED, ended[0], ended[1],
                                            final=w.final, failure=ended[2], log_truncated=cut))
                    done.append(wid)
                elif cut is not None:
                    out.append(WorkerStatus(wid, WorkerPhase.RUNNING, detail=f"pid {w.pid}",
                                            log_truncated=cut))
                elif w.kill_deadline is not None and now >= w.kill_deadline and not w.killed:
                    w.killed = True
                    assert w.pid is not None
                    _signal_group(w.pid, signal.SIGKILL)
                    self._later(self.sandbox.kill, w.record)
            for wid in done:
                w = self._workers[wid]
                del self._workers[wid]
                if w.record:
                    self._later(self._cleanup, w)
                self.adopted.discard(wid)
                self._reported[wid] = now
            self._forget_reported(now)
        return out

    def _draining(self, w: _Worker, now: float) -> bool:
        """Whether an ended worker's copier is still writing its output (for at most
        :data:`logcap.DRAIN_S`: something the worker left behind may hold the pipe open)."""
        if w.drain_until is None:
            w.drain_until = now + logcap.DRAIN_S
        return now < w.drain_until and logcap.copying(w.copier, w.record.get("copier"))

    def _log_cut(self, w: _Worker, look: bool) -> int | None:
        """The cap, the first time the worker's log is seen truncated."""
        if w.log_told or not look or not logcap.truncated(w.spec.log_path, self.log_max_bytes):
            return None
        w.log_told = True
        return self.log_max_bytes

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
                reading = read_reported(util_path(spec), now)
            if reading is not None:
                out[wid] = reading
        return out

    def _later(self, fn: Any, *args: Any) -> None:
        """Run a sandbox cleanup (podman, cgroup removal) off the control loop's path."""
        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        self._cleanups = [t for t in self._cleanups if t.is_alive()] + [thread]

    def close(self) -> None:
        """Forget every worker; running ones keep running (they have their own sessions)."""
        with self._lock:
            self._closed = True
            self._workers.clear()
        for thread in self._cleanups:
            thread.join(30)
        if self._nvml is not None:
            self._nvml.close()
