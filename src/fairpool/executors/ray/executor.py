"""The Ray executor: fairpool decides, Ray runs the processes on the machines fairpool chose.

- Inventory: Ray's live nodes (:mod:`.inventory`), refreshed every ``refresh_s``; a node that
  joins is offered to the scheduler as soon as its GPUs are probed, a node that dies or is removed
  disappears, and its workers are reported lost.
- Workers: each runs in a :class:`~.host.WorkerHost` actor pinned to its node (node affinity,
  ``soft=False``), with the devices, rendezvous and environment fairpool chose. Hosts are reused
  per node once their worker has exited, so a busy pool does not start a Ray worker process per
  job; hosts idle for ``idle_host_s`` are released.
- A pump thread keeps one call outstanding per worker (``run``, then long-polling ``next``),
  appends the output it returns to the worker's log file here, and queues the phase changes that
  :meth:`RayExecutor.poll` hands to the control loop. A host that dies (its node died, or it was
  killed) makes its worker lost. Logs are capped at ``log_max_bytes`` (:mod:`..logcap`).
- ``stop`` is SIGTERM now and SIGKILL after the grace period, both done by the host on the node.

The executor needs a connected Ray driver (:func:`.connect.connect`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fairpool.executors import base, logcap
from fairpool.executors import sandbox as sandbox_package
from fairpool.executors.base import NodeInfo, WorkerPhase, WorkerSpec, WorkerStatus, worker_env
from fairpool.executors.local import exit_detail
from fairpool.executors.utilisation import WorkerUsage

from . import host as host_module
from .inventory import gpu_count, node_info

log = logging.getLogger("fairpool.executors.ray")

EXIT_CANNOT_EXECUTE = 126
PROBE_RETRY_S = 30.0


@dataclass(slots=True)
class _Node:
    node_id: str
    info: NodeInfo
    entry: dict[str, Any]
    probed: list[dict[str, Any]]


@dataclass(slots=True)
class _Worker:
    spec: WorkerSpec
    node_id: str
    host: Any
    ref: Any  # the outstanding call: ``run`` first, then ``next``
    log: logcap.CappedLog  # its log here, capped at log_max_bytes
    started: bool = False
    pid: int | None = None  # the worker's pid (and process group) on its node
    unavailable_since: float | None = None  # first "actor unavailable" answer in a row
    retry_at: float | None = None  # when to ask again after such an answer
    sandbox: dict[str, Any] = field(default_factory=dict)  # env pass-through, image pull, ...
    simulated: bool = False  # its node's GPUs are simulated (no device nodes to pass in)
    stop_sent: bool = False  # stop was called: a death by signal is the executor's doing

    def call(self, long_poll_s: float) -> Any:
        """(Re)issue the worker's outstanding call: ``run`` until it started, then ``next``;
        both are idempotent on the host."""
        if self.started:
            return self.host.next.remote(self.spec.worker_id, long_poll_s)
        return self.host.run.remote(self.spec.worker_id, list(self.spec.command),
                                    {**self.spec.env, **worker_env(self.spec)},
                                    self.spec.workdir, self.options)

    @property
    def options(self) -> dict[str, Any]:
        """What the host needs besides the command: the sandbox settings and, for a job in an
        image, the image, its mounts, the worker's GPUs and its job directory."""
        spec = self.spec
        return {**self.sandbox, "image": spec.image, "mounts": [list(m) for m in spec.mounts],
                "devices": list(spec.devices), "job_dir": spec.job_dir,
                "simulated": self.simulated}


@dataclass(slots=True)
class _Probe:
    host: Any
    ref: Any
    since: float


@dataclass(slots=True)
class _Pool:
    """Idle hosts of one node, with the time each became idle."""
    hosts: list[tuple[Any, float]] = field(default_factory=list)


