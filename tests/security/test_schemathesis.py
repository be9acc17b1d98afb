"""Property-based fuzzing of the running server against its own OpenAPI document (schemathesis).

Every operation in ``/openapi.json`` gets generated requests, sent to a real ``fairpool up``
process with a bearer token, and each response must pass these checks:

* ``not_a_server_error``: never a 5xx;
* ``status_code_conformance``: the status is one the operation documents;
* ``content_type_conformance``: the media type is the documented one;
* ``response_schema_conformance``: the body validates against the documented schema;
* ``response_headers_conformance``: documented response headers are present and valid.

``negative_data_rejection`` (schema-breaking input must get a 4xx) is not among them: the
models parse in pydantic's lax mode, which takes ``true`` for the number 1 (``{"priority":
false}`` in PATCH /queues/{name}, ``{"expires_in_s": true}`` in POST /tokens), a lenience the
API keeps.

Three passes: the admin with valid (positive) and with invalid (negative) input, and the
researcher "rita" with valid input, which reaches the 403/404 paths. Random names and ids
almost never exist, so positive cases are also steered, half of the time, to things that do
(the org's queues and projects, two finished jobs, a secret), so 200s and 409s are fuzzed too.

What is held back, and why:

* every generated job runs ``true`` (the generated argv's first word is replaced): the server
  really executes job commands, and random argv must not run on the test machine;
* deleting the org's own role bindings and tokens is skipped (without them the later passes
  would test nothing but 401/404); everything else may be deleted;
* ``GET /jobs/{id}/logs?follow=true`` streams until its job ends, so on a queued or running
  job it would hold the test. It stays in: the ids it gets are random (404) or the two seed
  jobs, which have ended (the stream stops once the log is read), and every request has a
  read timeout, so a stream that did not end would fail the test instead of hanging it.

Examples are bounded (``MAX_EXAMPLES``) so the module runs in well under a minute on 2 cores;
``FAIRPOOL_FUZZ_SCALE=5 pytest --timeout=0 ...`` runs a deeper search.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.security.conftest import Org

#: examples per operation, per pass; FAIRPOOL_FUZZ_SCALE multiplies them for a deeper run
SCALE = float(os.environ.get("FAIRPOOL_FUZZ_SCALE", "1"))
MAX_EXAMPLES = {key: max(1, round(n * SCALE)) for key, n in (
    (("admin", GenerationMode.POSITIVE), 40), (("admin", GenerationMode.NEGATIVE), 30),
    (("rita", GenerationMode.POSITIVE), 20))}
CHECKS: list[CheckFunction] = [not_a_server_error, status_code_conformance,
                               content_type_conformance, response_schema_conformance,
                               response_headers_conformance]
TIMEOUT_S = 20.0  # per request, as a read timeout: a hung stream fails instead of hanging
SAFE_COMMAND = shutil.which("true") or "/bin/true"
SECRET = "TOKEN"
Operation = APIOperation[Any, Any, Any, Any]


@dataclass
class Known:
    """Things that exist on the server, to steer positive cases to."""

    jobs: list[str]
    queues: list[str] = field(default_factory=lambda: ["d1", "p1", "p1b", "p2"])
    projects: list[str] = field(default_factory=lambda: ["p1", "p2"])
    departments: list[str] = field(default_factory=lambda: ["d1", "d2"])
    bindings: set[int] = field(default_factory=set)  # not to be revoked
    tokens: set[str] = field(default_factory=set)  # not to be revoked

    def path_parameters(self, path: str) -> list[dict[str, Any]]:
        if "{job_id}" in path:
            return [{"job_id": j} for j in self.jobs]
        if path.startswith("/api/v1/queues/"):
            return [{"name": q} for q in self.queues]
        if path.endswith("/secrets/{name}"):
            return [{"project": p, "name": SECRET} for p in self.projects]
        if "{project}" in path:
            return [{"project": p} for p in self.projects]
        return []

    def body_fields(self, path: str) -> tuple[str, list[str]] | None:
        """A body field that names something, and the names that exist."""
        return {"/api/v1/jobs": ("project", self.projects),
                "/api/v1/projects": ("department", self.departments),
                "/api/v1/role-bindings": ("scope", ["*", *self.departments, *self.projects]),
                "/api/v1/tokens": ("user", ["admin", "rita"]),
                }.get(path)


@dataclass
class Tally:
    calls: int = 0
    skipped: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: dict[int, int] = field(default_factory=dict)


TALLY = Tally()


@pytest.fixture(scope="module")
def schema(org: Org) -> BaseSchema:
    loaded = schemathesis.openapi.from_url(f"{org.pool.url}/openapi.json", timeout=30)
    loaded.config.update(base_url=org.pool.url)
    return loaded


@pytest.fixture(scope="module")
def known(org: Org) -> Known:
    """Two finished jobs (p1 by rita, p2 by oscar), a secret in p1 and the org's bindings and
    tokens (protected from revocation). Generated jobs left queued are cancelled by the org
    fixture's stop_pool."""
    python = [sys.executable, "-c", "print('hello from the fuzz seed')"]
    jobs = [org.client(user).submit(project=project, command=python).id
            for user, project in (("rita", "p1"), ("oscar", "p2"))]
    for job_id in jobs:
        org.pool.wait(job_id, {"succeeded"})
    admin = org.client("admin")
    admin.set_secret("p1", SECRET, "s3cret")
    with org.http("admin") as http:
        bindings = {int(b["id"]) for b in http.get("/api/v1/role-bindings").json()}
        tokens = {str(t["id"]) for t in http.get("/api/v1/tokens").json()}
    return Known(jobs=jobs, bindings=bindings, tokens=tokens)


