"""The authorisation matrix: every REST endpoint × every kind of caller × its own scope and
another scope, checked against the DESIGNED HTTP status, and no cross-project reads or writes.

The expected outcomes are written out below as a literal table (``MATRIX``), derived by hand
from the design, never computed with the project's rbac code, so the test checks the
implementation against the design:

- roles: admin (on ``*``: everything), department-admin (on a department: read, submit,
  cancel, secrets, manage in it and its projects), researcher (on a project: read, submit,
  cancel, secrets), viewer (read only); a binding applies to its scope and all below it;
- 401: no or bad credentials; 404: the target does not exist or the caller may not read its
  scope (the two are indistinguishable); 403: the caller sees the target but lacks the
  permission; pool-level actions give a non-admin 403 (the pool is not secret);
- ``manage`` on a queue is checked on its parent (a project's quota is its department's to
  set, a department's the admin's).

The callers are those of ``tests/security/conftest.py`` (d1 ─ p1: researcher rita, viewer vic;
d1's department admin dora; d2 ─ p2: researcher oscar; admin; nobody with a token and no
role), plus ``anon`` (no token) and ``bad`` (a well-formed token that does not exist).

Each case's own scope is the caller's project and department (p1/d1; p2/d2 for oscar; p1/d1
for callers without one), the other scope the other pair. Every case that must be refused is
aimed at a "victim" (a job, token, role binding or secret nobody but the allowed may touch)
and checked to have changed nothing; allowed writes use fresh targets and are marked with the
caller's name, so that ``test_no_cross_scope_writes`` can attribute every change found between
admin snapshots taken before and after the matrix to a cell the table allows.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.security.conftest import LONG, Org

# -- the designed outcomes --------------------------------------------------------------------
# Cells are "own/other" (the caller's own scope / another scope); a single value is the same
# for both, and the only form for rows without a scope. P: the scope's project, D: its
# department, U: a user (own: the caller itself; other: another user), K: a secret's name.
# Lines starting with "#" are comments.
MATRIX = """
endpoint                          admin    dora     rita     vic      oscar    nobody   anon bad
GET /health                       200      200      200      200      200      200      200  200
POST /departments                 201      403      403      403      403      403      401  401
POST /projects dept=D             201/201  201/404  404/404  404/404  404/404  404/404  401  401
PATCH /queues/{P}                 200/200  200/404  403/404  403/404  403/404  404/404  401  401
PATCH /queues/{D}                 200/200  403/404  404/404  404/404  404/404  404/404  401  401
GET /queues                       200      200      200      200      200      200      401  401
GET /queues/{P}                   200/200  200/404  200/404  200/404  200/404  404/404  401  401
GET /queues/{D}                   200/200  200/404  404/404  404/404  404/404  404/404  401  401
POST /jobs project=P              201/201  201/404  201/404  403/404  201/404  404/404  401  401
GET /jobs                         200      200      200      200      200      200      401  401
GET /jobs?project=P               200/200  200/200  200/200  200/200  200/200  200/200  401  401
GET /jobs/{id in P}               200/200  200/404  200/404  200/404  200/404  404/404  401  401
GET /jobs/{id in P}/events        200/200  200/404  200/404  200/404  200/404  404/404  401  401
GET /jobs/{id in P}/explain       200/200  200/404  200/404  200/404  200/404  404/404  401  401
GET /jobs/{id in P}/logs          200/200  200/404  200/404  200/404  200/404  404/404  401  401
POST /jobs/{id in P}/cancel       200/200  200/404  200/404  403/404  200/404  404/404  401  401
GET /nodes                        200      200      200      200      200      200      401  401
GET /whoami                       200      200      200      200      200      200      401  401
POST /tokens user=U               201/201  201/403  201/403  201/403  201/403  201/403  401  401
GET /tokens                       200      200      200      200      200      200      401  401
DELETE /tokens/{id of U}          200/200  200/404  200/404  200/404  200/404  200/404  401  401
POST /role-bindings viewer@P      201/201  201/404  403/404  403/404  403/404  404/404  401  401
POST /role-bindings researcher@D  201/201  201/404  404/404  404/404  404/404  404/404  401  401
POST /role-bindings dept-admin@D  201/201  403/404  404/404  404/404  404/404  404/404  401  401
# the pool is no secret: a pool-level refusal is 403
POST /role-bindings admin@*       201      403      403      403      403      403      401  401
GET /role-bindings                200      200      200      200      200      200      401  401
# a role binding is visible to its subject and to whoever manages its scope (as GET lists it),
# so a researcher or viewer does not see another user's binding even in its own project
DELETE /role-bindings viewer@P    200/200  200/404  404/404  404/404  404/404  404/404  401  401
DELETE /role-bindings d-admin@D   200/200  403/404  404/404  404/404  404/404  404/404  401  401
# the same rule: only admins manage the pool, so only they see the admin binding (409: the last)
DELETE /role-bindings admin@*     409      404      404      404      404      404      401  401
GET /audit                        200      403      403      403      403      403      401  401
GET /usage                        200      200      200      200      200      200      401  401
GET /usage/series                 200      200      200      200      200      200      401  401
GET /metrics                      200      403      403      403      403      403      401  401
POST /nodes/{n}/cordon            200      403      403      403      403      403      401  401
POST /nodes/{n}/uncordon          200      403      403      403      403      403      401  401
# a drain would requeue the jobs this module keeps running: a node that does not exist shows
# the guard (403 before any lookup) while the admin's call reaches the lookup
POST /nodes/{none}/drain          404      403      403      403      403      403      401  401
# which Unix account users' jobs run as: admins only (the pool is no secret: 403)
GET /accounts                     200      403      403      403      403      403      401  401
PUT /accounts/{U}                 200      403      403      403      403      403      401  401
DELETE /accounts/{U}              200      403      403      403      403      403      401  401
# disabling users: admins only (the pool is no secret: 403)
GET /users/disabled               200      403      403      403      403      403      401  401
POST /users/{U}/disable           200      403      403      403      403      403      401  401
POST /users/{U}/enable            200      403      403      403      403      403      401  401
GET /projects/{P}/secrets         200/200  200/404  200/404  403/404  200/404  404/404  401  401
PUT /projects/{P}/secrets/{K}     200/200  200/404  200/404  403/404  200/404  404/404  401  401
DELETE /projects/{P}/secrets/{K}  200/200  200/404  200/404  403/404  200/404  404/404  401  401
"""

ACTORS = ("admin", "dora", "rita", "vic", "oscar", "nobody", "anon", "bad")
USERS = ACTORS[:6]  # those with a valid token
BAD_TOKEN = "fp_000000000000_" + "A" * 43

#: (project, department) each caller calls its own; the other scope is the other pair
OWN = {"admin": ("p1", "d1"), "dora": ("p1", "d1"), "rita": ("p1", "d1"), "vic": ("p1", "d1"),
       "oscar": ("p2", "d2"), "nobody": ("p1", "d1"), "anon": ("p1", "d1"), "bad": ("p1", "d1")}
OTHER = {a: (("p2", "d2") if own == ("p1", "d1") else ("p1", "d1")) for a, own in OWN.items()}
#: the "other user" of token cases
OTHER_USER = {"admin": "rita", "dora": "oscar", "rita": "oscar", "vic": "oscar", "oscar": "rita",
              "nobody": "rita", "anon": "oscar", "bad": "oscar"}
#: the fixture's queues each caller may see (a binding reaches its scope and all below it)
FIXTURE_QUEUES = frozenset({"d1", "d2", "p1", "p1b", "p2"})
SEES: dict[str, frozenset[str]] = {
    "admin": FIXTURE_QUEUES, "dora": frozenset({"d1", "p1", "p1b"}),
    "rita": frozenset({"p1"}), "vic": frozenset({"p1"}), "oscar": frozenset({"p2"}),
    "nobody": frozenset()}
#: the scopes on which each caller manages (and so sees others' role bindings)
MANAGES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*", *FIXTURE_QUEUES}), "dora": frozenset({"d1", "p1", "p1b"}),
    "rita": frozenset(), "vic": frozenset(), "oscar": frozenset(), "nobody": frozenset()}
#: the over-quota weight each caller tries to set: unique, so a write can be traced to it
WEIGHT = {a: i + 2 for i, a in enumerate(ACTORS)}
QUICK = [sys.executable, "-c", "pass"]
#: a user mapped to a Unix account, which only an admin may change or remove
VICTIM_USER, VICTIM_ACCOUNT = "victim-user", "victim"
HIDDEN = "(another project)"


def parse_matrix(text: str) -> dict[str, dict[tuple[str, str], int]]:
    """{row: {(actor, scope): status}}; scope is own/other, or "pool" for rows without one."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("#")]
    header = lines[0].split()
    assert tuple(header[1:]) == ACTORS, header
    table: dict[str, dict[tuple[str, str], int]] = {}
    for line in lines[1:]:
        label, *cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(ACTORS), f"{label}: {len(cells)} cells"
        assert label not in table, f"{label} twice"
        scoped = any("/" in c for c in cells)
        row: dict[tuple[str, str], int] = {}
        for actor, cell in zip(ACTORS, cells, strict=True):
            own, _, other = cell.partition("/")
            if scoped:
                row[actor, "own"], row[actor, "other"] = int(own), int(other or own)
            else:
                row[actor, "pool"] = int(own)
        table[label] = row
    return table


