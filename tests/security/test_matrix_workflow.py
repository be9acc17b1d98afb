"""The authorisation matrix of the researcher's workflow endpoints (job arrays, dry runs, bulk
cancel, references, queue deletes, webhooks): every endpoint × every kind of caller × its own
scope and another, against the DESIGNED status, written out by hand as in
``tests/security/test_matrix.py`` (whose callers, scopes and rules these rows follow), plus a
check that every REST endpoint the server publishes has a row in one of the two tables.

Refused cases aim at victims (a running job, a running array, a webhook, a project with a live
job) and check that nothing changed; allowed writes use fresh targets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import start_pool, stop_pool
from tests.security.conftest import LONG, Org, build_org
from tests.security.test_matrix import (
    ACTORS,
    BAD_TOKEN,
    EXPECTED,
    QUICK,
    SEES,
    USERS,
    AsAdmin,
    Call,
    Case,
    parse_matrix,
    run_case,
)

MATRIX = """
endpoint                                   admin    dora     rita     vic      oscar    nobody   anon bad
POST /arrays project=P                     201/201  201/404  201/404  403/404  201/404  404/404  401  401
GET /arrays                                200      200      200      200      200      200      401  401
GET /arrays/{id in P}                      200/200  200/404  200/404  200/404  200/404  404/404  401  401
GET /arrays/{id in P}/tasks                200/200  200/404  200/404  200/404  200/404  404/404  401  401
POST /arrays/{id in P}/cancel              200/200  200/404  200/404  403/404  200/404  404/404  401  401
POST /jobs/dry-run project=P               200/200  200/404  200/404  403/404  200/404  404/404  401  401
# open to every caller: it cancels only what the caller may (the check says which)
POST /jobs/cancel ids=[job in P]           200/200  200/200  200/200  200/200  200/200  200/200  401  401
GET /resolve ref=job in P                  200/200  200/404  200/404  200/404  200/404  404/404  401  401
# manage on a queue is checked on its parent; a project with a live job is kept (409)
DELETE /queues/{P}                         409/409  409/404  403/404  403/404  403/404  404/404  401  401
# a fresh empty project, which only those who manage its department see
DELETE /queues/{fresh P}                   204/204  204/404  404/404  404/404  404/404  404/404  401  401
DELETE /queues/{D}                         409/409  403/404  404/404  404/404  404/404  404/404  401  401
# a project's webhooks are its managers' (a department admin of it, an admin)
POST /projects/{P}/webhooks                201/201  201/404  403/404  403/404  403/404  404/404  401  401
GET /projects/{P}/webhooks                 200/200  200/404  403/404  403/404  403/404  404/404  401  401
DELETE /projects/{P}/webhooks/{W}          200/200  200/404  403/404  403/404  403/404  404/404  401  401
GET /projects/{P}/webhooks/{W}/deliveries  200/200  200/404  403/404  403/404  403/404  404/404  401  401
POST /projects/{P}/webhooks/{W}/test       200/200  200/404  403/404  403/404  403/404  404/404  401  401
"""  # noqa: E501

FLOWS = parse_matrix(MATRIX)
CASES = [Case(row, actor, scope, status)
         for row, cells in FLOWS.items() for (actor, scope), status in cells.items()]
#: who may cancel in which of its scopes (the design: admin anywhere; researchers and
#: department admins in their own)
CANCELS = {"admin": {"own", "other"}, "dora": {"own"}, "rita": {"own"}, "oscar": {"own"}}
#: a closed port: deliveries fail fast, which is all these cases need
NOWHERE = "http://127.0.0.1:9/hook"


class Flows(AsAdmin):
    """The pool, every caller's client and the victims each project has."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.http = {user: org.http(user) for user in USERS}
        self.http["anon"] = org.http(None)
        self.http["bad"] = httpx.Client(base_url=org.pool.url, timeout=30,
                                        headers={"Authorization": f"Bearer {BAD_TOKEN}"})
        self.job: dict[str, str] = {}
        self.array: dict[str, str] = {}
        self.hook: dict[str, str] = {}
        for project in ("p1", "p2"):
            self.job[project] = self.submit(project, f"victim-{project}")
            self.array[project] = self.make_array(project, f"victim-array-{project}")
            self.hook[project] = self.make_hook(project, f"victim-hook-{project}")
        for job_id in self.job.values():
            org.pool.wait(job_id, {"running"})

    def submit(self, project: str, name: str) -> str:
        resp = self.admin.post("/api/v1/jobs", json={"project": project, "command": LONG,
                                                      "name": name, "cpus": 0.1})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def make_array(self, project: str, name: str) -> str:
        resp = self.admin.post("/api/v1/arrays", json={
            "project": project, "command": LONG, "name": name, "cpus": 0.1, "indices": "0-1"})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def make_hook(self, project: str, description: str) -> str:
        resp = self.admin.post(f"/api/v1/projects/{project}/webhooks",
                               json={"url": NOWHERE, "description": description})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def arrays_named(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.get("/api/v1/arrays", limit=10_000) if a["name"] == name]

    def live(self, array_id: str) -> bool:
        counts = self.get(f"/api/v1/arrays/{array_id}")["counts"]
        return not set(counts) & {"cancelled", "succeeded", "failed"}

    def hooks(self, project: str) -> dict[str, str]:
        return {h["id"]: h["description"]
                for h in self.get(f"/api/v1/projects/{project}/webhooks")}

    def queue_exists(self, name: str) -> bool:
        return self.admin.get(f"/api/v1/queues/{name}").status_code == 200


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    tmp: Path = tmp_path_factory.mktemp("flows")
    pool = start_pool(tmp, "--simulate-gpus", "4")
    try:
        f = Flows(build_org(pool))
        yield f
        for client in f.http.values():
            client.close()
    finally:
        stop_pool(pool)


