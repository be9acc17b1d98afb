"""How ``fairpool up`` stops on Ctrl-C (SIGINT) or SIGTERM, and what it says as it does.

Both signals end the API gracefully (uvicorn hands them back once it has shut down) and then
the control loop; the local executor's workers run in sessions of their own under a
supervisor (:mod:`fairpool.executors.adopt`), so they keep running and the next start adopts
them. Workers on Ray end with the server (its driver) and the next start requeues their jobs
as lost. :func:`left_running` says which, counted after the loop has stopped.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from sqlalchemy import select

from fairpool.config import ServerSettings
from fairpool.domain.states import STARTED_VALUES
from fairpool.domain.words import plural
from fairpool.executors import adopt
from fairpool.store.db import Store
from fairpool.store.models import JobRow
from fairpool.store.workers import ended

#: the exit status of a process ended by SIGTERM, as a shell reports it
TERMINATED = 128 + signal.SIGTERM


def _terminated(_sig: int, _frame: FrameType | None) -> None:
    raise SystemExit(TERMINATED)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind ``serve`` (its ``finally`` stops the loop and says what keeps
    running) instead of ending the process where uvicorn raises it again after its own
    graceful shutdown. Only the main thread may set handlers; elsewhere nothing changes."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def _ignored(_sig: int, _frame: FrameType | None) -> None:
    """Ctrl-C in a terminal reaches the whole process group; the control loop is stopped by
    the API process instead (a handler, not SIG_IGN: an ignored signal would be inherited by
    every worker the loop starts)."""


def loop_signals() -> None:
    """The control loop's process: Ctrl-C is left to the API process, which stops the loop
    through its ``stop`` event; SIGTERM (a ``kill`` of the whole group, a service manager)
    unwinds the loop instead of ending the process in the middle of a wait on the shared
    events: a process that dies there leaves them half-held, and the API process's next
    ``set()`` would wait for it for ever."""
    signal.signal(signal.SIGINT, _ignored)
    signal.signal(signal.SIGTERM, _terminated)


def _jobs(worker_ids: list[str]) -> int:
    """Jobs of the worker ids ``JOB.ATTEMPT.RANK``."""
    return len({w.split(".", 1)[0] for w in worker_ids})


def left_running(settings: ServerSettings) -> str:
    """One line on what goes on once this server has stopped: the local workers still
    running (found in /proc, as the next start finds them), or the workers that end with the
    server on Ray (what the store says was started)."""
    if settings.ray_address is not None:
        store = Store(settings.database_url())
        try:
            with store.session() as s:
                rows = s.execute(select(JobRow.placement).where(
                    JobRow.state.in_(STARTED_VALUES))).scalars().all()
        finally:
            store.close()
        ray = [w["worker_id"] for placement in rows for w in placement or () if not ended(w)]
        if not ray:
            return "stopping: no workers running"
        return (f"stopping: {plural(len(ray), 'worker')} of {plural(_jobs(ray), 'job')} on Ray "
                f"end with this server; the next start (fairpool up) requeues "
                f"{'it' if _jobs(ray) == 1 else 'them'}")
    local = sorted(adopt.running_supervisors(settings.data_dir / "run"))
    if not local:
        return "stopping: no workers running"
    verb = "keeps" if len(local) == 1 else "keep"
    return (f"stopping: {plural(len(local), 'worker')} of {plural(_jobs(local), 'job')} {verb} "
            f"running and will be adopted at the next start (fairpool up)")