EXPECTED = parse_matrix(MATRIX)


@dataclass(frozen=True)
class Case:
    row: str
    actor: str
    scope: str  # own | other | pool
    expected: int

    def __str__(self) -> str:
        return f"{self.row} | {self.actor} | {self.scope}"

    @property
    def allowed(self) -> bool:
        return self.expected < 300

    @property
    def project(self) -> str:
        return project_of(self.actor, self.scope)

    @property
    def department(self) -> str:
        return department_of(self.actor, self.scope)

    @property
    def user(self) -> str:
        return user_of(self.actor, self.scope)

    @property
    def mark(self) -> str:
        """A name for what this case creates: says who created it in which scope."""
        return f"mx-{self.actor}-{self.scope}"


def project_of(actor: str, scope: str) -> str:
    return (OTHER if scope == "other" else OWN)[actor][0]


def department_of(actor: str, scope: str) -> str:
    return (OTHER if scope == "other" else OWN)[actor][1]


def user_of(actor: str, scope: str) -> str:
    if scope == "other":
        return OTHER_USER[actor]
    return actor if actor in USERS else "rita"


CASES = [Case(row, actor, scope, status)
         for row, cells in EXPECTED.items() for (actor, scope), status in cells.items()]
#: the cases whose request was made and compared, for the count printed at the end
CHECKED: list[Case] = []


