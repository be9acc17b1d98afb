"""The SDK's plumbing: one HTTP connection to the server (TLS always verified, a bearer token),
one error type whose message says in one line what went wrong, and request models built with
each invalid field named."""

from __future__ import annotations

import re
import ssl
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from fairpool.client.settings import client_ca, client_token, client_url

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
#: a job's or an array's id: 12 hexadecimal characters
JOB_ID = re.compile(r"[0-9a-f]{12}")


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


def problems(exc: ValidationError) -> str:
    """A pydantic error as one line: ``field: message`` for each problem, joined by ``; ``."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: "
                     f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


def build(kind: type[M], **fields: Any) -> M:
    """A request model, or a FairpoolError (status 422) naming each invalid field."""
    try:
        return kind.model_validate(fields)
    except ValidationError as exc:
        raise FairpoolError(problems(exc), 422) from None


def error_text(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("error") or resp.text)
    except ValueError:
        return resp.text or resp.reason_phrase


def segment(name: str) -> str:
    """A name as one path segment: '/', '?' or '#' in it must not reach another route."""
    return quote(name, safe="")


def checked_id(ref: str, what: str = "job") -> str:
    """``ref`` if it is a full id; else a FairpoolError naming what was typed, so that it
    never reaches another route (``Client.resolve`` turns prefixes and names into ids)."""
    if not JOB_ID.fullmatch(ref):
        raise FairpoolError(f"{ref!r} is not a {what} id: ids are the 12 hexadecimal "
                            f"characters `fairpool jobs` shows (Client.resolve takes "
                            f"prefixes and names)", 400)
    return ref


def job_path(job_id: str) -> str:
    """The path of a job, its id checked first."""
    return f"/api/v1/jobs/{checked_id(job_id)}"


def array_path(array_id: str) -> str:
    return f"/api/v1/arrays/{checked_id(array_id, 'array')}"


class Transport:
    """The connection: ``_request`` sends, ``_get`` and ``_send`` parse the answer into a
    typed result; every failure is a FairpoolError."""

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
            message = error_text(resp)
            if resp.status_code == 401 and not self.token:
                message = (f"{message} (no token: set FAIRPOOL_TOKEN or run "
                           f"`fairpool login --token ...`)")
            raise FairpoolError(message, resp.status_code)
        return resp

    def _get(self, path: str, kind: type[T] | Any, **kw: Any) -> T:
        data = self._request("GET", path, **kw).json()
        return TypeAdapter(kind).validate_python(data)  # type: ignore[no-any-return]

    def _send(self, method: str, path: str, body: BaseModel | None, kind: type[T]) -> T:
        payload = None if body is None else body.model_dump(mode="json", exclude_none=True)
        data = self._request(method, path, json=payload).json()
        return TypeAdapter(kind).validate_python(data)
