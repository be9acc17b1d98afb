"""CLI commands of access: log in, tokens, roles, the audit log, project secrets, users' Unix
accounts, TLS."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from fairpool.cli.common import JsonOpt, WideOpt
from fairpool.cli.output import Col, call, emit_json, fail, plain, show, table, when
from fairpool.client import Client
from fairpool.client.settings import write_client_config
from fairpool.domain.words import plural

token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
role_app = typer.Typer(no_args_is_help=True, help="Who holds which role where.")
secret_app = typer.Typer(no_args_is_help=True, help="Per-project environment secrets.")
tls_app = typer.Typer(no_args_is_help=True, help="TLS certificates.")
user_app = typer.Typer(no_args_is_help=True,
                       help="Users (admins): the Unix account each one's jobs run as (run_as = "
                            "user), and disabling them.")


def register(app: typer.Typer) -> None:
    app.command()(login)
    app.command()(whoami)
    app.command(name="audit")(audit_log)
    app.add_typer(token_app, name="token")
    app.add_typer(role_app, name="role")
    app.add_typer(secret_app, name="secret")
    app.add_typer(tls_app, name="tls")
    app.add_typer(user_app, name="user")


def login(
    token: Annotated[str, typer.Option(help="your API token (fp_…)", prompt=True,
                                       hide_input=True)],
    url: Annotated[str | None, typer.Option(help="the server, e.g. https://pool:8765")] = None,
    ca: Annotated[Path | None, typer.Option(
        help="CA certificate to trust for this server (PEM)")] = None,
) -> None:
    """Check a token against the server and keep it (with the URL) in the client config."""
    ca_path = str(ca.expanduser().resolve()) if ca is not None else None
    with Client(url=url, token=token, ca=ca_path) as c:
        me = call(c.whoami)
        path = write_client_config(c.url, token=token, ca=ca_path)
    show(f"logged in to {c.url} as {me.user}; saved in {path}")


def whoami(as_json: JsonOpt = False) -> None:
    """Who the server takes you for, and your roles."""
    with Client() as c:
        me = call(c.whoami)
    if as_json:
        emit_json(me)
        return
    roles = ", ".join(f"{b['role']}@{b['scope']}" for b in me.bindings) or "no roles"
    show(f"{me.user} (via {me.via}): {roles}")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="whose token (yours, unless you are an admin)")],
    expires_days: Annotated[float, typer.Option(help="lifetime in days")] = 90,
    no_expiry: Annotated[bool, typer.Option(
        help="a token that never expires (admins; anyone else gets the longest allowed)")
        ] = False,
    description: Annotated[str, typer.Option(help="what it is for")] = "",
    as_json: Annotated[bool, typer.Option(
        "--json", help="print the token and its metadata as JSON")] = False,
) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    if expires_days <= 0:
        fail("--expires-days must be above 0 (or use --no-expiry)")
    with Client() as c:
        made = call(lambda: c.create_token(user, None if no_expiry else expires_days * 86400,
                                           description))
    if as_json:
        emit_json(made)
        return
    expiry = "never expires" if made.expires_at is None else (
        f"expires {time.strftime('%Y-%m-%d %H:%M', time.localtime(made.expires_at))}")
    plain(f"token {made.id} for {made.user} ({expiry}); store it now, it is not shown again",
          stderr=True)
    plain(made.token)


@token_app.command("list")
def token_list(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Your tokens (an admin's: everyone's). Only ids are shown, never the tokens."""
    with Client() as c:
        items = call(c.tokens)
    if as_json:
        emit_json(items)
        return
    table("tokens", [Col("id", "id"), Col("user", "id"), Col("description", "text"),
                     Col("created", "id", drop=1), Col("expires", "id"),
                     Col("last used", "id", drop=2), Col("state", "id")], [
        [t.id, t.user, t.description, when(t.created_at),
         "never" if t.expires_at is None else time.strftime(
             "%Y-%m-%d", time.localtime(t.expires_at)), when(t.last_used_at),
         "revoked" if t.revoked_at else ("expired" if t.expires_at and t.expires_at < time.time()
                                         else "active")] for t in items], wide=wide)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token at once."""
    with Client() as c:
        made = call(lambda: c.revoke_token(token_id))
    show(f"token {made.id} of {made.user} revoked")


@role_app.command("grant")
def role_grant(subject: Annotated[str, typer.Argument(help="user, or group:NAME")],
               role: Annotated[str, typer.Argument(
                   help="admin, department-admin, researcher or viewer")],
               scope: Annotated[str, typer.Argument(help="*, a department or a project")]
               ) -> None:
    """Give a user or group a role on the pool, a department or a project."""
    with Client() as c:
        b = call(lambda: c.grant(subject, role, scope))
    show(f"{b.subject} is {b.role} on {b.scope} (binding {b.id})")


@role_app.command("list")
def role_list(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Role bindings you may see: your own and those on scopes you manage."""
    with Client() as c:
        items = call(c.role_bindings)
    if as_json:
        emit_json(items)
        return
    table("role bindings", [Col("id", "num"), Col("subject", "id"), Col("role", "id"),
                            Col("scope", "id"), Col("by", "id", drop=1),
                            Col("created", "id", drop=2)], [
        [str(b.id), b.subject, b.role, b.scope, b.created_by, when(b.created_at)]
        for b in items], wide=wide)