# -- the pool as the matrix finds it --------------------------------------------------------
@dataclass
class Snapshot:
    """What the admin sees of everything a case could write."""

    queues: dict[str, tuple[str | None, int]]  # name -> (parent, over-quota weight)
    jobs: dict[str, tuple[str, str, str]]  # id -> (project, name, state)
    cancels: set[str]  # ids of jobs with a cancel event
    secrets: dict[str, set[str]]  # project -> names
    bindings: dict[int, tuple[str, str, str]]  # id -> (subject, role, scope)
    tokens: dict[str, tuple[str, str, bool]]  # id -> (user, description, revoked)
    accounts: dict[str, str]  # user -> the Unix account its jobs run as


class AsAdmin:
    """The admin's client among ``http`` (caller → client), and a GET as admin that must
    succeed: how a matrix looks at what a case did."""

    http: dict[str, httpx.Client]

    @property
    def admin(self) -> httpx.Client:
        return self.http["admin"]

    def get(self, path: str, **params: Any) -> Any:
        """GET as admin; must succeed."""
        resp = self.admin.get(path, params=params)
        assert resp.status_code == 200, f"admin GET {path}: {resp.status_code} {resp.text}"
        return resp.json()


@dataclass
class World(AsAdmin):
    org: Org
    http: dict[str, httpx.Client]  # actor -> client with its credentials
    gpu_job: dict[str, str]  # project -> a running GPU job: read target, cancel victim
    victim_token: dict[str, str]  # user -> a token of it only it and the admin may revoke
    victim_viewer: dict[str, int]  # project -> a viewer binding on it
    victim_boss: dict[str, int]  # department -> a department-admin binding on it
    admin_binding: int
    before: Snapshot | None = None

    def submit(self, project: str, name: str, command: list[str], **extra: Any) -> str:
        resp = self.admin.post("/api/v1/jobs", json={"project": project, "command": command,
                                                      "name": name, **extra})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def job_state(self, job_id: str) -> str:
        return str(self.get(f"/api/v1/jobs/{job_id}")["state"])

    def cancelled(self, job_id: str) -> bool:
        events = self.get(f"/api/v1/jobs/{job_id}/events")
        return any(e["kind"] in ("cancelling", "cancelled") for e in events)

    def secret_names(self, project: str) -> set[str]:
        return {s["name"] for s in self.get(f"/api/v1/projects/{project}/secrets")}

    def bindings(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/role-bindings"))

    def grant(self, subject: str, role: str, scope: str) -> int:
        resp = self.admin.post("/api/v1/role-bindings",
                               json={"subject": subject, "role": role, "scope": scope})
        assert resp.status_code == 201, resp.text
        return int(resp.json()["id"])

    def token(self, user: str, description: str) -> str:
        resp = self.admin.post("/api/v1/tokens", json={"user": user, "description": description})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def tokens(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in self.get("/api/v1/tokens")}

    def accounts(self) -> dict[str, str]:
        return {a["user"]: a["account"] for a in self.get("/api/v1/accounts")}

    def map_account(self, user: str, account: str) -> None:
        resp = self.admin.put(f"/api/v1/accounts/{user}", json={"account": account})
        assert resp.status_code == 200, resp.text

    def snapshot(self) -> Snapshot:
        queues = self.get("/api/v1/queues")
        jobs = self.get("/api/v1/jobs", limit=10_000)
        return Snapshot(
            queues={q["name"]: (q["parent"], q["over_quota_weight"]) for q in queues},
            jobs={j["id"]: (j["project"], j["name"], j["state"]) for j in jobs},
            cancels={j["id"] for j in jobs if self.cancelled(j["id"])},
            secrets={q["name"]: self.secret_names(q["name"]) for q in queues
                     if q["kind"] == "project"},
            bindings={b["id"]: (b["subject"], b["role"], b["scope"]) for b in self.bindings()},
            tokens={t["id"]: (t["user"], t["description"], t["revoked_at"] is not None)
                    for t in self.tokens().values()},
            accounts=self.accounts(),
        )


@pytest.fixture(scope="module")
def world(org: Org) -> Iterator[World]:
    http = {user: org.http(user) for user in USERS}
    http["anon"] = org.http(None)
    http["bad"] = httpx.Client(base_url=org.pool.url, timeout=30,
                               headers={"Authorization": f"Bearer {BAD_TOKEN}"})
    w = World(org, http, {}, {}, {}, {}, 0)
    for project in ("p1", "p2"):
        w.gpu_job[project] = w.submit(project, f"victim-{project}", LONG, gpus=1)
        resp = w.admin.put(f"/api/v1/projects/{project}/secrets/VICTIM",
                           json={"value": "do-not-touch"})
        assert resp.status_code == 200, resp.text
        w.victim_viewer[project] = w.grant(f"victim-viewer-{project}", "viewer", project)
    for dept in ("d1", "d2"):
        w.victim_boss[dept] = w.grant(f"victim-boss-{dept}", "department-admin", dept)
    for user in USERS:
        w.victim_token[user] = w.token(user, f"victim-{user}")
    w.map_account(VICTIM_USER, VICTIM_ACCOUNT)
    admins = [b["id"] for b in w.bindings() if b["role"] == "admin"]
    assert len(admins) == 1, admins
    w.admin_binding = admins[0]
    for job_id in w.gpu_job.values():
        org.pool.wait(job_id, {"running"})
    w.before = w.snapshot()
    try:
        yield w
    finally:
        for client in http.values():
            client.close()


# -- what each row sends, and what it checks beyond the status --------------------------------
@dataclass
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    #: run when the status is the designed 2xx: what came back, the effect it had
    check: Callable[[httpx.Response], None] | None = None
    #: run when the status is the designed refusal: nothing changed
    unchanged: Callable[[], None] | None = None
    #: run whatever the status (undo what an unexpected success would leave behind)
    cleanup: Callable[[httpx.Response], None] | None = None


Probe = Callable[[World, Case], Call]
PROBES: dict[str, Probe] = {}


def probe(row: str) -> Callable[[Probe], Probe]:
    assert row in EXPECTED, row

    def register(fn: Probe) -> Probe:
        PROBES[row] = fn
        return fn
    return register


def visible_now(w: World, actor: str) -> tuple[set[str], set[str]]:
    """(must see, may see): the fixture's queues the design lets ``actor`` see, and those plus
    queues created since under a department it sees (a new one may show a moment late)."""
    if actor == "admin":
        every = {q["name"] for q in w.get("/api/v1/queues")}
        return every, every
    must = set(SEES[actor])
    extra = {q["name"] for q in w.get("/api/v1/queues") if q["parent"] in must}
    return must, must | extra


@probe("GET /health")
def _health(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert resp.json()["status"] == "ok"
    return Call("GET", "/health", check=check)


@probe("POST /departments")
def _create_department(w: World, c: Case) -> Call:
    name = f"d{c.mark}"

    def check(resp: httpx.Response) -> None:
        assert w.get(f"/api/v1/queues/{name}")["kind"] == "department"

    def unchanged() -> None:
        found = w.admin.get(f"/api/v1/queues/{name}")
        assert found.status_code == 404, f"refused, yet {name} exists: {found.text}"
    return Call("POST", "/api/v1/departments", {"name": name}, check=check,
                unchanged=unchanged)


@probe("POST /projects dept=D")
def _create_project(w: World, c: Case) -> Call:
    name = f"p{c.mark}"

    def check(resp: httpx.Response) -> None:
        assert w.get(f"/api/v1/queues/{name}")["parent"] == c.department

    def unchanged() -> None:
        found = w.admin.get(f"/api/v1/queues/{name}")
        assert found.status_code == 404, f"refused, yet {name} exists: {found.text}"
    return Call("POST", "/api/v1/projects", {"name": name, "department": c.department},
                check=check, unchanged=unchanged)


def _patch_queue(w: World, c: Case, queue: str) -> Call:
    weight = WEIGHT[c.actor]

    def now() -> int:
        return int(w.get(f"/api/v1/queues/{queue}")["over_quota_weight"])

    def check(resp: httpx.Response) -> None:
        assert resp.json()["over_quota_weight"] == weight and now() == weight

    def unchanged() -> None:
        assert now() != weight, f"refused, yet {queue}'s weight was set to {weight}"
    return Call("PATCH", f"/api/v1/queues/{queue}", {"over_quota_weight": weight}, check=check,
                unchanged=unchanged)


@probe("PATCH /queues/{P}")
def _patch_project(w: World, c: Case) -> Call:
    return _patch_queue(w, c, c.project)


@probe("PATCH /queues/{D}")
def _patch_department(w: World, c: Case) -> Call:
    return _patch_queue(w, c, c.department)


@probe("GET /queues")
def _list_queues(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        names = {q["name"] for q in resp.json()}
        must, may = visible_now(w, c.actor)
        assert must <= names <= may, f"{c.actor} sees {sorted(names)}; designed: {sorted(must)}"
    return Call("GET", "/api/v1/queues", check=check)


def _get_queue(c: Case, queue: str) -> Call:
    def check(resp: httpx.Response) -> None:
        assert resp.json()["name"] == queue
    return Call("GET", f"/api/v1/queues/{queue}", check=check)


@probe("GET /queues/{P}")
def _get_project(w: World, c: Case) -> Call:
    return _get_queue(c, c.project)


@probe("GET /queues/{D}")
def _get_department(w: World, c: Case) -> Call:
    return _get_queue(c, c.department)


@probe("POST /jobs project=P")
def _submit(w: World, c: Case) -> Call:
    def named() -> list[Any]:
        return [j for j in w.get("/api/v1/jobs", limit=10_000) if j["name"] == c.mark]

    def check(resp: httpx.Response) -> None:
        assert resp.json()["project"] == c.project and len(named()) == 1

    def unchanged() -> None:
        assert named() == [], f"refused, yet job {named()} was created"
    body = {"project": c.project, "command": QUICK, "name": c.mark}
    return Call("POST", "/api/v1/jobs", body, check=check, unchanged=unchanged)


@probe("GET /jobs")
def _list_jobs(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        must, may = visible_now(w, c.actor)
        every = w.get("/api/v1/jobs", limit=10_000)
        got = {j["id"]: j["project"] for j in resp.json()}
        assert set(got.values()) <= may, f"{c.actor} got jobs of {set(got.values()) - may}"
        assert {j["id"] for j in every if j["project"] in must} <= set(got)
    return Call("GET", "/api/v1/jobs", params={"limit": 10_000}, check=check)


@probe("GET /jobs?project=P")
def _list_jobs_of(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        got = {j["id"] for j in resp.json()}
        if c.actor == "admin" or c.project in SEES[c.actor]:
            every = w.get("/api/v1/jobs", project=c.project, limit=10_000)
            assert got == {j["id"] for j in every} and w.gpu_job[c.project] in got
        else:
            assert got == set(), f"{c.actor} listed jobs of {c.project}: {sorted(got)}"
    return Call("GET", "/api/v1/jobs", params={"project": c.project, "limit": 10_000},
                check=check)


def _read_job(w: World, c: Case, tail: str, check: Callable[[httpx.Response, str], None]
              ) -> Call:
    job_id = w.gpu_job[c.project]
    return Call("GET", f"/api/v1/jobs/{job_id}{tail}", check=lambda resp: check(resp, job_id))


@probe("GET /jobs/{id in P}")
def _get_job(w: World, c: Case) -> Call:
    def check(resp: httpx.Response, job_id: str) -> None:
        assert resp.json()["id"] == job_id and resp.json()["project"] == c.project
    return _read_job(w, c, "", check)


@probe("GET /jobs/{id in P}/events")
def _job_events(w: World, c: Case) -> Call:
    def check(resp: httpx.Response, job_id: str) -> None:
        assert isinstance(resp.json(), list) and resp.json()
    return _read_job(w, c, "/events", check)


@probe("GET /jobs/{id in P}/explain")
def _job_explain(w: World, c: Case) -> Call:
    def check(resp: httpx.Response, job_id: str) -> None:
        assert resp.json()["job_id"] == job_id
    return _read_job(w, c, "/explain", check)


@probe("GET /jobs/{id in P}/logs")
def _job_logs(w: World, c: Case) -> Call:
    def check(resp: httpx.Response, job_id: str) -> None:
        assert resp.headers["content-type"].startswith("text/plain")
    return _read_job(w, c, "/logs", check)


@probe("POST /jobs/{id in P}/cancel")
def _cancel(w: World, c: Case) -> Call:
    # allowed: a fresh job of its own (a second cancel of one job would be a conflict);
    # refused: the project's running GPU job, which must go on running
    job_id = (w.submit(c.project, f"fresh-cancel-{c.mark}", LONG) if c.allowed
              else w.gpu_job[c.project])

    def check(resp: httpx.Response) -> None:
        assert resp.json()["id"] == job_id and w.cancelled(job_id)

    def unchanged() -> None:
        assert not w.cancelled(job_id) and w.job_state(job_id) == "running", \
            f"refused, yet job {job_id} of {c.project} is being cancelled"
    return Call("POST", f"/api/v1/jobs/{job_id}/cancel", check=check, unchanged=unchanged)


@probe("GET /nodes")
def _nodes(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        holders = [h for n in resp.json() for d in n["devices"] for h in d["holders"]]
        for project, job_id in w.gpu_job.items():
            shown = f"{project}/{job_id}"
            if c.actor == "admin" or project in SEES[c.actor]:
                assert shown in holders, f"{c.actor} should see {shown} in {holders}"
            else:
                assert job_id not in resp.text and shown not in holders, \
                    f"{c.actor} sees {project}'s job {job_id} on the nodes: {holders}"
                assert HIDDEN in holders, holders
        for h in holders:
            assert h == HIDDEN or c.actor == "admin" or h.split("/")[0] in SEES[c.actor], h
    return Call("GET", "/api/v1/nodes", check=check)


@probe("GET /whoami")
def _whoami(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert resp.json()["user"] == c.actor
    return Call("GET", "/api/v1/whoami", check=check)


@probe("POST /tokens user=U")
def _create_token(w: World, c: Case) -> Call:
    def made() -> list[Any]:
        return [t for t in w.tokens().values() if t["description"] == c.mark]

    def check(resp: httpx.Response) -> None:
        assert resp.json()["user"] == c.user and resp.json()["token"].startswith("fp_")
        assert [t["user"] for t in made()] == [c.user]

    def unchanged() -> None:
        assert made() == [], f"refused, yet a token for {c.user} was created: {made()}"
    return Call("POST", "/api/v1/tokens", {"user": c.user, "description": c.mark}, check=check,
                unchanged=unchanged)


@probe("GET /tokens")
def _list_tokens(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        every = w.tokens()
        got = {t["id"] for t in resp.json()}
        if c.actor == "admin":
            assert set(w.victim_token.values()) <= got
        else:
            assert got == {i for i, t in every.items() if t["user"] == c.actor}, \
                f"{c.actor} lists tokens of {sorted({every[i]['user'] for i in got})}"
        assert all("token" not in t and "hash" not in t for t in resp.json())
    return Call("GET", "/api/v1/tokens", check=check)


@probe("DELETE /tokens/{id of U}")
def _revoke_token(w: World, c: Case) -> Call:
    token_id = (w.token(c.user, f"fresh-{c.mark}") if c.allowed else w.victim_token[c.user])

    def revoked() -> bool:
        return w.tokens()[token_id]["revoked_at"] is not None

    def check(resp: httpx.Response) -> None:
        assert resp.json()["id"] == token_id and revoked()

    def unchanged() -> None:
        assert not revoked(), f"refused, yet token {token_id} of {c.user} was revoked"
    return Call("DELETE", f"/api/v1/tokens/{token_id}", check=check, unchanged=unchanged)


def _grant(w: World, c: Case, role: str, scope: str) -> Call:
    subject = f"g{c.mark}-{role}"

    def made() -> list[dict[str, Any]]:
        return [b for b in w.bindings() if b["subject"] == subject]

    def check(resp: httpx.Response) -> None:
        assert [(b["role"], b["scope"]) for b in made()] == [(role, scope)]

    def unchanged() -> None:
        assert made() == [], f"refused, yet {subject} got {role} on {scope}"

    def cleanup(resp: httpx.Response) -> None:
        if role == "admin":  # keep a single admin binding (see DELETE admin@*)
            for b in made():
                assert w.admin.delete(f"/api/v1/role-bindings/{b['id']}").status_code == 200
    return Call("POST", "/api/v1/role-bindings",
                {"subject": subject, "role": role, "scope": scope},
                check=check, unchanged=unchanged, cleanup=cleanup)


@probe("POST /role-bindings viewer@P")
def _grant_viewer(w: World, c: Case) -> Call:
    return _grant(w, c, "viewer", c.project)


@probe("POST /role-bindings researcher@D")
def _grant_researcher(w: World, c: Case) -> Call:
    return _grant(w, c, "researcher", c.department)


@probe("POST /role-bindings dept-admin@D")
def _grant_department_admin(w: World, c: Case) -> Call:
    return _grant(w, c, "department-admin", c.department)


@probe("POST /role-bindings admin@*")
def _grant_admin(w: World, c: Case) -> Call:
    return _grant(w, c, "admin", "*")


@probe("GET /role-bindings")
def _list_bindings(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        every = w.bindings()
        got = {b["id"] for b in resp.json()}
        designed = {b["id"] for b in every if c.actor == "admin" or b["subject"] == c.actor
                    or b["scope"] in MANAGES[c.actor]}
        assert got == designed, (f"{c.actor} lists {sorted(got - designed)} it should not, "
                                 f"misses {sorted(designed - got)}")
    return Call("GET", "/api/v1/role-bindings", check=check)


def _revoke(w: World, c: Case, binding_id: int) -> Call:
    def present() -> bool:
        return any(b["id"] == binding_id for b in w.bindings())

    def check(resp: httpx.Response) -> None:
        assert resp.json()["id"] == binding_id and not present()

    def unchanged() -> None:
        assert present(), f"refused, yet role binding {binding_id} was revoked"
    return Call("DELETE", f"/api/v1/role-bindings/{binding_id}", check=check,
                unchanged=unchanged)


@probe("DELETE /role-bindings viewer@P")
def _revoke_viewer(w: World, c: Case) -> Call:
    binding = (w.grant(f"fresh-{c.mark}-viewer", "viewer", c.project) if c.allowed
               else w.victim_viewer[c.project])
    return _revoke(w, c, binding)


@probe("DELETE /role-bindings d-admin@D")
def _revoke_department_admin(w: World, c: Case) -> Call:
    binding = (w.grant(f"fresh-{c.mark}-boss", "department-admin", c.department) if c.allowed
               else w.victim_boss[c.department])
    return _revoke(w, c, binding)


@probe("DELETE /role-bindings admin@*")
def _revoke_admin(w: World, c: Case) -> Call:
    admins = [b["id"] for b in w.bindings() if b["role"] == "admin"]
    assert admins == [w.admin_binding], f"not the only admin binding any more: {admins}"
    return _revoke(w, c, w.admin_binding)


@probe("GET /audit")
def _audit(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert isinstance(resp.json(), list) and resp.json()
    return Call("GET", "/api/v1/audit", check=check)


def _usage_check(actor: str, key: str) -> Callable[[httpx.Response], None]:
    def check(resp: httpx.Response) -> None:
        body = resp.json()
        projects = ({r["project"] for r in body} if key == "rows"
                    else set(body["series"]))
        assert actor == "admin" or projects <= SEES[actor], (actor, projects)
    return check


@probe("GET /usage")
def _usage(w: World, c: Case) -> Call:
    return Call("GET", "/api/v1/usage", check=_usage_check(c.actor, "rows"))


@probe("GET /usage/series")
def _usage_series(w: World, c: Case) -> Call:
    return Call("GET", "/api/v1/usage/series", check=_usage_check(c.actor, "series"))


@probe("GET /metrics")
def _metrics(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert "fairpool_jobs" in resp.text
    return Call("GET", "/metrics", check=check)


def _node_name(w: World) -> str:
    nodes = w.http["admin"].get("/api/v1/nodes").json()
    return str(nodes[0]["name"])


def _not_cordoned(w: World) -> Callable[[], None]:
    def unchanged() -> None:
        assert not any(n["cordoned"] for n in w.http["admin"].get("/api/v1/nodes").json())
    return unchanged


def _uncordon_all(w: World) -> Callable[[httpx.Response], None]:
    def cleanup(_: httpx.Response) -> None:
        for n in w.http["admin"].get("/api/v1/nodes").json():
            w.http["admin"].post(f"/api/v1/nodes/{n['name']}/uncordon")
    return cleanup


@probe("POST /nodes/{n}/cordon")
def _cordon(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert resp.json()["cordoned"] is True
    return Call("POST", f"/api/v1/nodes/{_node_name(w)}/cordon", json={"reason": "matrix"},
                check=check, unchanged=_not_cordoned(w), cleanup=_uncordon_all(w))


@probe("POST /nodes/{n}/uncordon")
def _uncordon(w: World, c: Case) -> Call:
    name = _node_name(w)
    w.http["admin"].post(f"/api/v1/nodes/{name}/cordon", json={"reason": "matrix"})

    def still_cordoned() -> None:
        nodes = w.http["admin"].get("/api/v1/nodes").json()
        assert all(n["cordoned"] for n in nodes if n["name"] == name)
    return Call("POST", f"/api/v1/nodes/{name}/uncordon", unchanged=still_cordoned,
                cleanup=_uncordon_all(w))


@probe("POST /nodes/{none}/drain")
def _drain(w: World, c: Case) -> Call:
    return Call("POST", "/api/v1/nodes/no-such-node/drain", unchanged=_not_cordoned(w))


@probe("GET /accounts")
def _list_accounts(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        got = {a["user"]: a["account"] for a in resp.json()}
        assert got.get(VICTIM_USER) == VICTIM_ACCOUNT and got == w.accounts()
    return Call("GET", "/api/v1/accounts", check=check)


def _account_of(c: Case) -> str:
    return c.mark.replace("-", "_")[:32]


@probe("PUT /accounts/{U}")
def _map_account(w: World, c: Case) -> Call:
    # allowed: a user of its own; refused: the victim, which must keep its account
    user = c.mark if c.allowed else VICTIM_USER

    def check(resp: httpx.Response) -> None:
        assert resp.json()["account"] == _account_of(c) and w.accounts()[user] == _account_of(c)

    def unchanged() -> None:
        assert w.accounts().get(VICTIM_USER) == VICTIM_ACCOUNT, \
            f"refused, yet {VICTIM_USER} was mapped to {w.accounts().get(VICTIM_USER)}"
    return Call("PUT", f"/api/v1/accounts/{user}", {"account": _account_of(c)}, check=check,
                unchanged=unchanged)


@probe("DELETE /accounts/{U}")
def _unmap_account(w: World, c: Case) -> Call:
    user = VICTIM_USER
    if c.allowed:
        user = f"fresh-{c.mark}"
        w.map_account(user, "fresh")

    def check(resp: httpx.Response) -> None:
        assert resp.json()["user"] == user and user not in w.accounts()

    def unchanged() -> None:
        assert w.accounts().get(VICTIM_USER) == VICTIM_ACCOUNT, \
            f"refused, yet {VICTIM_USER}'s mapping was removed"
    return Call("DELETE", f"/api/v1/accounts/{user}", check=check, unchanged=unchanged)


#: a user that stays disabled (refused enables aim at it) and one that stays enabled
DISABLED_VICTIM, ENABLED_VICTIM = "victim-disabled", "victim-enabled"


def _disabled(w: World) -> set[str]:
    return {u["user"] for u in w.get("/api/v1/users/disabled")}


def _disable(w: World, user: str) -> None:
    resp = w.admin.post(f"/api/v1/users/{user}/disable")
    assert resp.status_code in (200, 409), resp.text  # 409: it was already


@probe("GET /users/disabled")
def _list_disabled(w: World, c: Case) -> Call:
    _disable(w, DISABLED_VICTIM)

    def check(resp: httpx.Response) -> None:
        assert DISABLED_VICTIM in {u["user"] for u in resp.json()}
    return Call("GET", "/api/v1/users/disabled", check=check)


@probe("POST /users/{U}/disable")
def _disable_user(w: World, c: Case) -> Call:
    user = c.mark if c.allowed else ENABLED_VICTIM

    def check(resp: httpx.Response) -> None:
        assert resp.json()["disabled"] and user in _disabled(w)

    def unchanged() -> None:
        assert ENABLED_VICTIM not in _disabled(w), f"refused, yet {ENABLED_VICTIM} was disabled"
    return Call("POST", f"/api/v1/users/{user}/disable", check=check, unchanged=unchanged)


@probe("POST /users/{U}/enable")
def _enable_user(w: World, c: Case) -> Call:
    user = f"fresh-{c.mark}" if c.allowed else DISABLED_VICTIM
    _disable(w, user)

    def check(resp: httpx.Response) -> None:
        assert not resp.json()["disabled"] and user not in _disabled(w)

    def unchanged() -> None:
        assert DISABLED_VICTIM in _disabled(w), f"refused, yet {DISABLED_VICTIM} was enabled"
    return Call("POST", f"/api/v1/users/{user}/enable", check=check, unchanged=unchanged)


@probe("GET /projects/{P}/secrets")
def _list_secrets(w: World, c: Case) -> Call:
    def check(resp: httpx.Response) -> None:
        assert "VICTIM" in {s["name"] for s in resp.json()}
        assert "do-not-touch" not in resp.text
        assert all(set(s) == {"project", "name", "updated_by", "updated_at"}
                   and s["project"] == c.project for s in resp.json())
    return Call("GET", f"/api/v1/projects/{c.project}/secrets", check=check)


@probe("PUT /projects/{P}/secrets/{K}")
def _put_secret(w: World, c: Case) -> Call:
    name = f"PUT_{c.mark}".upper().replace("-", "_")

    def check(resp: httpx.Response) -> None:
        assert name in w.secret_names(c.project) and "value-of" not in resp.text

    def unchanged() -> None:
        assert name not in w.secret_names(c.project), f"refused, yet {name} was set"
    return Call("PUT", f"/api/v1/projects/{c.project}/secrets/{name}",
                {"value": f"value-of-{c.mark}"}, check=check, unchanged=unchanged)


@probe("DELETE /projects/{P}/secrets/{K}")
def _delete_secret(w: World, c: Case) -> Call:
    name = "VICTIM"
    if c.allowed:
        name = f"GONE_{c.mark}".upper().replace("-", "_")
        made = w.admin.put(f"/api/v1/projects/{c.project}/secrets/{name}", json={"value": "x"})
        assert made.status_code == 200, made.text

    def check(resp: httpx.Response) -> None:
        assert name not in w.secret_names(c.project)

    def unchanged() -> None:
        assert name in w.secret_names(c.project), f"refused, yet {name} was deleted"
    return Call("DELETE", f"/api/v1/projects/{c.project}/secrets/{name}", check=check,
                unchanged=unchanged)


assert set(PROBES) == set(EXPECTED), set(EXPECTED) ^ set(PROBES)


# -- the tests ----------------------------------------------------------------------------------
def run_case(http: httpx.Client, call: Call, case: Case) -> None:
    """Make ``call`` as ``case``'s caller and hold the answer to the designed status, then to
    its check (allowed) or to nothing having changed (refused)."""
    resp = http.request(call.method, call.path, json=call.json, params=call.params)
    try:
        assert resp.status_code == case.expected, (
            f"{case}: {call.method} {call.path} gave {resp.status_code}, designed "
            f"{case.expected}: {resp.text[:300]}")
        if case.allowed and call.check is not None:
            call.check(resp)
        elif not case.allowed and call.unchanged is not None:
            call.unchanged()
    finally:
        if call.cleanup is not None:
            call.cleanup(resp)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matrix(world: World, case: Case) -> None:
    call = PROBES[case.row](world, case)
    CHECKED.append(case)
    run_case(world.http[case.actor], call, case)


def _allowed(row: str, target: Callable[[str, str], str], value: str) -> set[str]:
    """The marks of the cells of ``row`` the design allows whose target is ``value``."""
    return {f"mx-{a}-{s}" for (a, s), status in EXPECTED[row].items()
            if status < 300 and target(a, s) == value}


def _mark(name: str) -> str:
    """mx-<actor>-<scope> from a name made by a case (its prefix and suffix cut off)."""
    found = re.search(r"mx-[a-z]+-(own|other|pool)", name.lower().replace("_", "-"))
    return found.group(0) if found else ""


def test_no_cross_scope_writes(world: World) -> None:
    """After the matrix, everything that changed (admin snapshots before and after) is a write
    some cell of the table allows, in the scope that cell targets: nothing was written across
    scopes (nor refused-but-done within one), and every victim is untouched."""
    before, after = world.before, world.snapshot()
    assert before is not None
    problems: list[str] = []

    for name, (parent, weight) in after.queues.items():
        if name not in before.queues:  # created by a case
            mark = _mark(name)
            if parent is None:
                ok = mark in _allowed("POST /departments", lambda a, s: "", "")
            else:
                ok = mark in _allowed("POST /projects dept=D", department_of, parent or "")
            if not ok:
                problems.append(f"queue {name} (in {parent}) was created")
        elif weight != before.queues[name][1]:
            row = "PATCH /queues/{D}" if parent is None else "PATCH /queues/{P}"
            target = department_of if parent is None else project_of
            writers = {WEIGHT[m.split("-")[1]] for m in _allowed(row, target, name)}
            if weight not in writers:
                problems.append(f"queue {name}'s weight is {weight}, set by nobody allowed "
                                f"(allowed: {sorted(writers)})")

    for job_id, (project, name, _) in after.jobs.items():
        if job_id not in before.jobs and not name.startswith("fresh-") and (
                _mark(name) not in _allowed("POST /jobs project=P", project_of, project)):
            problems.append(f"job {job_id} {name!r} was submitted to {project}")
    for job_id in after.cancels - before.cancels:
        if not after.jobs[job_id][1].startswith("fresh-"):
            problems.append(f"job {job_id} {after.jobs[job_id][:2]} was cancelled")
    for project, job_id in world.gpu_job.items():
        if after.jobs[job_id][2] != "running":
            problems.append(f"{project}'s victim job {job_id} is {after.jobs[job_id][2]}")

    for project, names in after.secrets.items():
        old = before.secrets.get(project, set())
        for name in names - old:
            allowed = _allowed("PUT /projects/{P}/secrets/{K}", project_of, project)
            if not name.startswith("GONE_") and _mark(name) not in allowed:
                problems.append(f"secret {name} was set in {project}")
        problems += [f"secret {n} of {project} was deleted" for n in old - names]

    for binding_id, (subject, role, scope) in after.bindings.items():
        if binding_id in before.bindings or subject.startswith("fresh-"):
            continue
        row = {"viewer": "POST /role-bindings viewer@P",
               "researcher": "POST /role-bindings researcher@D",
               "department-admin": "POST /role-bindings dept-admin@D",
               "admin": "POST /role-bindings admin@*"}[role]
        target = {"viewer": project_of, "admin": lambda a, s: "*"}.get(role, department_of)
        if _mark(subject) not in _allowed(row, target, scope):
            problems.append(f"{subject} was granted {role} on {scope}")
    problems += [f"role binding {b} {before.bindings[b]} was revoked"
                 for b in set(before.bindings) - set(after.bindings)]

    for token_id, (user, description, revoked) in after.tokens.items():
        if token_id not in before.tokens and not description.startswith("fresh-") and (
                _mark(description) not in _allowed("POST /tokens user=U", user_of, user)):
            problems.append(f"a token for {user} was created ({description})")
        if revoked and not description.startswith("fresh-"):
            problems.append(f"token {token_id} of {user} ({description}) was revoked")

    for user, account in after.accounts.items():
        if user in before.accounts:
            if account != before.accounts[user]:
                problems.append(f"{user}'s account was changed to {account}")
        elif _mark(user) not in _allowed("PUT /accounts/{U}", lambda a, s: "", ""):
            problems.append(f"{user} was mapped to {account}")
    problems += [f"{u}'s account mapping was removed" for u in set(before.accounts)
                 - set(after.accounts)]

    assert problems == [], "\n".join(problems)


def test_zz_count(capsys: pytest.CaptureFixture[str]) -> None:
    """Report how many (endpoint, caller, scope) cases were requested and compared."""
    rows = {c.row for c in CHECKED}
    with capsys.disabled():
        print(f"\nauthorisation matrix: {len(CHECKED)} of {len(CASES)} (endpoint, caller, scope) "
              f"cases checked, {len(rows)} endpoints × {len(ACTORS)} callers")
    assert CHECKED, "no matrix case ran"
