"""CLI commands of per-project webhooks: ``fairpool webhook add|list|remove|deliveries|test``
(a project's managers; see docs/webhooks.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from fairpool.cli.common import JsonOpt, WideOpt
from fairpool.cli.output import Col, call, emit_json, fail, plain, show, table, when
from fairpool.client import Client
from fairpool.client import webhooks as api
from fairpool.schemas.webhooks import DEFAULT_EVENTS, EVENTS

webhook_app = typer.Typer(no_args_is_help=True,
                          help="Webhooks: tell a URL (or Slack) when a project's jobs finish, "
                               "fail, are preempted or requeued, idle, or start late.")


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")


def _events(text: str) -> list[str]:
    names = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in names if e not in EVENTS]
    if not names or unknown:
        fail(f"--events {text!r}: give a comma-separated list of {', '.join(EVENTS)}")
    return names


@webhook_app.command("add")
def add(
    project: Annotated[str, typer.Argument(help="the project whose jobs it hears of")],
    url: Annotated[str, typer.Argument(help="where notifications are POSTed (http or https)")],
    events: Annotated[str, typer.Option(help=f"comma-separated, of {', '.join(EVENTS)}")
                      ] = ",".join(DEFAULT_EVENTS),
    format: Annotated[str, typer.Option(
        "--format", help="json (fairpool's payload) or slack (a Slack incoming webhook)")
        ] = "json",
    secret: Annotated[str | None, typer.Option(
        help="the signing secret (at least 16 characters; other users of this machine may "
             "see it in the process list); default: one the server makes")
        ] = None,
    min_wait: Annotated[float, typer.Option(
        help="started: only for jobs that waited at least this many seconds")] = 60.0,
    description: Annotated[str, typer.Option(help="what it is for")] = "",
    as_json: Annotated[bool, typer.Option(
        "--json", help="print the webhook and its secret as JSON")] = False,
) -> None:
    """Add a webhook; its signing secret is printed once and cannot be shown again."""
    if format not in ("json", "slack"):
        fail(f"--format {format!r}: use json or slack")
    chosen = _events(events)
    with Client() as c:
        made = call(lambda: api.add(c, project, url, events=chosen, format=format,
                                    secret=secret, min_wait_s=min_wait,
                                    description=description))
    if as_json:
        emit_json(made)
        return
    plain(f"webhook {made.id} of project {made.project}: {made.url} ({', '.join(made.events)}; "
          f"{made.format}); its signing secret follows: store it now, it is not shown again",
          stderr=True)
    plain(made.secret)


@webhook_app.command("list")
def list_webhooks(project: str, as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """A project's webhooks (never their secrets, nor all of their URLs)."""
    with Client() as c:
        items = call(lambda: api.list_all(c, project))
    if as_json:
        emit_json(items)
        return
    table(f"webhooks of {project}", [
        Col("id", "id"), Col("url", "text"), Col("events", "wrap"), Col("format", "id"),
        Col("min wait s", "num", drop=2), Col("description", "text", drop=1),
        Col("by", "id", drop=3), Col("created", "id", drop=4)], [
        [h.id, h.url, ",".join(h.events), h.format, f"{h.min_wait_s:g}", h.description,
         h.created_by, when(h.created_at)] for h in items], wide=wide)


@webhook_app.command("remove")
def remove(project: str, webhook_id: str) -> None:
    """Delete a webhook and its deliveries (pending ones are not sent)."""
    with Client() as c:
        gone = call(lambda: api.remove(c, project, webhook_id))
    show(f"webhook {gone.id} of project {gone.project} ({gone.url}) removed")


@webhook_app.command("deliveries")
def deliveries(
    project: str, webhook_id: str,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(help="the most shown, newest first")] = 50,
    as_json: JsonOpt = False, wide: WideOpt = False,
) -> None:
    """What a webhook was sent, newest first: state, attempts, last error."""
    if status is not None and status not in ("pending", "delivered", "failed"):
        fail(f"--status {status!r}: use pending, delivered or failed")
    if not 1 <= limit <= 1000:
        fail("--limit: give 1 to 1000")
    with Client() as c:
        items = call(lambda: api.deliveries(c, project, webhook_id, status, limit))
    if as_json:
        emit_json(items)
        return
    table(f"deliveries of webhook {webhook_id}", [
        Col("id", "id"), Col("event", "id"), Col("of", "id"), Col("status", "id"),
        Col("attempts", "num"), Col("created", "id", drop=2), Col("next", "id", drop=1),
        Col("last error", "wrap")], [
        [d.id, d.event, (f"array {d.array_id}" if d.array_id else d.job_id or ""),
         d.status, str(d.attempts), when(d.created_at), when(d.next_at), d.last_error or ""]
        for d in items], wide=wide)


@webhook_app.command("test")
def send_test(project: str, webhook_id: str, as_json: JsonOpt = False) -> None:
    """Send a test notification now and say whether it was delivered (exit 1 if not)."""
    with Client() as c:
        done = call(lambda: api.send_test(c, project, webhook_id))
    if as_json:
        emit_json(done)
    elif done.status == "delivered":
        show(f"test delivery {done.id} delivered (HTTP {done.response_code})")
    if done.status != "delivered":
        retry = (f"; retried, see `fairpool webhook deliveries {project} {webhook_id}`"
                 if done.status == "pending" else "")
        fail(f"test delivery {done.id} was not delivered: {done.last_error}{retry}")
