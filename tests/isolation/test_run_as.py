"""Jobs run as their submitter's Unix account (``run_as=user``, by the same name or an admin's
mapping) or as their project's service account (``run_as=project``); an account that does not
exist fails the attempt with an event, once, and never falls back to the server's account.

The accounts are made for the test with the reserved prefix ``fptest-`` and removed after."""

from __future__ import annotations

import pwd
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fairpool.client import Client
from tests.e2e.conftest import Pool, start_pool

from .conftest import needs_bwrap, needs_root

pytestmark = [needs_root, needs_bwrap,
              pytest.mark.skipif(shutil.which("useradd") is None, reason="no useradd")]
PREFIX = "fptest-"


@pytest.fixture
def accounts() -> Iterator[dict[str, int]]:
    """Two Unix accounts of this test (reserved prefix), deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    names = [f"{PREFIX}{tag}a", f"{PREFIX}{tag}b", f"{PREFIX}{tag}p"]
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            name], check=True, capture_output=True)
            made.append(name)
        yield {name: pwd.getpwnam(name).pw_uid for name in names}
    finally:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)


def _pool(open_dir: Path, run_as: str, **env: str) -> Pool:
    pool = start_pool(open_dir, "--simulate-gpus", "1", isolated=True,
                      env_extra={"FAIRPOOL_RUN_AS": run_as, **env})
    pool.cli("department", "create", "d", "--quota-gpus", "1")
    return pool


def _run(pool: Pool, client: Client, project: str, open_dir: Path) -> tuple[str, str]:
    job = client.submit(project=project, workdir=str(open_dir), max_retries=2,
                        command=["sh", "-c", "id -un; id -u; echo HOME=$HOME USER=$USER"])
    state = pool.wait(job.id, {"succeeded", "failed"})
    return state, "\n".join([client.logs(job.id), *[
        e.message for e in client.events(job.id)]])


def test_jobs_run_as_their_submitters_account(open_dir: Path, accounts: dict[str, int]
                                             ) -> None:
    alice, bob, _ = accounts
    pool = _pool(open_dir, "user")
    try:
        assert pool.client.nodes()[0].isolation.run_as == "user"  # type: ignore[union-attr]
        pool.cli("project", "create", "p", "-d", "d", "--quota-gpus", "1")
        users = {}
        for user in (alice, "carol"):
            users[user] = Client(pool.url, token=pool.client.create_token(user).token)
            pool.client.grant(user, "researcher", "p")
        state, out = _run(pool, users[alice], "p", open_dir)
        assert state == "succeeded", out
        assert out.splitlines()[:2] == [alice, str(accounts[alice])], out
        assert f"USER={alice}" in out, out
        # carol has no account here: her attempt fails with the reason, once, not as root
        state, out = _run(pool, users["carol"], "p", open_dir)
        assert state == "failed", out
        assert "there is no Unix account 'carol'" in out and "not retried" in out, out
        assert "\n0\n" not in out
        assert pool.client.job(pool.client.jobs()[0].id).retries == 0
        # an admin maps her to an account; her next job runs as it
        out_map = pool.cli("user", "map", "carol", bob)
        assert out_map.returncode == 0
        state, out = _run(pool, users["carol"], "p", open_dir)
        assert state == "succeeded", out
        assert out.splitlines()[:2] == [bob, str(accounts[bob])], out
    finally:
        pool.proc.terminate()
        pool.proc.wait(30)


def test_jobs_run_as_their_projects_service_account(open_dir: Path, accounts: dict[str, int]
                                                    ) -> None:
    service = next(n for n in accounts if n.endswith("p"))
    project = service.removeprefix(PREFIX)  # the account is fptest-{project}
    pool = _pool(open_dir, "project", FAIRPOOL_PROJECT_ACCOUNT=PREFIX + "{project}")
    try:
        pool.cli("project", "create", project, "-d", "d", "--quota-gpus", "1")
        pool.cli("project", "create", "orphan", "-d", "d", "--quota-gpus", "0")
        state, out = _run(pool, pool.client, project, open_dir)
        assert state == "succeeded", out
        assert out.splitlines()[:2] == [service, str(accounts[service])], out
        state, out = _run(pool, pool.client, "orphan", open_dir)
        assert state == "failed" and "no Unix account 'fptest-orphan'" in out, out
    finally:
        pool.proc.terminate()
        pool.proc.wait(30)
