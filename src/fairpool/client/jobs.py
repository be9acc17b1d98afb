"""The SDK's job operations: submit a job, an array or a sweep (or only check one: a dry run),
list, show, cancel (one, an array, many at once), wait, explain, events and logs, and resolve
what people call a job (an id prefix, a name, ``ARRAY:INDEX``) to its id.

A submission without a ``workdir`` runs in the caller's current directory, as the CLI's do."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError

from fairpool.client.handle import Job, finished, poll_until
from fairpool.client.http import (
    FairpoolError,
    Transport,
    array_path,
    build,
    error_text,
    job_path,
)
from fairpool.schemas.arrays import (
    ArrayOut,
    ArraySubmit,
    BulkCancel,
    BulkCancelOut,
    DryRunOut,
    RefOut,
)
from fairpool.schemas.jobs import EventOut, ExplainOut, JobOut, JobSubmit, MountSpec, parse_mount

S = TypeVar("S", bound=JobSubmit)
#: the fields that make a submission an array
ARRAY_FIELDS = ("indices", "max_running", "params")


def _mount(m: str | MountSpec) -> MountSpec:
    if isinstance(m, MountSpec):
        return m
    try:
        return parse_mount(m)
    except ValidationError as exc:
        raise FairpoolError("; ".join(e["msg"].removeprefix("Value error, ")
                                      for e in exc.errors()), 422) from None
    except ValueError:
        raise FairpoolError(f"mount {m!r}: write SRC:DST or SRC:DST:ro", 422) from None


def request(kind: type[S], spec: JobSubmit | None, image: str | None,
            mounts: Sequence[str | MountSpec] | None, fields: dict[str, Any]) -> S:
    """``spec`` (as a ``kind``), or a ``kind`` made of ``fields``, with ``image``, ``mounts``
    and ``fields`` replacing what the spec had, and the caller's directory as the workdir when
    none is given."""
    extra: dict[str, Any] = dict(fields)
    if image is not None:
        extra["image"] = image
    if mounts is not None:
        extra["mounts"] = [_mount(m) for m in mounts]
    if spec is None:
        body = build(kind, **extra)
    elif extra or not isinstance(spec, kind):
        body = build(kind, **{**spec.model_dump(exclude_unset=True), **extra})
    else:
        body = spec
    if body.workdir is None:
        body = body.model_copy(update={"workdir": os.getcwd()})
    return body


@dataclass(frozen=True)
class LogPage:
    """Bytes ``offset`` to ``next_offset`` of a log that had ``size`` bytes when read."""

    data: bytes
    offset: int
    next_offset: int
    size: int

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _log_params(rank: int, attempt: int | None, tail: int | None, offset: int | None,
                limit: int | None) -> dict[str, str | int]:
    given = {"attempt": attempt, "tail": tail, "offset": offset, "limit": limit}
    return {"rank": rank, **{k: v for k, v in given.items() if v is not None}}


def _given(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


class JobsApi(Transport):
    # -- submitting ---------------------------------------------------------------------------
    def submit(self, spec: JobSubmit | None = None, *, image: str | None = None,
               mounts: Sequence[str | MountSpec] | None = None, **fields: Any) -> JobOut:
        """Submit ``spec``, or a job made of ``fields``; ``image`` runs its workers in that
        OCI image, ``mounts`` binds host paths into it ("SRC:DST", "SRC:DST:ro" or
        MountSpec), each given here replacing the spec's. Without a ``workdir`` the job
        starts in this process's current directory. ``after``, ``after_any`` and
        ``after_failed`` take exact job or array ids (see :meth:`resolve`)."""
        body = request(JobSubmit, spec, image, mounts, fields)
        return self._send("POST", "/api/v1/jobs", body, JobOut)

    def submit_array(self, spec: ArraySubmit | JobSubmit | None = None, *,
                     image: str | None = None, mounts: Sequence[str | MountSpec] | None = None,
                     **fields: Any) -> ArrayOut:
        """Submit a job array or sweep in one request: ``indices`` ("0-99", "0-99:2",
        "1,3,5-7"), ``max_running`` (at most this many tasks hold resources at once) and/or
        ``params`` (one dict of parameters per task, given to it as environment variables);
        otherwise as :meth:`submit`."""
        body = request(ArraySubmit, spec, image, mounts, fields)
        return self._send("POST", "/api/v1/arrays", body, ArrayOut)

    def dry_run(self, spec: JobSubmit | None = None, **fields: Any) -> DryRunOut:
        """Check a job or an array (a spec, or ``fields`` as :meth:`submit` and
        :meth:`submit_array` take them) against the pool as it is now: the request with the
        server's defaults, whether and where it would fit, and what its quota says. Nothing
        is written."""
        is_array = isinstance(spec, ArraySubmit) or any(f in fields for f in ARRAY_FIELDS)
        body = request(ArraySubmit if is_array else JobSubmit, spec, None, None, fields)
        return self._send("POST", "/api/v1/jobs/dry-run", body, DryRunOut)

    # -- reading ------------------------------------------------------------------------------
    def jobs(self, project: str | None = None, state: str | None = None, limit: int = 200, *,
             user: str | None = None, array: str | None = None, tasks: bool = True
             ) -> list[JobOut]:
        """Jobs, newest first: of ``project``, in ``state``, submitted by ``user``, the tasks
        of ``array`` only; ``tasks=False`` leaves array tasks out."""
        params = {"limit": limit, **_given(project=project or None, state=state or None,
                                           user=user, array=array)}
        if not tasks:
            params["tasks"] = "false"
        return self._get("/api/v1/jobs", list[JobOut], params=params)

    def job(self, job_id: str) -> JobOut:
        return self._get(job_path(job_id), JobOut)

    def job_handle(self, job: str | JobOut) -> Job:
        """A :class:`Job` for ``job``: a JobOut, an id, or any reference :meth:`resolve`
        takes (a job's)."""
        if isinstance(job, JobOut):
            return Job(self, job)
        ref = self.resolve(job)
        if ref.kind != "job":
            raise FairpoolError(f"{job!r} is array {ref.id}, not a job: use "
                                f"Client.array or give ARRAY:INDEX", 400)
        return Job(self, self.job(ref.id))

    def resolve(self, ref: str) -> RefOut:
        """What ``ref`` names: a job or array id, a unique id prefix (at least 3
        characters), ``ARRAY:INDEX``, or a job or array name. FairpoolError 404 when it
        names nothing, 409 (listing the matches) when it names several."""
        return self._get("/api/v1/resolve", RefOut, params={"ref": ref})

    def events(self, job_id: str) -> list[EventOut]:
        return self._get(f"{job_path(job_id)}/events", list[EventOut])

    def explain(self, job_id: str) -> ExplainOut:
        return self._get(f"{job_path(job_id)}/explain", ExplainOut)

    # -- arrays -------------------------------------------------------------------------------
    def arrays(self, project: str | None = None, user: str | None = None, limit: int = 200
               ) -> list[ArrayOut]:
        """Arrays, newest first, each with its tasks counted by state."""
        params = {"limit": limit, **_given(project=project or None, user=user)}
        return self._get("/api/v1/arrays", list[ArrayOut], params=params)

    def array(self, array_id: str) -> ArrayOut:
        return self._get(array_path(array_id), ArrayOut)

    def array_tasks(self, array_id: str, state: str | None = None, limit: int = 1000
                    ) -> list[JobOut]:
        """The tasks of an array, by index."""
        return self._get(f"{array_path(array_id)}/tasks", list[JobOut],
                         params={"limit": limit, **_given(state=state or None)})

    def cancel_array(self, array_id: str) -> ArrayOut:
        """Cancel every task of the array that has not finished."""
        return self._send("POST", f"{array_path(array_id)}/cancel", None, ArrayOut)

    # -- cancelling and waiting ---------------------------------------------------------------
    def cancel(self, job_id: str) -> JobOut:
        return self._send("POST", f"{job_path(job_id)}/cancel", None, JobOut)

    def cancel_many(self, spec: BulkCancel | None = None, **filters: Any) -> BulkCancelOut:
        """Cancel the jobs ``spec`` (or ``filters``: ids, project, state, array, user) names,
        among those this caller may cancel; ``dry_run=True`` only says which it would."""
        body = spec if spec is not None and not filters else build(BulkCancel, **{
            **(spec.model_dump() if spec is not None else {}), **filters})
        return self._send("POST", "/api/v1/jobs/cancel", body, BulkCancelOut)

    def wait(self, job_id: str, timeout: float | None = None) -> JobOut:
        """The job once it has finished (succeeded, failed or cancelled), polled with a
        backoff from 0.2 to 2 s; TimeoutError after ``timeout`` seconds."""
        return poll_until(lambda: self.job(job_id), lambda j: finished(j.state), timeout,
                          f"job {job_id}")

    def wait_array(self, array_id: str, timeout: float | None = None) -> ArrayOut:
        """The array once every task has finished; TimeoutError after ``timeout`` s."""
        return poll_until(lambda: self.array(array_id), array_done, timeout,
                          f"array {array_id}")

    # -- logs ---------------------------------------------------------------------------------
    def logs(self, job_id: str, rank: int = 0, attempt: int | None = None, *,
             tail: int | None = None, offset: int | None = None, limit: int | None = None
             ) -> str:
        """A worker's log (rank ``rank``, the last attempt unless ``attempt``): all of it, its
        last ``tail`` lines, or ``limit`` bytes from byte ``offset``."""
        return self.log_page(job_id, rank, attempt, tail=tail, offset=offset,
                             limit=limit).text

    def log_page(self, job_id: str, rank: int = 0, attempt: int | None = None, *,
                 tail: int | None = None, offset: int | None = None, limit: int | None = None
                 ) -> LogPage:
        """As :meth:`logs`, with where the bytes start and end in the log: read on with
        ``offset=page.next_offset``."""
        resp = self._request("GET", f"{job_path(job_id)}/logs", params=_log_params(
            rank, attempt, tail, offset, limit))
        return LogPage(resp.content, *(int(resp.headers.get(h, d)) for h, d in (
            ("X-Log-Offset", 0), ("X-Log-Next-Offset", len(resp.content)),
            ("X-Log-Size", len(resp.content)))))

    def stream_logs(self, job_id: str, rank: int = 0, attempt: int | None = None, *,
                    tail: int | None = None, offset: int | None = None,
                    limit: int | None = None, follow: bool = False) -> Iterator[bytes]:
        """A worker's log in chunks as they come, never all of it at once; with ``follow``,
        on until the job ends (a broken stream is resumed from the byte it had reached)."""
        params = _log_params(rank, attempt, tail, offset, limit)
        if follow:
            params["follow"] = "true"
        path = f"{job_path(job_id)}/logs"
        for tries in range(1 + 3 * follow):
            at = None
            try:
                with self._http.stream("GET", path, params=params,
                                       timeout=None if follow else self._http.timeout) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise FairpoolError(error_text(resp), resp.status_code)
                    at = int(resp.headers.get("X-Log-Offset", 0))
                    for chunk in resp.iter_bytes():
                        at += len(chunk)
                        yield chunk
                return
            except httpx.HTTPError as exc:
                if at is None or tries == 3 * follow:  # not answering, or resumed enough
                    raise FairpoolError(f"log stream from {self.url} broke: {exc}") from None
                params = {k: v for k, v in params.items() if k != "tail"} | {"offset": at}

    def follow_logs(self, job_id: str, rank: int = 0, *, tail: int | None = None,
                    offset: int | None = None) -> Iterator[bytes]:
        """The log as it is written, until the job ends (see :meth:`stream_logs`)."""
        return self.stream_logs(job_id, rank, tail=tail, offset=offset, follow=True)


def array_done(a: ArrayOut) -> bool:
    """Every task of the array has finished."""
    return sum(n for state, n in a.counts.items() if finished(state)) >= a.size
