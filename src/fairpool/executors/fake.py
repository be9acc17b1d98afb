"""An in-memory executor for unit tests of control loops: no processes, the test decides when
workers finish or vanish.

``start`` records the spec and the next ``poll`` reports RUNNING; ``finish`` / ``lose`` make the
next poll report EXITED / LOST; ``stop`` records ``(worker_id, grace_s)`` and, unless the worker is
in ``ignore_term``, the next poll reports EXITED with ``-15`` (SIGTERM).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from fairpool.executors.base import NodeInfo, WorkerPhase, WorkerSpec, WorkerStatus
from fairpool.executors.utilisation import WorkerUsage


class FakeExecutor:
    """Implements :class:`fairpool.executors.base.Executor` in memory (not thread-safe)."""

    def __init__(self, nodes: Sequence[NodeInfo] = ()) -> None:
        self._nodes = list(nodes)
        self.started: dict[str, WorkerSpec] = {}  # every worker ever started, by id
        self.stopped: list[tuple[str, float]] = []  # every stop call, in order
        self.ignore_term: set[str] = set()  # workers that survive stop (until finish/lose)
        self.closed = False
        self._ports = 0
        self._live: set[str] = set()  # started, end not yet reported
        self._unreported: list[str] = []  # started, RUNNING not yet reported
        self._ends: dict[str, WorkerStatus] = {}  # ends the next poll reports
        self.usage: dict[str, WorkerUsage] = {}  # readings utilisation() returns (if live)

    def nodes(self) -> list[NodeInfo]:
        return list(self._nodes)

    def set_nodes(self, nodes: Sequence[NodeInfo]) -> None:
        """Change the inventory (nodes join or leave)."""
        self._nodes = list(nodes)

    def set_utilisation(self, worker_id: str, util: float, simulated: bool = True) -> None:
        self.usage[worker_id] = WorkerUsage(util, None, simulated)

    def utilisation(self) -> dict[str, WorkerUsage]:
        return {w: u for w, u in self.usage.items() if w in self._live}

    def rendezvous_port(self, node: str) -> int:
        self._ports += 1
        return 29500 + self._ports

    @property
    def running(self) -> set[str]:
        """Workers started whose end has not been reported by poll yet."""
        return set(self._live)

    def known(self) -> set[str]:
        return set(self._live)

    def start(self, worker: WorkerSpec) -> None:
        if worker.worker_id in self._live:
            return
        self.started[worker.worker_id] = worker
        self._live.add(worker.worker_id)
        self._unreported.append(worker.worker_id)

    def _end(self, status: WorkerStatus) -> None:
        if status.worker_id not in self._live:
            raise KeyError(f"worker {status.worker_id!r} is not running in this FakeExecutor")
        self._ends.setdefault(status.worker_id, status)  # the first end wins

    def finish(self, worker_id: str, exit_code: int = 0) -> None:
        """The worker exits with ``exit_code``; the next poll reports it."""
        self._end(WorkerStatus(worker_id, WorkerPhase.EXITED, exit_code))

    def lose(self, worker_id: str) -> None:
        """The worker vanishes; the next poll reports it LOST."""
        self._end(WorkerStatus(worker_id, WorkerPhase.LOST, detail="lost"))

    def stop(self, worker_id: str, grace_s: float, reason: str = "") -> None:
        self.stopped.append((worker_id, grace_s))
        if worker_id in self._live and worker_id not in self.ignore_term:
            self._end(WorkerStatus(worker_id, WorkerPhase.EXITED, -int(signal.SIGTERM),
                                   "killed by SIGTERM"))

    def poll(self) -> list[WorkerStatus]:
        """RUNNING for workers started since the last poll, then the ends (each once)."""
        out = [WorkerStatus(wid, WorkerPhase.RUNNING) for wid in self._unreported]
        self._unreported.clear()
        out.extend(self._ends.values())
        self._live.difference_update(self._ends)
        self._ends.clear()
        return out

    def close(self) -> None:
        self.closed = True
