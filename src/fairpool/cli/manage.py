"""Managing many jobs: ``fairpool cancel`` (one job at once; several, an array or every job a
filter matches after showing them and asking) and ``fairpool wait`` (until jobs and arrays
end, exiting with their outcome).

``fairpool wait`` exits with 0 when every job (every task of every array) succeeded; else
with the status of the first one, in the order given, that did not (see
``fairpool.client.handle``): a failed job's own exit code (128 + N for signal N; 1 when it has
none, or its own is 124 or 125), 125 for a cancelled one, 124 for one still unfinished when
``--timeout`` passed. An array's status is that of its first task, by index, that did not
succeed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Annotated

import typer
from pydantic import ValidationError

from fairpool.cli.common import JsonOpt
from fairpool.cli.common import client as _client
from fairpool.cli.common import validation as _validation
from fairpool.cli.lookup import counts, duration, target, tasks_of
from fairpool.cli.output import call, emit_json, fail, show, styled
from fairpool.client import Client
from fairpool.client.handle import TIMED_OUT, exit_status, finished, poll_delays
from fairpool.client.jobs import array_done
from fairpool.domain.words import plural
from fairpool.schemas.arrays import MAX_ARRAY_TASKS, BulkCancel, BulkCancelOut, RefOut

#: ids a confirmation lists before it only counts the rest
LISTED = 20


def cancel(
    refs: Annotated[list[str] | None, typer.Argument(
        help="jobs or arrays: ids, id prefixes, names, ARRAY:INDEX")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p",
                                                help="every job of this project")] = None,
    state: Annotated[str | None, typer.Option(help="only jobs in this state")] = None,
    array: Annotated[str | None, typer.Option(help="every task of this array")] = None,
    user: Annotated[str | None, typer.Option(help="every job this user submitted")] = None,
    mine: Annotated[bool, typer.Option("--mine", help="every job I submitted")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a job (its workers get SIGTERM, then SIGKILL after the grace period); several,
    an array, or every job the filters match, after showing which and asking (--yes: at
    once)."""
    if mine and user:
        fail("give --mine or --user, not both", code=2)
    if not refs and project is None and array is None and user is None and not mine:
        fail("name what to cancel: jobs or arrays, or --project, --array, --user or --mine "
             "(with --state to narrow them)", code=2)
    with _client() as c:
        found = [target(c, r) for r in refs or []]
        filters = project is not None or array is not None or user is not None or mine
        if len(found) == 1 and found[0].kind == "job" and not filters and state is None:
            item = call(lambda: c.cancel(found[0].id))
            if as_json:
                emit_json(item)
            else:
                show(f"{item.id}: {item.state}")  # stopping: its workers are being stopped
            return
        if mine:
            user = call(c.whoami).user
        array_id = None if array is None else _array_id(c, array)
        ids = [f.id for f in found if f.kind == "job"]
        for a in (f for f in found if f.kind == "array"):
            ids += [t.id for t in tasks_of(c, a.id, limit=MAX_ARRAY_TASKS)]
        try:
            spec = BulkCancel(ids=ids, project=project, state=state, array=array_id,
                              user=user, dry_run=True)
        except ValidationError as exc:
            fail(_validation(exc))
        if not spec.ids and not filters:  # arrays with no tasks
            fail("nothing to cancel: those arrays have no tasks")
        would = call(lambda: c.cancel_many(spec))
        if not as_json:
            _tell(would)
        if not would.cancelled:
            if would.refused:
                fail(f"nothing cancelled: {_refused(would.refused)}")
            if as_json:
                emit_json(would)
            else:
                show("nothing to cancel")
            return
        if not yes:
            _confirm(len(would.cancelled))
        # exactly what was shown: not what the filters match by now
        done = call(lambda: c.cancel_many(ids=would.cancelled))
    if as_json:
        emit_json(done)
    else:
        show(f"cancelled {plural(len(done.cancelled), 'job')}")


