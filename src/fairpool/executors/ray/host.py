"""The worker host: a Ray actor on one node that runs fairpool workers there, one at a time.

The Ray executor pins each host to the node fairpool chose (node affinity, ``soft=False``) and
asks it to run one worker; when the worker has exited and its output is collected, the host goes
back to a per-node pool and runs a later worker, so a busy pool does not pay for a new Ray worker
process per job. The host asks Ray for no CPUs and no GPUs: fairpool does the accounting, and
the worker gets the ``CUDA_VISIBLE_DEVICES`` fairpool chose, not one Ray chose.

The worker runs in its own session (so a stop signals everything it spawned) and dies with its
host (``PR_SET_PDEATHSIG``), so a host that Ray kills leaves no orphan behind. Its output is kept
in memory until the executor collects it with :meth:`WorkerHost.next`, a long poll that returns
as soon as there is output or the worker has exited.

The worker's environment is built from nothing (:mod:`fairpool.executors.sandbox.environment`):
the host's own, Ray's included, never reaches it but for the names an admin passes through. A
job with an image runs in it through the node's podman (:mod:`.sandbox.commands`): its GPUs as
devices, its working directory, job directory and allowed mounts, the host's network.

This module and the sandbox's import only the standard library: the executor ships them to the
nodes by value, so nodes need Ray and Python but not fairpool.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any

from fairpool.executors.sandbox import commands, environment
from fairpool.executors.sandbox.devices import real_gpus

PR_SET_PDEATHSIG = 1
#: Output kept per worker while nobody collects it; beyond it the oldest output is dropped.
MAX_BUFFER = 16 * 1024 * 1024
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126

def _die_with_parent_fn() -> Any:
    """A preexec function that makes the child die with this process (Linux), or None. Looked
    up when needed: ctypes handles cannot travel with the pickled module."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: workers do not die with their host
        return None

    def die_with_parent() -> None:  # runs in the child between fork and exec
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return die_with_parent