def _prepare(case: Case[Operation], data: st.DataObject, known: Known,
             mode: GenerationMode) -> bool:
    """Make a generated case safe (and, when positive, sometimes aimed at something that
    exists); False: do not send it."""
    op = case.operation
    params = case.path_parameters or {}
    if op.method.upper() == "DELETE" and (
            params.get("binding_id") in known.bindings or params.get("token_id") in known.tokens):
        return False
    body = case.body
    if not isinstance(body, dict):
        return True
    steer = known.body_fields(op.path)
    if mode is GenerationMode.POSITIVE and steer is not None:
        name, values = steer
        value = data.draw(st.sampled_from([None, *values]), label=name)
        if value is not None:
            body[name] = value
    command = body.get("command")
    if isinstance(command, list) and command:
        command[0] = SAFE_COMMAND
    return True


def _strategy(op: Operation, mode: GenerationMode,
              known: Known) -> st.SearchStrategy[Case[Operation]]:
    generated = op.as_strategy(generation_mode=mode)
    if mode is GenerationMode.NEGATIVE:
        return generated
    aimed = [op.as_strategy(generation_mode=mode, path_parameters=p)
             for p in known.path_parameters(op.path)]
    return generated if not aimed else st.one_of(generated, st.one_of(*aimed))


def _fuzz_operation(op: Operation, session: requests.Session, headers: dict[str, str],
                    known: Known, user: str, mode: GenerationMode) -> None:
    strategy = _strategy(op, mode, known)

    @settings(max_examples=MAX_EXAMPLES[user, mode], deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        if not _prepare(case, data, known, mode):
            TALLY.skipped += 1
            return
        TALLY.calls += 1
        response = case.call_and_validate(session=session, headers=headers, checks=CHECKS,
                                          timeout=TIMEOUT_S)
        TALLY.statuses[response.status_code] = TALLY.statuses.get(response.status_code, 0) + 1

    run()


def _has_input(op: Operation) -> bool:
    return any(len(part) for part in (op.path_parameters, op.query, op.headers, op.cookies,
                                      op.body))


def _fuzz(org: Org, schema: BaseSchema, known: Known, user: str, mode: GenerationMode) -> list[str]:
    """Fuzz every operation as ``user``; the failures, one message each."""
    headers = {"Authorization": f"Bearer {org.tokens[user]}"}
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                failures.append(f"[{user}, {mode.value}] an operation the schema breaks: "
                                f"{result.err()}")
                continue
            op = result.ok()
            TALLY.operations.add(op.label)
            if mode is GenerationMode.NEGATIVE and not _has_input(op):
                continue  # nothing to make invalid (hypothesis would call it unsatisfiable)
            # collect every operation's failures, then report them all (schemathesis raises a
            # FailureGroup, which is a BaseExceptionGroup)
            try:
                _fuzz_operation(op, session, headers, known, user, mode)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"[{user}, {mode.value}] {op.label}:\n{exc}")
    return failures


@pytest.mark.parametrize(("user", "mode"), list(MAX_EXAMPLES), ids=lambda v: str(v))
def test_api_conforms_to_its_schema(org: Org, schema: BaseSchema, known: Known, user: str,
                                    mode: GenerationMode) -> None:
    before = TALLY.calls
    failures = _fuzz(org, schema, known, user, mode)
    print(f"\nschemathesis [{user}, {mode.value}]: {len(TALLY.operations)} operations, "
          f"{TALLY.calls} calls so far ({TALLY.skipped} skipped), statuses "
          f"{dict(sorted(TALLY.statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert TALLY.calls - before >= 10 * len(TALLY.operations)  # it did send requests
    # the admin's token still works: nothing the fuzzing did locked the test out
    with org.http("admin") as http:
        assert http.get("/api/v1/whoami").json()["user"] == "admin"
