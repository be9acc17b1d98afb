"""Waiting for jobs, and a small handle on one job.

``poll_delays`` is the backoff every wait uses (0.2 s, growing by half each time, at most
2 s); ``exit_status`` is what ``fairpool wait`` exits with for a finished job:

- 0: it succeeded;
- a failed job: its own exit code when that is 1..255 and not one of the two codes kept for
  the cases below; a worker killed by signal N: 128 + N, as a shell reports it; a failure with
  no code of its own (lost, never started), or whose own code is 124 or 125: 1;
- 125: it was cancelled (124 is ``--timeout``, as timeout(1) has it); neither code is ever
  a failed job's, so a script can tell the three cases apart.

``Job`` wraps a ``JobOut`` with what one does to a job: ``refresh``, ``wait``, ``cancel``,
``logs``, ``explain``, ``events``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from fairpool.domain.states import FINISHED_VALUES
from fairpool.schemas.jobs import EventOut, ExplainOut, JobOut

if TYPE_CHECKING:
    from fairpool.client.jobs import JobsApi

T = TypeVar("T")
#: what ``fairpool wait`` exits with when its --timeout passed (as timeout(1) does)
TIMED_OUT = 124
#: what it exits with when the first job that did not succeed was cancelled
CANCELLED = 125
FIRST_DELAY, LAST_DELAY, GROWTH = 0.2, 2.0, 1.5


def poll_delays(first: float = FIRST_DELAY, last: float = LAST_DELAY) -> Iterator[float]:
    """0.2, 0.3, 0.45, … seconds, at most 2 each: quick for short jobs, light for long ones."""
    delay = first
    while True:
        yield delay
        delay = min(last, delay * GROWTH)


def finished(state: str) -> bool:
    return state in FINISHED_VALUES


def exit_status(job: JobOut) -> int:
    """The exit status ``fairpool wait`` gives for the finished ``job`` (see the module)."""
    if job.state == "succeeded":
        return 0
    if job.state == "cancelled":
        return CANCELLED
    code = job.exit_code
    if code is not None and code < 0:
        code = 128 - code  # killed by signal -code
    if code is None or not 1 <= code <= 255 or code in (TIMED_OUT, CANCELLED):
        return 1
    return code


def poll_until(read: Callable[[], T], done: Callable[[T], bool], timeout: float | None,
               what: str) -> T:
    """``read()`` until ``done`` says so, with the backoff; TimeoutError naming ``what`` and
    how it stood once ``timeout`` seconds passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for delay in poll_delays():
        value = read()
        if done(value):
            return value
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what} did not finish within {timeout:g} s")
            delay = min(delay, left)
        time.sleep(delay)
    raise AssertionError("unreachable")  # poll_delays never ends


class Job:
    """One job and what one does to it; ``info`` is the ``JobOut`` last read.

        job = client.job_handle(client.submit(project="vision", command=["python", "t.py"]))
        done = job.wait(timeout=3600)   # TimeoutError if it runs longer
        print(done.state, done.exit_code, job.logs(tail=20))
    """

    def __init__(self, client: JobsApi, info: JobOut) -> None:
        self.client = client
        self.info = info

    def __repr__(self) -> str:
        return f"Job({self.info.id!r}, state={self.info.state!r})"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        """The state when last read (``refresh`` reads it again)."""
        return self.info.state

    def refresh(self) -> JobOut:
        self.info = self.client.job(self.info.id)
        return self.info

    def wait(self, timeout: float | None = None) -> JobOut:
        """Until the job has finished (succeeded, failed or cancelled); TimeoutError after
        ``timeout`` seconds."""
        self.info = self.client.wait(self.info.id, timeout)
        return self.info

    def cancel(self) -> JobOut:
        self.info = self.client.cancel(self.info.id)
        return self.info

    def logs(self, rank: int = 0, attempt: int | None = None, *, tail: int | None = None
             ) -> str:
        return self.client.logs(self.info.id, rank, attempt, tail=tail)

    def explain(self) -> ExplainOut:
        return self.client.explain(self.info.id)

    def events(self) -> list[EventOut]:
        return self.client.events(self.info.id)