class _Run:
    """One worker process and its output."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self.proc: subprocess.Popen[bytes] | None = None
        self.cond = threading.Condition()
        self.buffer = bytearray()
        self.dropped = 0
        self.code: int | None = None  # set once the process has exited and output is read
        self.killed = False  # SIGKILL sent after the stop grace period
        self.stop_requested = False
        self.kill_at: float | None = None  # monotonic time of the SIGKILL, once stopped
        self.container: str | None = None  # the worker's podman container, if in an image
        self.env_file: str | None = None

    def append(self, data: bytes) -> None:
        with self.cond:
            self.buffer += data
            excess = len(self.buffer) - MAX_BUFFER
            if excess > 0:
                del self.buffer[:excess]
                self.dropped += excess
            self.cond.notify_all()

    def signal(self, sig: signal.Signals) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)


class WorkerHost:
    """Runs one worker at a time (see the module docs). Methods are called concurrently: the
    actor is threaded, and Ray does not order calls of a threaded actor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._preexec = _die_with_parent_fn()

    def run(self, worker_id: str, argv: list[str], env: dict[str, str],
            workdir: str | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start the worker; returns ``{"pid", "node_ip"}`` or ``{"code", "error"}`` (with
        ``"final": True`` when no retry could help, the ``"errno"`` of a failed start, and
        ``"stopped": True`` for a worker stopped before it started)."""
        options = options or {}
        with self._lock:
            # earlier workers of this host are over: forget them (and stops that came late)
            self._runs = {k: r for k, r in self._runs.items() if k == worker_id}
            run = self._runs.setdefault(worker_id, _Run(worker_id))
            if run.proc is not None or run.code is not None:
                return {"pid": run.proc.pid if run.proc else None, "node_ip": _node_ip()}
            if run.stop_requested:  # stopped before it started: never start it
                run.code = -signal.SIGTERM
                return {"code": run.code, "error": "stopped before it started",
                        "stopped": True}
            base = environment.base_env(os.environ, name=None, home=None)
            full_env = environment.layered(base, os.environ, options.get("passthrough", ()),
                                           {}, env, {})
            if full_env.get("MASTER_PORT") == "0":  # a single worker: any free port here
                full_env["MASTER_PORT"] = str(self.free_port())
            popen_env, cwd = full_env, workdir
            try:
                if workdir is not None and not os.path.isdir(workdir):
                    raise FileNotFoundError(f"working directory {workdir} does not exist on "
                                            f"this node")
                if options.get("image"):
                    argv, popen_env = self._container(run, argv, full_env, workdir, options)
                    cwd = None
                run.proc = subprocess.Popen(
                    argv, env=popen_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True,
                    preexec_fn=self._preexec,  # only a prctl call, safe in a threaded parent
                )
            except _Refused as exc:
                run.code = EXIT_CANNOT_EXECUTE
                return {"code": run.code, "error": str(exc), "final": True}
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                run.code = EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else (
                    EXIT_CANNOT_EXECUTE)
                return {"code": run.code, "error": f"cannot start {argv!r}: {exc}",
                        "errno": exc.errno if isinstance(exc, OSError) else None}
        threading.Thread(target=self._watch, args=(run,), daemon=True).start()
        return {"pid": run.proc.pid, "node_ip": _node_ip()}

    def _container(self, run: _Run, argv: list[str], env: dict[str, str], workdir: str | None,
                   options: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """``podman run`` of the worker in its image, and podman's own environment."""
        podman = shutil.which("podman")
        image = str(options["image"])
        if podman is None:
            raise _Refused(f"the job runs in image {image} but podman is not installed on "
                           f"this node")
        private = tempfile.mkdtemp(prefix="fairpool-host-")  # mode 0700
        conf = os.path.join(private, "containers.conf")
        with open(conf, "w") as f:
            f.write(commands.PODMAN_CONF)
        podman_env = {k: os.environ[k] for k in ("PATH", "HOME", "XDG_RUNTIME_DIR")
                      if k in os.environ}
        podman_env["CONTAINERS_CONF"] = os.environ.get("CONTAINERS_CONF", conf)
        pull = str(options.get("pull", "missing"))
        if pull == "never" and subprocess.run([podman, "image", "exists", image],
                                              capture_output=True, env=podman_env,
                                              timeout=60).returncode != 0:
            raise _Refused(f"image {image} is not on this node and image_pull is never: load "
                           f"it there (podman load / podman pull)")
        roots = [str(r) for r in options.get("mount_roots", ())]
        mounts = []
        for source, target, read_only in options.get("mounts", ()):
            real = os.path.realpath(source)
            if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in roots):
                raise _Refused(f"mount source {source} is not under an allowed mount root")
            mounts.append(commands.Mount(real, str(target), bool(read_only)))
        job_dir = options.get("job_dir") or os.path.join(private, "job")
        for sub in ("", "checkpoint", "home", "tmp"):
            os.makedirs(os.path.join(job_dir, sub), exist_ok=True)
        devices = [] if options.get("simulated") else real_gpus(options.get("devices", ()))
        env_file = os.path.join(private, "env")
        with open(os.open(env_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(commands.env_file_text({k: v for k, v in env.items() if k != "PATH"}))
        layout = commands.Layout(hide=(), job_dir=job_dir, workdir=workdir,
                                 devices=tuple(devices), mounts=tuple(mounts))
        run.container = commands.container_name(run.worker_id)
        run.env_file = private
        return commands.podman_run(podman, worker_id=run.worker_id, image=image, command=argv,
                                   env=env, env_file=env_file, account=None, layout=layout,
                                   cgroup_parent=None, pull=pull,
                                   pids_limit=int(options.get("pids_limit", 4096))
                                   ), podman_env

    def _watch(self, run: _Run) -> None:
        proc = run.proc
        assert proc is not None and proc.stdout is not None
        reader = threading.Thread(target=self._read, args=(run, proc.stdout), daemon=True)
        reader.start()
        code = proc.wait()
        reader.join(2.0)  # a daemon the worker left behind may keep the pipe open: stop waiting
        _remove_container(run)
        with run.cond:
            run.code = code
            run.cond.notify_all()

    @staticmethod
    def _read(run: _Run, stream: Any) -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                data = stream.read1(65536)
                if not data:
                    break
                run.append(data)

    def next(self, worker_id: str, timeout: float) -> tuple[bytes, int | None, bool]:
        """Output since the last call, and the exit code once the worker has exited and all its
        output is returned; waits up to ``timeout`` seconds for either."""
        with self._lock:
            run = self._runs.get(worker_id)
        if run is None:
            return b"", EXIT_CANNOT_EXECUTE, False
        with run.cond:
            if not run.buffer and run.code is None:
                run.cond.wait(timeout)
            data = bytes(run.buffer)
            run.buffer.clear()
            if run.dropped:
                data = (f"[fairpool: {run.dropped} bytes of output dropped]\n".encode()
                        + data)
                run.dropped = 0
            code = run.code
        # the run is kept until the host's next worker: if this answer is lost on the way, the
        # executor asks again and gets the exit code again (its output was already delivered
        # or is lost with the answer)
        return data, code, run.killed

    def stop(self, worker_id: str, grace_s: float) -> None:
        """SIGTERM to the worker's process group now, SIGKILL after ``grace_s``."""
        deadline = time.monotonic() + max(grace_s, 0.0)
        with self._lock:
            run = self._runs.setdefault(worker_id, _Run(worker_id))
            first = not run.stop_requested
            run.stop_requested = True
            if run.kill_at is not None and run.kill_at <= deadline:
                return  # an earlier stop already kills it sooner
            run.kill_at = deadline
        if first:
            run.signal(signal.SIGTERM)
        timer = threading.Timer(max(grace_s, 0.0), self._kill, args=(run,))
        timer.daemon = True
        timer.start()

    @staticmethod
    def _kill(run: _Run) -> None:
        if run.proc is not None and run.proc.poll() is None:
            run.killed = True
            run.signal(signal.SIGKILL)
            _remove_container(run)  # it outlives podman's client

    def kill_group(self, pgid: int) -> None:
        """SIGKILL a process group left on this node by a host that died (its worker's
        children outlive it: only the worker itself dies with its host)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    def free_port(self) -> int:
        """A TCP port free on this node now (for a gang's rendezvous)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            return int(s.getsockname()[1])

    def gpus(self) -> list[dict[str, Any]]:
        """This node's GPUs as NVML sees them ([] without NVML or GPUs)."""
        try:
            import pynvml  # type: ignore[import-untyped, import-not-found, unused-ignore]
        except ImportError:
            return []
        try:
            pynvml.nvmlInit()
        except Exception:
            return []
        try:
            out = []
            for i in range(int(pynvml.nvmlDeviceGetCount())):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = pynvml.nvmlDeviceGetName(h)
                uuid = pynvml.nvmlDeviceGetUUID(h)
                out.append({
                    "index": i,
                    "memory_mib": int(pynvml.nvmlDeviceGetMemoryInfo(h).total) // (1 << 20),
                    "model": name.decode() if isinstance(name, bytes) else str(name),
                    "uuid": uuid.decode() if isinstance(uuid, bytes) else str(uuid),
                })
            return out
        except Exception:
            return []
        finally:
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()


class _Refused(Exception):
    """The worker cannot run as asked on this node (no retry would help)."""


def _remove_container(run: _Run) -> None:
    podman = shutil.which("podman")
    if run.container is not None and podman is not None:
        env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
        if run.env_file is not None:
            env["CONTAINERS_CONF"] = os.environ.get(
                "CONTAINERS_CONF", os.path.join(run.env_file, "containers.conf"))
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([podman, "rm", "-f", "--time", "0", "--ignore", run.container],
                           capture_output=True, env=env, timeout=60)
    if run.env_file is not None:
        shutil.rmtree(run.env_file, ignore_errors=True)
        run.env_file = None


def _node_ip() -> str:
    try:
        import ray

        return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
    except Exception:
        return socket.gethostname()