def _submit_array(f: Flows, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        made = f.arrays_named(c.mark)
        assert resp.json()["project"] == c.project and len(made) == 1 and made[0]["size"] == 2

    def unchanged() -> None:
        assert f.arrays_named(c.mark) == [], "refused, yet the array was created"
    return Call("POST", "/api/v1/arrays", {"project": c.project, "command": QUICK,
                                           "name": c.mark, "cpus": 0.1, "indices": "0-1"},
                check=check, unchanged=unchanged)


def _list_arrays(f: Flows, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        got = {a["id"]: a["project"] for a in resp.json()}
        sees = {"p1", "p2"} if c.actor == "admin" else SEES[c.actor]
        for project, array_id in f.array.items():
            assert (array_id in got) == (project in sees), (c.actor, project, got)
        assert c.actor == "admin" or set(got.values()) <= sees, got
    return Call("GET", "/api/v1/arrays", params={"limit": 10_000}, check=check)


def _get_array(f: Flows, c: Case) -> Call:
    array_id = f.array[c.project]

    def check(resp: httpx.Response) -> None:
        assert resp.json()["id"] == array_id and resp.json()["project"] == c.project
    return Call("GET", f"/api/v1/arrays/{array_id}", check=check)


def _array_tasks(f: Flows, c: Case) -> Call:
    array_id = f.array[c.project]

    def check(resp: httpx.Response) -> None:
        assert sorted(t["array_index"] for t in resp.json()) == [0, 1]
        assert {t["project"] for t in resp.json()} == {c.project}
    return Call("GET", f"/api/v1/arrays/{array_id}/tasks", check=check)


def _cancel_array(f: Flows, c: Case) -> Call:
    array_id = (f.make_array(c.project, f"fresh-{c.mark}") if c.allowed
                else f.array[c.project])

    def check(resp: httpx.Response) -> None:
        assert resp.json()["id"] == array_id
        f.org.pool.until(lambda: not f.live(array_id), what=f"array {array_id} cancelled")

    def unchanged() -> None:
        assert f.live(array_id), f"refused, yet array {array_id} of {c.project} was cancelled"
    return Call("POST", f"/api/v1/arrays/{array_id}/cancel", check=check, unchanged=unchanged)


def _dry_run(f: Flows, c: Case) -> Call:
    before = len(f.get("/api/v1/jobs", limit=10_000))

    def check(resp: httpx.Response) -> None:
        assert resp.json()["request"]["project"] == c.project
        assert c.project in resp.json()["quota"]

    def unchanged() -> None:
        assert len(f.get("/api/v1/jobs", limit=10_000)) == before
    return Call("POST", "/api/v1/jobs/dry-run", {"project": c.project, "command": QUICK},
                check=check, unchanged=unchanged)


def _bulk_cancel(f: Flows, c: Case) -> Call:
    job_id = f.job[c.project]

    def check(resp: httpx.Response) -> None:
        out = resp.json()
        if c.scope in CANCELS.get(c.actor, set()):
            assert out["cancelled"] == [job_id] and out["refused"] == [], out
        else:
            assert out["cancelled"] == [] and out["refused"] == [job_id], out
        assert f.get(f"/api/v1/jobs/{job_id}")["state"] == "running"  # a dry run
    return Call("POST", "/api/v1/jobs/cancel", {"ids": [job_id], "dry_run": True}, check=check)


def _resolve(f: Flows, c: Case) -> Call:
    job_id = f.job[c.project]

    def check(resp: httpx.Response) -> None:
        assert resp.json() == {"kind": "job", "id": job_id, "project": c.project,
                               "name": f"victim-{c.project}"}
    return Call("GET", "/api/v1/resolve", params={"ref": f"victim-{c.project}"}, check=check)


def _kept(f: Flows, name: str) -> Call:
    def unchanged() -> None:
        assert f.queue_exists(name), f"refused, yet {name} was deleted"
    return Call("DELETE", f"/api/v1/queues/{name}", unchanged=unchanged)


def _delete_fresh(f: Flows, c: Case) -> Call:
    name = f"fresh-{c.mark}"
    made = f.admin.post("/api/v1/projects", json={"name": name, "department": c.department})
    assert made.status_code == 201, made.text

    def check(resp: httpx.Response) -> None:
        assert not f.queue_exists(name)

    def unchanged() -> None:
        assert f.queue_exists(name), f"refused, yet {name} was deleted"
    return Call("DELETE", f"/api/v1/queues/{name}", check=check, unchanged=unchanged)


def _create_hook(f: Flows, c: Case) -> Call:
    def named() -> list[str]:
        return [i for i, d in f.hooks(c.project).items() if d == c.mark]

    def check(resp: httpx.Response) -> None:
        assert resp.json()["secret"] and named() == [resp.json()["id"]]

    def unchanged() -> None:
        assert named() == [], "refused, yet a webhook was created"

    def cleanup(resp: httpx.Response) -> None:
        for hook_id in named():  # a project has at most 20 webhooks: make room
            f.admin.delete(f"/api/v1/projects/{c.project}/webhooks/{hook_id}")
    return Call("POST", f"/api/v1/projects/{c.project}/webhooks",
                {"url": NOWHERE, "description": c.mark}, check=check, unchanged=unchanged,
                cleanup=cleanup)


def _list_hooks(f: Flows, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert f.hook[c.project] in {h["id"] for h in resp.json()}
        assert "secret" not in resp.text
    return Call("GET", f"/api/v1/projects/{c.project}/webhooks", check=check)


def _delete_hook(f: Flows, c: Case) -> Call:
    hook_id = (f.make_hook(c.project, f"fresh-{c.mark}") if c.allowed else f.hook[c.project])

    def check(resp: httpx.Response) -> None:
        assert hook_id not in f.hooks(c.project)

    def unchanged() -> None:
        assert hook_id in f.hooks(c.project), f"refused, yet webhook {hook_id} was removed"
    return Call("DELETE", f"/api/v1/projects/{c.project}/webhooks/{hook_id}", check=check,
                unchanged=unchanged)


def _deliveries(f: Flows, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert all(d["webhook_id"] == f.hook[c.project] for d in resp.json())
    return Call("GET", f"/api/v1/projects/{c.project}/webhooks/{f.hook[c.project]}/deliveries",
                check=check)


def _test_hook(f: Flows, c: Case) -> Call:
    path = f"/api/v1/projects/{c.project}/webhooks/{f.hook[c.project]}"

    def tests() -> int:
        return sum(1 for d in f.get(path + "/deliveries") if d["event"] == "test")
    before = tests()

    def check(resp: httpx.Response) -> None:
        assert resp.json()["event"] == "test" and resp.json()["last_error"]  # port 9 is shut
        assert tests() == before + 1

    def unchanged() -> None:
        assert tests() == before, "refused, yet a test notification was sent"
    return Call("POST", path + "/test", check=check, unchanged=unchanged)


PROBES = {
    "POST /arrays project=P": _submit_array,
    "GET /arrays": _list_arrays,
    "GET /arrays/{id in P}": _get_array,
    "GET /arrays/{id in P}/tasks": _array_tasks,
    "POST /arrays/{id in P}/cancel": _cancel_array,
    "POST /jobs/dry-run project=P": _dry_run,
    "POST /jobs/cancel ids=[job in P]": _bulk_cancel,
    "GET /resolve ref=job in P": _resolve,
    "DELETE /queues/{P}": lambda f, c: _kept(f, c.project),
    "DELETE /queues/{fresh P}": _delete_fresh,
    "DELETE /queues/{D}": lambda f, c: _kept(f, c.department),
    "POST /projects/{P}/webhooks": _create_hook,
    "GET /projects/{P}/webhooks": _list_hooks,
    "DELETE /projects/{P}/webhooks/{W}": _delete_hook,
    "GET /projects/{P}/webhooks/{W}/deliveries": _deliveries,
    "POST /projects/{P}/webhooks/{W}/test": _test_hook,
}
assert set(PROBES) == set(FLOWS), set(PROBES) ^ set(FLOWS)
assert tuple(ACTORS) == ("admin", "dora", "rita", "vic", "oscar", "nobody", "anon", "bad")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_workflow_matrix(flows: Flows, case: Case) -> None:
    run_case(flows.http[case.actor], PROBES[case.row](flows, case), case)


def test_victims_are_untouched(flows: Flows) -> None:
    for project in ("p1", "p2"):
        assert flows.get(f"/api/v1/jobs/{flows.job[project]}")["state"] == "running"
        assert flows.live(flows.array[project])
        assert flows.hook[project] in flows.hooks(project)
    assert all(flows.queue_exists(q) for q in ("p1", "p1b", "p2", "d1", "d2"))


#: rows whose label names the target in words instead of as a path parameter
UNSAID = {("DELETE", "/role-bindings"): ("DELETE", "/role-bindings/{}")}


def _endpoint(label: str) -> tuple[str, str]:
    """(method, path with every parameter as {}) of a row's label."""
    found = re.match(r"(\S+) ((?:\{[^}]*\}|[^\s{])+)", label)
    assert found is not None, label
    got = found.group(1), re.sub(r"\{[^}]*\}", "{}", found.group(2))
    return UNSAID.get(got, got)


def test_every_endpoint_has_a_row(flows: Flows) -> None:
    """A new endpoint cannot be forgotten: each operation of /openapi.json is a row here or in
    tests/security/test_matrix.py."""
    spec = flows.get("/openapi.json")
    published = {(method.upper(), re.sub(r"\{[^}]*\}", "{}", path.removeprefix("/api/v1")))
                 for path, ops in spec["paths"].items() for method in ops}
    rows = {_endpoint(label) for label in (*EXPECTED, *FLOWS)}
    assert published - rows == set(), f"endpoints without a row: {sorted(published - rows)}"
