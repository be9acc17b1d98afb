"""The Python client: one method per REST operation, typed results, one error type.

    from fairpool.client import Client
    c = Client()     # URL and token from FAIRPOOL_URL/FAIRPOOL_TOKEN or the client config
    job = c.submit(project="vision", command=["python", "train.py"], gpus=1)
    print(c.explain(job.id).reason)
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from fairpool.client.settings import client_ca, client_token, client_url
from fairpool.schemas.access import (
    AccountOut,
    AccountSet,
    AuditOut,
    BindingCreate,
    BindingOut,
    SecretOut,
    SecretSet,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
    WhoAmI,
)
from fairpool.schemas.jobs import EventOut, ExplainOut, JobOut, JobSubmit, MountSpec, parse_mount
from fairpool.schemas.nodes import NodeOut
from fairpool.schemas.queues import ProjectCreate, QueueCreate, QueueOut, QueueUpdate
from fairpool.schemas.usage import UsageOut

T = TypeVar("T")


class FairpoolError(Exception):
    """A request failed; ``message`` says why in one line (from the server when it answered)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def tls_context(ca: str | None) -> ssl.SSLContext:
    """Certificates are always verified: against the system's CAs, plus ``ca`` if given."""
    context = ssl.create_default_context()
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise FairpoolError(f"cannot read the CA bundle {ca}: {exc}") from None
    return context


M = TypeVar("M", bound=BaseModel)


def build(kind: type[M], **fields: Any) -> M:
    """A request model, or a FairpoolError (status 422) naming each invalid field."""
    try:
        return kind.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: "
                             f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise FairpoolError(problems, 422) from None


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


def _error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error") or resp.text)
    except ValueError:
        return resp.text or resp.reason_phrase


def _segment(name: str) -> str:
    """A name as one path segment: '/', '?' or '#' in it must not reach another route."""
    return quote(name, safe="")


JOB_ID = re.compile(r"[0-9a-f]{12}")


def _job_path(job_id: str) -> str:
    """The path of a job: its id checked here, so that whatever else is typed is named in the
    error instead of reaching another route."""
    if not JOB_ID.fullmatch(job_id):
        raise FairpoolError(f"{job_id!r} is not a job id: ids are the 12 hexadecimal "
                            f"characters `fairpool jobs` shows", 400)
    return f"/api/v1/jobs/{job_id}"