def _array_id(c: Client, ref: str) -> str:
    found = target(c, ref)
    if found.kind != "array":
        fail(f"--array {ref!r} is job {found.id}, not an array")
    return found.id


def _refused(ids: Sequence[str]) -> str:
    return (f"you may not cancel {plural(len(ids), 'job')} (or they do not exist): "
            f"{_listed(ids)}")


def _listed(ids: Sequence[str]) -> str:
    more = f" and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
    return " ".join(ids[:LISTED]) + more


def _tell(would: BulkCancelOut) -> None:
    if would.cancelled:
        show(f"would cancel {plural(len(would.cancelled), 'job')}: {_listed(would.cancelled)}")
    if would.finished:
        show(f"{plural(would.finished, 'job')} already finished")
    if would.refused and would.cancelled:
        show(_refused(would.refused))


def _confirm(count: int) -> None:
    """Ask before cancelling ``count`` jobs; without a terminal to ask on, refuse."""
    if not sys.stdin.isatty():
        fail(f"not cancelling {plural(count, 'job')} without asking, and there is no "
             f"terminal to ask on: add --yes")
    if not typer.confirm(f"cancel {plural(count, 'job')}?", default=False):
        fail("nothing cancelled")


def wait(
    refs: Annotated[list[str], typer.Argument(
        help="jobs or arrays: ids, id prefixes, names, ARRAY:INDEX")],
    timeout: Annotated[float | None, typer.Option(
        help="give up after this many seconds (exit 124)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="print nothing, only exit")] = False,
) -> None:
    """Wait until jobs and arrays end; exit 0 if all succeeded, else with the outcome of the
    first that did not (its exit code, 125 if cancelled, 124 at --timeout)."""
    if timeout is not None and timeout < 0:
        fail("--timeout takes seconds ≥ 0", code=2)
    with _client() as c:
        found = [target(c, r) for r in refs]
        status: dict[int, int] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        delays = poll_delays()
        while True:
            for i, ref in enumerate(found):
                if i not in status:
                    ended = _ended(c, ref, quiet)
                    if ended is not None:
                        status[i] = ended
            if len(status) == len(found):
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                for i, ref in enumerate(found):
                    if i not in status:
                        status[i] = TIMED_OUT
                        if not quiet:
                            show(f"{_named(ref)}: not finished after {timeout:g} s")
                break
            time.sleep(next(delays) if left is None else min(next(delays), left))
    code = next((status[i] for i in range(len(found)) if status[i]), 0)
    raise typer.Exit(code)


def _named(ref: RefOut) -> str:
    kind = "array " if ref.kind == "array" else ""
    return f"{kind}{ref.id}" + (f" {ref.name}" if ref.name else "")


def _ended(c: Client, ref: RefOut, quiet: bool) -> int | None:
    """The exit status of the job or array ``ref`` if it has ended (told unless ``quiet``),
    None while it has not."""
    if ref.kind == "job":
        j = call(lambda: c.job(ref.id))
        if not finished(j.state):
            return None
        if not quiet:
            ran = "" if j.started_at is None or j.finished_at is None else (
                f" after {duration(j.finished_at - j.started_at)}")
            code = f" (exit {j.exit_code})" if j.exit_code is not None else ""
            why = f": {j.reason}" if j.reason and j.state != "succeeded" else ""
            show(f"{_named(ref)}: ", styled(j.state, "bold"), f"{code}{ran}{why}")
        return exit_status(j)
    a = call(lambda: c.array(ref.id))
    if not array_done(a):
        return None
    if not quiet:
        show(f"{_named(ref)}: {counts(a)}")
    if a.counts.get("succeeded", 0) >= a.size:
        return 0
    first = [t for s in ("failed", "cancelled")
             for t in tasks_of(c, a.id, s, 1)]
    if not first:
        return 1
    return exit_status(min(first, key=lambda t: t.array_index or 0))