@role_app.command("revoke")
def role_revoke(binding_id: int) -> None:
    """Remove a role binding."""
    with Client() as c:
        b = call(lambda: c.revoke_binding(binding_id))
    show(f"{b.subject} is no longer {b.role} on {b.scope}")


def audit_log(
    actor: Annotated[str | None, typer.Option(help="only this user's actions")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. job.submit, login, quota.update")
                      ] = None,
    outcome: Annotated[str | None, typer.Option(help="ok, denied or failed")] = None,
    since_hours: Annotated[float | None, typer.Option(help="only the last N hours")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """The audit log, newest first (admins only)."""
    since = None if since_hours is None else time.time() - since_hours * 3600
    with Client() as c:
        items = call(lambda: c.audit(actor=actor, action=action, outcome=outcome, since=since,
                                     limit=limit))
    if as_json:
        emit_json(items)
        return
    # at 80 columns the address and the outcome give way (--wide shows them)
    table("audit", [Col("time", "id"), Col("actor", "id"), Col("action", "id"),
                    Col("target", "wrap"), Col("outcome", "id", drop=2), Col("detail", "wrap"),
                    Col("from", "text", drop=1)], [
        [time.strftime("%m-%d %H:%M:%S", time.localtime(a.at)), a.actor, a.action, a.target,
         a.outcome, a.detail, a.address] for a in items], wide=wide)


@secret_app.command("set")
def secret_set(project: str, name: str,
               from_file: Annotated[Path | None, typer.Option(
                   help="read the value from this file (default: standard input)")] = None
               ) -> None:
    """Set a secret: its value is read from stdin or a file, never from the command line."""
    if from_file is not None:
        try:
            value = from_file.read_text()
        except OSError as exc:
            fail(f"cannot read {from_file}: {exc.strerror}")
    elif sys.stdin.isatty():
        value = typer.prompt(f"value of {name}", hide_input=True)
    else:
        value = sys.stdin.read()
    value = value.removesuffix("\n")
    with Client() as c:
        s = call(lambda: c.set_secret(project, name, value))
    show(f"secret {s.name} of project {s.project} set; its workers get it as ${s.name}")


@secret_app.command("list")
def secret_list(project: str, as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """A project's secret names (values are never shown)."""
    with Client() as c:
        items = call(lambda: c.secrets(project))
    if as_json:
        emit_json(items)
        return
    table(f"secrets of {project}", [Col("name", "id"), Col("updated by", "id"),
                                    Col("updated", "id")],
          [[s.name, s.updated_by, when(s.updated_at)] for s in items], wide=wide)


@secret_app.command("delete")
def secret_delete(project: str, name: str) -> None:
    """Delete a secret."""
    with Client() as c:
        s = call(lambda: c.delete_secret(project, name))
    show(f"secret {s.name} of project {s.project} deleted")


@user_app.command("map")
def user_map(user: Annotated[str, typer.Argument(help="the fairpool user (token or SSO name)")],
             account: Annotated[str, typer.Argument(help="the Unix account its jobs run as")]
             ) -> None:
    """Run a user's jobs as a Unix account (with run_as = user); never root."""
    with Client() as c:
        a = call(lambda: c.map_account(user, account))
    show(f"jobs of {a.user} run as Unix account {a.account}")


@user_app.command("unmap")
def user_unmap(user: str) -> None:
    """Remove a user's mapping: its jobs run as the account of its own name again."""
    with Client() as c:
        a = call(lambda: c.unmap_account(user))
    show(f"{a.user} is no longer mapped to {a.account}")


@user_app.command("list")
def user_list(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Users mapped to Unix accounts."""
    with Client() as c:
        items = call(c.accounts)
    if as_json:
        emit_json(items)
        return
    table("user accounts", [Col("user", "id"), Col("account", "id"), Col("by", "id"),
                            Col("since", "id")],
          [[a.user, a.account, a.created_by or "", when(a.created_at)] for a in items],
          wide=wide)


@user_app.command("disable")
def user_disable(user: Annotated[str, typer.Argument(help="the fairpool user (token or SSO "
                                                          "name, e.g. oidc:erin)")]) -> None:
    """Disable a user: its tokens are revoked at once, no new ones can be created for it and
    its SSO logins are refused, until `fairpool user enable`."""
    with Client() as c:
        u = call(lambda: c.disable_user(user))
    show(f"user {u.user} disabled; {plural(u.tokens_revoked, 'token')} revoked")


@user_app.command("enable")
def user_enable(user: str) -> None:
    """Let a disabled user in again (its old tokens stay revoked: give it a new one)."""
    with Client() as c:
        u = call(lambda: c.enable_user(user))
    show(f"user {u.user} enabled; create a new token for it with `fairpool token create "
         f"--user {u.user}` (its old ones stay revoked)")


@user_app.command("disabled")
def user_disabled(as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """The users disabled now."""
    with Client() as c:
        items = call(c.disabled_users)
    if as_json:
        emit_json(items)
        return
    table("disabled users", [Col("user", "id"), Col("by", "id"), Col("since", "id")],
          [[u.user, u.disabled_by or "", when(u.disabled_at)] for u in items], wide=wide)


@secret_app.command("new-key")
def secret_new_key() -> None:
    """Print a new key for FAIRPOOL_SECRET_KEY (servers sharing a database share one key)."""
    from cryptography.fernet import Fernet

    plain(Fernet.generate_key().decode())


@tls_app.command("self-signed")
def tls_self_signed(
    out: Annotated[Path, typer.Option(help="directory for cert.pem and key.pem")],
    host: Annotated[list[str] | None, typer.Option(
        help="names and addresses the certificate is for (repeatable)")] = None,
    days: Annotated[int, typer.Option(min=1, max=3650)] = 365,
) -> None:
    """Make a self-signed certificate for trying TLS: fairpool up --tls-cert --tls-key."""
    from fairpool.tlsgen import self_signed

    hosts = host or ["localhost", "127.0.0.1"]
    try:
        cert, key = self_signed(out.expanduser(), hosts, days)
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror}")
    show(f"wrote {cert} and {key} for {', '.join(hosts)}; clients trust it with "
         f"`fairpool login --ca {cert}` or FAIRPOOL_CA_BUNDLE={cert}")