class RayExecutor:
    """Implements :class:`fairpool.executors.base.Executor` on a connected Ray cluster."""

    def __init__(
        self,
        gpu_resource: str = "GPU",
        *,
        long_poll_s: float = 2.0,
        refresh_s: float = 1.0,
        idle_host_s: float = 60.0,
        probe_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sandbox: dict[str, Any] | None = None,
        log_max_bytes: int = 1024 * logcap.MIB,
    ) -> None:
        ray: Any = importlib.import_module("ray")  # Ray's type hints are partial: use it as Any
        ray.cloudpickle.register_pickle_by_value(host_module)  # nodes need no fairpool install
        ray.cloudpickle.register_pickle_by_value(sandbox_package)
        #: settings of the sandbox on the nodes (``env_passthrough``, ``image_pull``,
        #: ``mount_roots``, ``pids_limit``)
        self.sandbox = dict(sandbox or {})
        self.log_max_bytes = log_max_bytes
        self._ray = ray
        self._host_cls = ray.remote(num_cpus=0, num_gpus=0, max_concurrency=4,
                                    max_restarts=0)(host_module.WorkerHost)
        self.gpu_resource = gpu_resource
        self.long_poll_s = long_poll_s
        self.refresh_s = refresh_s
        self.idle_host_s = idle_host_s
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._lock = threading.RLock()
        self._wakeup = threading.Event()
        self._nodes: dict[str, _Node] = {}  # by Ray node id
        self._by_name: dict[str, str] = {}  # fairpool node name -> Ray node id
        self._probes: dict[str, _Probe] = {}
        self._probe_after: dict[str, float] = {}  # nodes whose last probe failed: retry then
        self._workers: dict[str, _Worker] = {}
        self._idle: dict[str, _Pool] = {}
        self._reports: list[WorkerStatus] = []
        self._closed = False
        self._refreshed = 0.0
        self._refresh()
        deadline = self._clock() + probe_timeout_s
        while self._probes and self._clock() < deadline:
            self._finish_probes(wait_s=0.2)
            self._refresh()
        self._thread = threading.Thread(target=self._pump, name="fairpool-ray", daemon=True)
        self._thread.start()

    # -- the Executor protocol ----------------------------------------------------------------
    def nodes(self) -> list[NodeInfo]:
        with self._lock:
            return [n.info for n in self._nodes.values()]

    def start(self, worker: WorkerSpec) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("RayExecutor is closed")
            if worker.worker_id in self._workers:
                return
            node_id = self._by_name.get(worker.node)
            if node_id is None:
                self._reports.append(WorkerStatus(
                    worker.worker_id, WorkerPhase.LOST,
                    detail=f"node {worker.node} is no longer in the Ray cluster"))
                return
            try:
                path = Path(worker.log_path)
                path.parent.mkdir(parents=True, exist_ok=True)
                out = logcap.CappedLog(path.open("ab", buffering=0), self.log_max_bytes)
            except OSError as exc:
                self._reports.append(WorkerStatus(
                    worker.worker_id, WorkerPhase.EXITED, EXIT_CANNOT_EXECUTE,
                    f"cannot open log file {worker.log_path}: {exc}",
                    failure=base.start_failure(exc)))
                return
            try:
                w = _Worker(worker, node_id, self._take_host(node_id), None, out,
                            sandbox=self.sandbox,
                            simulated=self._nodes[node_id].info.simulated)
                w.ref = w.call(self.long_poll_s)
            except BaseException:
                out.close()
                raise
            self._workers[worker.worker_id] = w
        self._wakeup.set()

    def stop(self, worker_id: str, grace_s: float, reason: str = "") -> None:
        """As the protocol says; the reason is not passed to Ray workers yet (their stop file
        would be on another machine), so they see SIGTERM alone."""
        with self._lock:
            w = self._workers.get(worker_id)
            if w is not None:
                w.stop_sent = True
                w.host.stop.remote(worker_id, grace_s)

    def known(self) -> set[str]:
        with self._lock:
            return set(self._workers) | {r.worker_id for r in self._reports}

    def poll(self) -> list[WorkerStatus]:
        with self._lock:
            out, self._reports = self._reports, []
        return out

    def rendezvous_port(self, node: str) -> int:
        with self._lock:
            node_id = self._by_name.get(node)
            if node_id is None:
                raise ValueError(f"node {node} is no longer in the Ray cluster")
            host = self._take_host(node_id)
        try:
            port = int(self._ray.get(host.free_port.remote(), timeout=30))
        except Exception:
            with contextlib.suppress(Exception):
                self._ray.kill(host, no_restart=True)
            raise
        self._give_back(node_id, host)
        return port

    def utilisation(self) -> dict[str, WorkerUsage]:
        """Not measured on Ray yet: workers run on other machines, whose NVML and report files
        this process cannot read (accounting counts their GPUs as allocated, not measured)."""
        return {}

    def close(self) -> None:
        """Stop the pump and release idle hosts. Running workers keep running until this
        driver disconnects; Ray then removes their hosts, and the workers die with them."""
        with self._lock:
            self._closed = True
        self._wakeup.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(10)
        with self._lock:
            for pool in self._idle.values():
                for host, _ in pool.hosts:
                    with contextlib.suppress(Exception):
                        self._ray.kill(host, no_restart=True)
            self._idle.clear()
            for w in self._workers.values():
                w.log.close()

    # -- hosts --------------------------------------------------------------------------------
    def _take_host(self, node_id: str) -> Any:
        pool = self._idle.get(node_id)
        if pool is not None and pool.hosts:
            return pool.hosts.pop()[0]
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        return self._host_cls.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)).remote()

    def _kill_leftovers(self, node_id: str, pgid: int) -> None:
        """A host died on a node that is still alive: its worker died with it, but processes
        the worker started may not have; kill the worker's process group from a new host."""
        with self._lock:
            if node_id not in self._nodes:
                return  # the node is gone, and its processes with it
            host = self._take_host(node_id)
        host.kill_group.remote(pgid)
        self._give_back(node_id, host)

    def _give_back(self, node_id: str, host: Any) -> None:
        with self._lock:
            if node_id in self._nodes and not self._closed:
                self._idle.setdefault(node_id, _Pool()).hosts.append((host, self._clock()))
                return
        with contextlib.suppress(Exception):
            self._ray.kill(host, no_restart=True)

    # -- the pump -----------------------------------------------------------------------------
    def _pump(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                now = self._clock()
                for w in self._workers.values():
                    if w.ref is None and w.retry_at is not None and now >= w.retry_at:
                        w.ref, w.retry_at = w.call(self.long_poll_s), None
                calls = [(wid, w.ref) for wid, w in self._workers.items() if w.ref is not None]
            try:
                if self._clock() - self._refreshed >= self.refresh_s:
                    self._refresh()
                    self._finish_probes(wait_s=0)
                    self._reap_idle()
                if not calls:
                    self._wakeup.wait(0.05)
                    self._wakeup.clear()
                    continue
                self._collect(calls)
            except Exception:  # the pump must survive a bad round: log it and go on
                log.exception("ray executor pump round failed")
                time.sleep(0.5)

    def _collect(self, calls: list[tuple[str, Any]]) -> None:
        by_ref = {ref: wid for wid, ref in calls}
        refs = list(by_ref)
        ready, rest = self._ray.wait(refs, num_returns=1, timeout=0.02)
        if ready and rest:
            more, _ = self._ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        for ref in ready:
            self._settle(by_ref[ref], ref)

    def _settle(self, wid: str, ref: Any) -> None:
        """Handle the answer of a worker's outstanding call."""
        from ray.exceptions import ActorUnavailableError, RayError, RayTaskError

        with self._lock:
            w = self._workers.get(wid)
            if w is None or w.ref is not ref:
                return
        try:
            result = self._ray.get(ref, timeout=0)
        except ActorUnavailableError:
            # unreachable for now (both calls are idempotent, so ask again a bit later); the
            # worker may still run, so it is lost only once Ray declares its node dead
            now = self._clock()
            if w.unavailable_since is None:
                w.unavailable_since = now
                log.warning("worker %s: its Ray host on %s is unreachable; retrying", wid,
                            w.spec.node)
            with self._lock:
                w.ref, w.retry_at = None, now + 1.0
            return
        except RayTaskError as exc:  # the host's own code failed: the job cannot run like this
            # (what its spec made of the host: the job's, unless many users' jobs meet it)
            self._end(w, WorkerStatus(wid, WorkerPhase.EXITED, EXIT_CANNOT_EXECUTE,
                                      f"the Ray host failed: {_first_line(exc)}",
                                      failure=base.Failure.COMMAND), reuse=False)
            return
        except RayError as exc:  # the host died or could not be placed: its node is likely gone
            self._refresh()  # so that the node is out of the inventory before the loss is seen
            if w.pid is not None:
                self._kill_leftovers(w.node_id, w.pid)
            # on a node still in the cluster the job killed its own host (it runs as the
            # host's uid) or Ray's memory monitor did: the job's fault, not the machine's
            with self._lock:
                alive = w.node_id in self._nodes
            self._end(w, WorkerStatus(wid, WorkerPhase.LOST, detail=f"its Ray host on node "
                                      f"{w.spec.node} is gone: {_first_line(exc)}",
                                      failure=base.Failure.SIGNAL if alive else None),
                      reuse=False)
            return
        w.unavailable_since = None
        if not w.started:
            if "pid" in result:
                w.started = True
                w.pid = result["pid"]
                with self._lock:
                    self._reports.append(WorkerStatus(
                        wid, WorkerPhase.RUNNING,
                        detail=f"pid {result['pid']} on {w.spec.node} ({result['node_ip']})"))
                    w.ref = w.call(self.long_poll_s)
                return
            detail = str(result.get("error", "did not start"))
            with contextlib.suppress(OSError):
                w.log.write(f"fairpool: worker {wid}: {detail}\n".encode())
            failure = (base.Failure.STOPPED if result.get("stopped") else
                       base.errno_failure(result.get("errno")))
            self._end(w, WorkerStatus(wid, WorkerPhase.EXITED, int(result["code"]), detail,
                                      final=bool(result.get("final")), failure=failure),
                      reuse=True)
            return
        data, code, killed = result
        with contextlib.suppress(OSError):
            if w.log.write(data):  # the cap is reached: said now, while the worker runs
                with self._lock:
                    self._reports.append(WorkerStatus(wid, WorkerPhase.RUNNING,
                                                      log_truncated=self.log_max_bytes))
        if code is None:
            with self._lock:
                w.ref = w.call(self.long_poll_s)
            return
        detail, final = exit_detail(int(code), bool(killed)), False
        if w.spec.image is not None and int(code) == 125:
            detail, final = (f"podman could not run image {w.spec.image} on node {w.spec.node} "
                             f"(exit 125: not there, cannot be pulled, or refused; the log says "
                             f"why)"), True
        fault = base.exit_failure(int(code), w.stop_sent or bool(killed))
        self._end(w, WorkerStatus(wid, WorkerPhase.EXITED, int(code), detail, final=final,
                                  failure=fault), reuse=True)

    def _end(self, w: _Worker, status: WorkerStatus, *, reuse: bool) -> None:
        with self._lock:
            if self._workers.pop(status.worker_id, None) is None:
                return
            self._reports.append(status)
        w.log.close()
        if reuse:
            self._give_back(w.node_id, w.host)
        else:
            with contextlib.suppress(Exception):
                self._ray.kill(w.host, no_restart=True)

    # -- inventory ----------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Take Ray's view of its nodes: new ones are probed, gone ones lose their workers."""
        entries = {e["NodeID"]: e for e in self._ray.nodes() if e.get("Alive")}
        self._refreshed = self._clock()
        with self._lock:
            for node_id in list(self._nodes):
                if node_id not in entries:
                    self._node_gone(node_id)
            for node_id, entry in entries.items():
                node = self._nodes.get(node_id)
                if node is not None:
                    if node.entry != entry:
                        self._add(node_id, entry, node.probed)
                elif node_id not in self._probes and self._probe_after.get(node_id, 0) <= (
                        self._clock()):
                    if gpu_count(entry, self.gpu_resource) > 0:
                        host = self._take_host(node_id)
                        self._probes[node_id] = _Probe(host, host.gpus.remote(), self._clock())
                    else:
                        self._add(node_id, entry, [])
            for node_id in list(self._probes):
                if node_id not in entries:
                    probe = self._probes.pop(node_id)
                    with contextlib.suppress(Exception):
                        self._ray.kill(probe.host, no_restart=True)

    def _add(self, node_id: str, entry: dict[str, Any], probed: list[dict[str, Any]]) -> None:
        info = replace(node_info(entry, self.gpu_resource, probed), isolation=RAY_ISOLATION)
        old = self._nodes.get(node_id)
        if old is not None and old.info.name != info.name:
            self._by_name.pop(old.info.name, None)
        clash = self._by_name.get(info.name)
        if clash is not None and clash != node_id:
            log.warning("Ray nodes %s and %s share the name %s; ignoring the second",
                        clash, node_id, info.name)
            return
        self._nodes[node_id] = _Node(node_id, info, entry, probed)
        self._by_name[info.name] = node_id

    def _finish_probes(self, wait_s: float) -> None:
        with self._lock:
            probes = dict(self._probes)
        if not probes:
            return
        ready, _ = self._ray.wait([p.ref for p in probes.values()], num_returns=len(probes),
                                  timeout=wait_s)
        done = set(ready)
        entries = {e["NodeID"]: e for e in self._ray.nodes() if e.get("Alive")}
        for node_id, probe in probes.items():
            expired = self._clock() - probe.since > self.probe_timeout_s
            if probe.ref not in done and not expired:
                continue
            probed: list[dict[str, Any]] | None = None
            if probe.ref in done:
                try:
                    probed = list(self._ray.get(probe.ref, timeout=0))
                except Exception as exc:
                    log.warning("probing the GPUs of Ray node %s failed (%s); the node is "
                                "left out and probed again", node_id, _first_line(exc))
            else:
                log.warning("probing the GPUs of Ray node %s took over %g s; the node is left "
                            "out and probed again", node_id, self.probe_timeout_s)
            with self._lock:
                if self._probes.pop(node_id, None) is None or node_id not in entries:
                    continue
                if probed is not None:
                    self._add(node_id, entries[node_id], probed)
                else:  # probe again in a while
                    self._probe_after[node_id] = self._clock() + PROBE_RETRY_S
            if probed is not None:
                self._give_back(node_id, probe.host)
            else:
                with contextlib.suppress(Exception):
                    self._ray.kill(probe.host, no_restart=True)

    def _node_gone(self, node_id: str) -> None:
        """Called with the lock held: the node left the cluster."""
        node = self._nodes.pop(node_id)
        self._by_name.pop(node.info.name, None)
        self._idle.pop(node_id, None)
        for wid, w in list(self._workers.items()):
            if w.node_id == node_id:
                del self._workers[wid]
                w.log.close()
                self._reports.append(WorkerStatus(
                    wid, WorkerPhase.LOST, detail=f"node {node.info.name} left the Ray cluster"))
        log.warning("Ray node %s (%s) left the cluster", node.info.name, node_id)

    def _reap_idle(self) -> None:
        now = self._clock()
        with self._lock:
            stale = []
            for pool in self._idle.values():
                keep = [(h, t) for h, t in pool.hosts if now - t < self.idle_host_s]
                stale += [h for h, t in pool.hosts if now - t >= self.idle_host_s]
                pool.hosts = keep
        for host in stale:
            with contextlib.suppress(Exception):
                self._ray.kill(host, no_restart=True)


#: what a Ray node enforces: a clean environment and, for jobs with an image, a container; the
#: workers run as the account of the node's raylet
RAY_ISOLATION: dict[str, Any] = {
    "level": "none", "run_as": "ray",
    "missing": ["an account per job (workers run as the Ray node's own account and are not "
                "isolated from one another; give jobs an image to run them in containers)",
                "cgroups (the memory and CPU requests are not enforced on Ray nodes)"],
    "simulated_devices": False, "containers": True}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
