"""Nobody can cordon the pool through the node circuit breaker (issue 16, finding 1).

On a real server with three simulated nodes (each its own node pool, 2 GPUs) and a breaker of
3 failures in 60 s: one researcher's jobs whose command does not exist (exit 127) or that kill
themselves with SIGKILL, from two projects, and the same from two members of one project,
cordon no node, nor does another project's single failure after such a flood, and another
project's jobs that need a whole node still start; the same failures from three users in
three projects (one counts per user and per project) do cordon the node; and the reason
every viewer sees in ``fairpool nodes`` and the REST view counts kinds without naming any
job."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairpool.schemas.jobs import JobOut
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import BIN, start_pool, stop_pool
from tests.security.conftest import Org

NODES = "".join(f'[[node]]\nname = "node-{n}"\ngpus = 2\npool = "{n}"\n' for n in "abc")
NOT_FOUND = ["fairpool-no-such-command"]  # exit 127 from the worker's shell
KILL_SELF = ["sh", "-c", "kill -9 $$"]
KILL_SELF_PY = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    tmp: Path = tmp_path_factory.mktemp("breaker")
    (tmp / "nodes.toml").write_text(NODES)
    pool = start_pool(tmp, "--nodes-file", str(tmp / "nodes.toml"), env_extra={
        "FAIRPOOL_BREAKER_FAILURES": "3", "FAIRPOOL_BREAKER_WINDOW_S": "60",
        "FAIRPOOL_BREAKER_COOLDOWN_S": "120"})
    try:
        admin = pool.client
        admin.create_department(QueueCreate(name="d1", quota=ResourceSpec(gpus=2)))
        admin.create_department(QueueCreate(name="d2", quota=ResourceSpec(gpus=4)))
        for name, dept, gpus in (("p1", "d1", 1), ("p1b", "d1", 1), ("p2", "d2", 4)):
            admin.create_project(ProjectCreate(name=name, department=dept,
                                               quota=ResourceSpec(gpus=gpus)))
        tokens = {"admin": pool.token}
        for user, role, scope in (("rita", "researcher", "p1"), ("rita", "researcher", "p1b"),
                                  ("ralph", "researcher", "p1"), ("vic", "viewer", "p1"),
                                  ("pia", "researcher", "p1b"),
                                  ("oscar", "researcher", "p2")):
            tokens.setdefault(user, admin.create_token(user).token)
            admin.grant(user, role, scope)
        yield Org(pool, tokens)
    finally:
        stop_pool(pool)


def fail_all(org: Org, who: list[tuple[str, str]], node: str) -> list[JobOut]:
    """One CPU job per (user, project) on ``node``, each failing the job's own way; all end
    failed."""
    commands = [NOT_FOUND, KILL_SELF, KILL_SELF_PY]
    jobs = [org.client(user).submit(project=project, node_pool=node,
                                    command=commands[i % len(commands)])
            for i, (user, project) in enumerate(who)]
    for job in jobs:
        assert org.pool.wait(job.id, {"failed", "succeeded"}) == "failed"
        assert org.pool.client.job(job.id).placement[0].node == f"node-{node}"
    return jobs


def cordoned(org: Org) -> dict[str, str | None]:
    return {n.name: n.cordon_reason for n in org.pool.client.nodes() if n.cordoned}


def test_one_researcher_or_one_project_cannot_cordon_nodes(org: Org) -> None:
    # one researcher in two projects on node-a; two members of one project on node-b
    failed = fail_all(org, [("rita", "p1"), ("rita", "p1b")] * 3, "a")
    failed += fail_all(org, [("rita", "p1"), ("ralph", "p1")] * 3, "b")
    assert {org.pool.client.job(j.id).exit_code for j in failed} == {127, -9}
    assert cordoned(org) == {}
    # nor does the flood make another project's single failure there decisive
    fail_all(org, [("oscar", "p2")], "a")
    assert cordoned(org) == {}
    # another project's jobs that need a whole node still start, on the nodes attacked
    oscar = org.client("oscar")
    whole = [oscar.submit(project="p2", gpus=2, node_pool=n, command=SLEEP) for n in "ab"]
    for job in whole:
        assert org.pool.wait(job.id, {"running"}) == "running"
    for job in whole:
        oscar.cancel(job.id)
        org.pool.wait(job.id, {"cancelled"})


def test_failures_of_three_users_in_three_projects_cordon_and_name_no_job(org: Org) -> None:
    failed = fail_all(org, [("rita", "p1"), ("oscar", "p2"), ("pia", "p1b")], "c")
    reason = cordoned(org).get("node-c")
    assert reason is not None and list(cordoned(org)) == ["node-c"]
    assert reason.startswith("workers of 3 jobs failed here within 60 s: ")
    assert "(jobs of 3 users in 3 projects); cordoned until " in reason
    for job in failed:  # each failing job is told its own node was cordoned
        assert any(e.kind == "node-cordoned" and "node node-c" in e.message
                   for e in org.pool.client.events(job.id))
    # a viewer of p1 sees the reason, and no job id in it (oscar's p2 job least of all)
    env = {**org.pool.env, "FAIRPOOL_TOKEN": org.tokens["vic"]}
    listing = subprocess.run([str(BIN), "nodes"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "workers of 3 jobs failed here" in listing.stdout
    with org.http("vic") as http:
        resp = http.get("/api/v1/nodes")
    assert resp.status_code == 200
    shown = resp.text + listing.stdout
    for job in failed:
        assert job.id not in shown
    # work goes elsewhere meanwhile, and an admin can lift it
    moved = org.client("oscar").submit(project="p2", gpus=2, command=SLEEP)
    assert org.pool.wait(moved.id, {"running"}) == "running"
    assert org.pool.client.job(moved.id).placement[0].node != "node-c"
    org.pool.client.cancel(moved.id)
    org.pool.client.uncordon("node-c")
    assert cordoned(org) == {}

