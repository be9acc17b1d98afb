"""``fairpool project list|delete`` and ``fairpool department list|delete`` against a real
server: the listings, a delete refused while a project has a live job (one line naming it) or
a department has projects, the delete once they are gone, and a deleted name made again."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Pool, start_pool, stop_pool

PY = sys.executable
HOLD = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Pool]:
    """A pool of its own (these tests delete queues): department lab with projects a and b,
    department empty with none."""
    pool = start_pool(tmp_path, "--simulate-gpus", "2")
    try:
        pool.cli("department", "create", "lab", "--quota-gpus", "2")
        pool.cli("department", "create", "empty")
        pool.cli("project", "create", "a", "-d", "lab", "--quota-gpus", "1")
        pool.cli("project", "create", "b", "-d", "lab", "--quota-gpus", "1")
        yield pool
    finally:
        stop_pool(pool)


def refused(pool: Pool, *args: str) -> str:
    out = pool.cli(*args, check=False)
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: "), out.stderr
    return out.stderr


def names(pool: Pool, kind: str) -> list[str]:
    return [q["name"] for q in json.loads(pool.cli(kind, "list", "--json").stdout)]


def test_lists_show_projects_and_departments(tree: Pool) -> None:
    assert names(tree, "project") == ["a", "b"]
    assert names(tree, "department") == ["empty", "lab"]
    table = tree.cli("department", "list").stdout
    lab = next(ln for ln in table.splitlines() if ln.lstrip("│ ").startswith("lab"))
    assert " 2 " in lab, table  # its two projects
    only = json.loads(tree.cli("project", "list", "-d", "lab", "--json").stdout)
    assert [q["parent"] for q in only] == ["lab", "lab"]
    assert "no department nope" in refused(tree, "project", "list", "-d", "nope")


def test_a_delete_is_refused_while_something_is_left(tree: Pool, tmp_path: Path) -> None:
    trigger = tmp_path / "go"
    job = json.loads(tree.cli("submit", "--json", "-p", "a", "--", PY, "-c", HOLD,
                              str(trigger)).stdout)["id"]
    tree.wait(job, {"running"})
    why = refused(tree, "project", "delete", "a", "--yes")
    assert "project a has 1 live job" in why and job in why, why
    why = refused(tree, "department", "delete", "lab", "--yes")
    assert "2 projects (a, b)" in why, why
    assert "is a department, not a project" in refused(tree, "project", "delete", "lab",
                                                       "--yes")
    # no terminal to ask on and no --yes: nothing is deleted
    assert "add --yes" in refused(tree, "project", "delete", "b")
    assert names(tree, "project") == ["a", "b"]
    trigger.write_text("")
    assert tree.wait(job, {"succeeded"}) == "succeeded"
    assert "deleted" in tree.cli("project", "delete", "a", "--yes").stdout
    assert "deleted" in tree.cli("project", "delete", "b", "--yes").stdout
    assert "deleted" in tree.cli("department", "delete", "lab", "--yes").stdout
    assert names(tree, "project") == []
    assert names(tree, "department") == ["empty"]
    # the finished job stays readable; a submit to the deleted project is refused
    assert tree.client.job(job).state == "succeeded"
    out = tree.cli("submit", "-p", "a", "--", "true", check=False)
    assert out.returncode == 1 and "project a does not exist" in out.stderr, out.stderr
    assert "project a does not exist" in refused(tree, "project", "delete", "a", "--yes")


def test_a_deleted_name_can_be_made_again(tree: Pool) -> None:
    tree.cli("project", "delete", "b", "--yes")
    tree.cli("project", "create", "b", "-d", "empty", "--quota-gpus", "0")
    again = json.loads(tree.cli("project", "list", "--json").stdout)
    b = next(q for q in again if q["name"] == "b")
    assert b["parent"] == "empty" and b["quota"]["gpus"] == 0
    job = json.loads(tree.cli("submit", "--json", "-p", "b", "--", "true").stdout)["id"]
    assert tree.wait(job, {"succeeded"}) == "succeeded"


def test_a_job_that_can_never_fit_its_quota_is_refused_with_the_fix(tree: Pool) -> None:
    why = refused(tree, "submit", "-p", "a", "--priority", "build", "--gpus", "2", "--", "true")
    assert "it needs 2 GPUs and project a's quota is 1 GPU" in why, why
    assert "`fairpool project set-quota a --quota-gpus 2`" in why, why
    why = refused(tree, "project", "set-quota", "a", "--quota-gpus", "3")
    assert "department lab has a GPU quota of 2 GPUs and its projects would be promised 4 " \
        "GPUs (a 3 GPUs, b 1 GPU); give a at most 1 GPU" in why, why
    tree.cli("project", "set-quota", "a", "--quota-gpus", "3", "--over-commit")
    assert "department lab is over-committed by 2 GPUs" in tree.cli("queues").stdout
    why = refused(tree, "submit", "-p", "a", "--priority", "build", "--gpus", "1",
                  "--workers", "3", "--", "true")
    assert "it needs 3 GPUs and department lab's quota is 2 GPUs" in why, why  # it binds now
    why = refused(tree, "department", "set-quota", "lab", "--quota-gpus", "3")
    assert "the departments' GPU quotas would add up to 3 GPUs but the pool has 2 GPUs" in why
    tree.cli("project", "set-quota", "a", "--quota-gpus", "1")  # mending needs no flag
    assert "over-committed" not in tree.cli("queues").stdout
    job = json.loads(tree.cli("submit", "--json", "-p", "a", "--priority", "build", "--gpus",
                              "1", "--", "true").stdout)["id"]
    assert tree.wait(job, {"succeeded"}) == "succeeded"