class Client:
    def __init__(self, url: str | None = None, timeout: float = 30.0, token: str | None = None,
                 ca: str | None = None) -> None:
        self.url = (url or client_url()).rstrip("/")
        self.token = token if token is not None else client_token()
        # a token HTTP cannot carry (control characters, non-ASCII) fails each request with a
        # FairpoolError, not with an encoding error from httpx or the server's bare 400
        self._bad_token = bool(self.token) and not all(" " <= c <= "~" for c in self.token or "")
        headers = ({"Authorization": f"Bearer {self.token}"}
                   if self.token and not self._bad_token else {})
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers,
                                  verify=tls_context(ca if ca is not None else client_ca()))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if self._bad_token:
            raise FairpoolError("the token has characters no token has (control characters or "
                                "non-ASCII); set FAIRPOOL_TOKEN or run `fairpool login --token "
                                "...` with the token exactly as it was issued", 401)
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise FairpoolError(
                    f"the server at {self.url} has a certificate this client does not trust "
                    f"({exc}); give its CA with FAIRPOOL_CA_BUNDLE or `fairpool login --ca`"
                ) from None
            raise FairpoolError(f"cannot reach the fairpool server at {self.url} ({exc}); "
                                f"is it running? start it with `fairpool up`") from None
        except httpx.InvalidURL as exc:  # e.g. a control character in an id
            raise FairpoolError(f"no request made for {path!r}: {exc}", 400) from None
        except httpx.HTTPError as exc:
            raise FairpoolError(f"cannot reach the fairpool server at {self.url} ({exc}); "
                                f"is it running? start it with `fairpool up`") from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error") or resp.text
            except ValueError:
                message = resp.text or resp.reason_phrase
            if resp.status_code == 401 and not self.token:
                message = (f"{message} (no token: set FAIRPOOL_TOKEN or run "
                           f"`fairpool login --token ...`)")
            raise FairpoolError(str(message), resp.status_code)
        return resp

    def _get(self, path: str, kind: type[T] | Any, **kw: Any) -> T:
        data = self._request("GET", path, **kw).json()
        return TypeAdapter(kind).validate_python(data)  # type: ignore[no-any-return]

    def _send(self, method: str, path: str, body: BaseModel | None, kind: type[T]) -> T:
        payload = None if body is None else body.model_dump(mode="json", exclude_none=True)
        data = self._request(method, path, json=payload).json()
        return TypeAdapter(kind).validate_python(data)

    # -- queues -----------------------------------------------------------------------------
    def create_department(self, spec: QueueCreate) -> QueueOut:
        return self._send("POST", "/api/v1/departments", spec, QueueOut)

    def create_project(self, spec: ProjectCreate) -> QueueOut:
        return self._send("POST", "/api/v1/projects", spec, QueueOut)

    def update_queue(self, name: str, spec: QueueUpdate) -> QueueOut:
        return self._send("PATCH", f"/api/v1/queues/{name}", spec, QueueOut)

    def queues(self) -> list[QueueOut]:
        return self._get("/api/v1/queues", list[QueueOut])

    # -- jobs -------------------------------------------------------------------------------
    def submit(self, spec: JobSubmit | None = None, *, image: str | None = None,
               mounts: Sequence[str | MountSpec] | None = None, **fields: Any) -> JobOut:
        """Submit ``spec``, or a job made of ``fields``; ``image`` runs its workers in that
        OCI image, ``mounts`` binds host paths into it ("SRC:DST", "SRC:DST:ro" or
        MountSpec), each given here replacing the spec's."""
        extra: dict[str, Any] = {}
        if image is not None:
            extra["image"] = image
        if mounts is not None:
            extra["mounts"] = [_mount(m) for m in mounts]
        if spec is None:
            body = build(JobSubmit, **fields, **extra)
        elif extra or fields:
            body = build(JobSubmit, **{**spec.model_dump(exclude_unset=True), **fields,
                                       **extra})
        else:
            body = spec
        return self._send("POST", "/api/v1/jobs", body, JobOut)

    def jobs(self, project: str | None = None, state: str | None = None,
             limit: int = 200) -> list[JobOut]:
        params: dict[str, Any] = {"limit": limit}
        if project:
            params["project"] = project
        if state:
            params["state"] = state
        return self._get("/api/v1/jobs", list[JobOut], params=params)

    def job(self, job_id: str) -> JobOut:
        return self._get(_job_path(job_id), JobOut)

    def cancel(self, job_id: str) -> JobOut:
        return self._send("POST", f"{_job_path(job_id)}/cancel", None, JobOut)

    def events(self, job_id: str) -> list[EventOut]:
        return self._get(f"{_job_path(job_id)}/events", list[EventOut])

    def explain(self, job_id: str) -> ExplainOut:
        return self._get(f"{_job_path(job_id)}/explain", ExplainOut)

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
        resp = self._request("GET", f"{_job_path(job_id)}/logs", params=_log_params(
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
        path = f"{_job_path(job_id)}/logs"
        for tries in range(1 + 3 * follow):
            at = None
            try:
                with self._http.stream("GET", path, params=params,
                                       timeout=None if follow else self._http.timeout) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise FairpoolError(_error_text(resp), resp.status_code)
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

    # -- nodes ------------------------------------------------------------------------------
    def nodes(self) -> list[NodeOut]:
        return self._get("/api/v1/nodes", list[NodeOut])

    def cordon(self, node: str, reason: str = "") -> NodeOut:
        return TypeAdapter(NodeOut).validate_python(self._request(
            "POST", f"/api/v1/nodes/{node}/cordon", json={"reason": reason}).json())

    def uncordon(self, node: str) -> NodeOut:
        return self._send("POST", f"/api/v1/nodes/{node}/uncordon", None, NodeOut)

    def drain(self, node: str) -> tuple[NodeOut, int]:
        data = self._request("POST", f"/api/v1/nodes/{node}/drain").json()
        return NodeOut.model_validate(data["node"]), int(data["jobs_moved"])

    def health(self) -> dict[str, str]:
        return self._get("/health", dict[str, str])

    # -- reports ----------------------------------------------------------------------------
    @staticmethod
    def _range(start: float | None, end: float | None, **params: Any) -> dict[str, Any]:
        bounds = {"from": start, "to": end}
        return {**params, **{k: v for k, v in bounds.items() if v is not None}}

    def usage(self, start: float | None = None, end: float | None = None,
              by: str = "project") -> list[UsageOut]:
        return self._get("/api/v1/usage", list[UsageOut], params=self._range(start, end, by=by))

    def usage_csv(self, start: float | None = None, end: float | None = None,
                  by: str = "project") -> str:
        return self._request("GET", "/api/v1/usage",
                             params=self._range(start, end, by=by, format="csv")).text

    def metrics(self) -> str:
        return self._request("GET", "/metrics").text

    # -- access -----------------------------------------------------------------------------
    def whoami(self) -> WhoAmI:
        return self._get("/api/v1/whoami", WhoAmI)

    def create_token(self, user: str, expires_in_s: float | None = 90 * 86400,
                     description: str = "") -> TokenCreated:
        spec = build(TokenCreate, user=user, expires_in_s=expires_in_s, description=description)
        data = self._request("POST", "/api/v1/tokens",
                             json=spec.model_dump(mode="json")).json()
        return TokenCreated.model_validate(data)

    def tokens(self) -> list[TokenOut]:
        return self._get("/api/v1/tokens", list[TokenOut])

    def revoke_token(self, token_id: str) -> TokenOut:
        return self._send("DELETE", f"/api/v1/tokens/{token_id}", None, TokenOut)

    def grant(self, subject: str, role: str, scope: str) -> BindingOut:
        spec = build(BindingCreate, subject=subject, role=role, scope=scope)
        return self._send("POST", "/api/v1/role-bindings", spec, BindingOut)

    def role_bindings(self) -> list[BindingOut]:
        return self._get("/api/v1/role-bindings", list[BindingOut])

    def revoke_binding(self, binding_id: int) -> BindingOut:
        return self._send("DELETE", f"/api/v1/role-bindings/{binding_id}", None, BindingOut)

    def audit(self, **filters: Any) -> list[AuditOut]:
        params = {k: v for k, v in filters.items() if v is not None}
        return self._get("/api/v1/audit", list[AuditOut], params=params)

    def map_account(self, user: str, account: str) -> AccountOut:
        """Run ``user``'s jobs as Unix account ``account`` (admins; run_as = user)."""
        return self._send("PUT", f"/api/v1/accounts/{_segment(user)}",
                          build(AccountSet, account=account), AccountOut)

    def unmap_account(self, user: str) -> AccountOut:
        return self._send("DELETE", f"/api/v1/accounts/{_segment(user)}", None, AccountOut)

    def accounts(self) -> list[AccountOut]:
        return self._get("/api/v1/accounts", list[AccountOut])

    def disable_user(self, user: str) -> UserOut:
        """Disable ``user`` and revoke its tokens (admins)."""
        return self._send("POST", f"/api/v1/users/{_segment(user)}/disable", None, UserOut)

    def enable_user(self, user: str) -> UserOut:
        return self._send("POST", f"/api/v1/users/{_segment(user)}/enable", None, UserOut)

    def disabled_users(self) -> list[UserOut]:
        return self._get("/api/v1/users/disabled", list[UserOut])

    def set_secret(self, project: str, name: str, value: str) -> SecretOut:
        return self._send("PUT", f"/api/v1/projects/{project}/secrets/{name}",
                          build(SecretSet, value=value), SecretOut)

    def secrets(self, project: str) -> list[SecretOut]:
        return self._get(f"/api/v1/projects/{project}/secrets", list[SecretOut])

    def delete_secret(self, project: str, name: str) -> SecretOut:
        return self._send("DELETE", f"/api/v1/projects/{project}/secrets/{name}", None,
                          SecretOut)
