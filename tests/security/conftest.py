"""A running pool with two departments and a user per role, for the security tests.

    d1 ─ p1 (researcher "rita", viewer "vic"), p1b      department admin of d1: "dora"
    d2 ─ p2 (researcher "oscar")                         admin: "admin" (the first start's)
    "nobody" has a token and no role.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fairpool.client import Client
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from tests.e2e.conftest import Pool, start_pool, stop_pool

LONG = [sys.executable, "-c", "import time; time.sleep(600)"]


@dataclass
class Org:
    pool: Pool
    tokens: dict[str, str]  # user -> token

    def http(self, user: str | None) -> httpx.Client:
        headers = {} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=self.pool.url, headers=headers, timeout=30)

    def client(self, user: str) -> Client:
        return Client(self.pool.url, token=self.tokens[user])


def build_org(pool: Pool) -> Org:
    admin = pool.client
    admin.create_department(_q("d1", 2))
    admin.create_department(_q("d2", 2))
    for name, dept in (("p1", "d1"), ("p1b", "d1"), ("p2", "d2")):
        admin.create_project(_p(name, dept))
    tokens = {"admin": pool.token}
    for user, role, scope in (("dora", "department-admin", "d1"), ("rita", "researcher", "p1"),
                              ("vic", "viewer", "p1"), ("oscar", "researcher", "p2"),
                              ("nobody", None, None)):
        tokens[user] = admin.create_token(user).token
        if role is not None:
            assert scope is not None
            admin.grant(user, role, scope)
    return Org(pool, tokens)


def _q(name: str, gpus: float) -> QueueCreate:
    # some of these pools have fewer GPUs than the two departments' quotas (these tests are
    # about access, not quotas): the pool is over-committed on purpose
    return QueueCreate(name=name, quota=ResourceSpec(gpus=gpus), over_commit=True)


def _p(name: str, dept: str) -> ProjectCreate:
    return ProjectCreate(name=name, department=dept, quota=ResourceSpec(gpus=1))


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    tmp: Path = tmp_path_factory.mktemp("secure")
    pool = start_pool(tmp, "--simulate-gpus", "4")
    try:
        yield build_org(pool)
    finally:
        stop_pool(pool)
