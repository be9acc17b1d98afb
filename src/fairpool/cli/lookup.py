"""What the job commands share: turning what people type (an id, a unique id prefix, a name,
``ARRAY:INDEX``) into the job or array it names, through the server's ``/resolve``, and how
runtimes and an array's counts are written."""

from __future__ import annotations

import time

from fairpool.cli.output import call, fail
from fairpool.client import Client
from fairpool.client.http import JOB_ID
from fairpool.schemas.arrays import ArrayOut, RefOut
from fairpool.schemas.jobs import JobOut

#: the order an array's counts are told in: what holds resources, what waits, what ended
STATE_ORDER = ("running", "starting", "admitted", "stopping", "queued", "requeued",
               "succeeded", "failed", "cancelled")


def target(c: Client, ref: str) -> RefOut:
    """What ``ref`` names (a job or an array); the server's one-line error when it names
    nothing, or several (it lists them)."""
    return call(lambda: c.resolve(ref))


def job_id(c: Client, ref: str) -> str:
    """The id of the job ``ref`` names: a full id as it is, anything else resolved; an array
    is refused with what to give instead."""
    if JOB_ID.fullmatch(ref):
        return ref
    found = target(c, ref)
    if found.kind == "array":
        fail(f"{ref!r} is array {found.id} ({found.name or 'no name'}): give one of its tasks "
             f"as {found.id}:INDEX")
    return found.id


def duration(seconds: float) -> str:
    """``35s``, ``4m05s``, ``1h02m``, ``3d04h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def runtime(j: JobOut, now: float | None = None) -> str:
    """How long the job has run: until now while it runs, until it finished once it has;
    "" if it never started."""
    if j.started_at is None:
        return ""
    end = j.finished_at if j.finished_at is not None else (now or time.time())
    return duration(end - j.started_at)


def counts(a: ArrayOut) -> str:
    """``12 running · 30 queued · 958 succeeded``."""
    order = [s for s in STATE_ORDER if a.counts.get(s)]
    order += sorted(s for s in a.counts if s not in STATE_ORDER and a.counts[s])
    return " · ".join(f"{a.counts[s]} {s}" for s in order)


def tasks_of(c: Client, array_id: str, state: str | None = None, limit: int = 1000
             ) -> list[JobOut]:
    """An array's tasks by index (in ``state``), or the command ends with the one-line error."""
    return call(lambda: c.array_tasks(array_id, state, limit))
