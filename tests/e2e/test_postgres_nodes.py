"""`fairpool up` on PostgreSQL with several simulated nodes from a nodes file: a gang spans two
nodes, ranks get their rendezvous, and node pools steer placement."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import fresh_pg_database
from tests.e2e.conftest import Pool, start_pool, stop_pool

NODES = """
[[node]]
name = "gpu-a"
gpus = 2
pool = "a100"
labels = { rack = "r1" }

[[node]]
name = "gpu-b"
gpus = 2
pool = "a100"

[[node]]
name = "gpu-c"
gpus = 2
pool = "h100"
"""

ENV = ("import json, os; print(json.dumps({k: os.environ[k] for k in ('RANK', 'WORLD_SIZE', "
       "'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT', 'CUDA_VISIBLE_DEVICES')}))")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    tmp = tmp_path_factory.mktemp("pg")
    (tmp / "nodes.toml").write_text(NODES)
    for url in fresh_pg_database():
        p = start_pool(tmp, "--nodes-file", str(tmp / "nodes.toml"), db=url)
        try:
            p.cli("department", "create", "lab", "--quota-gpus", "6")
            p.cli("project", "create", "vision", "-d", "lab", "--quota-gpus", "6")
            yield p
        finally:
            stop_pool(p)


def test_gang_spans_nodes_on_postgres(pool: Pool) -> None:
    nodes = json.loads(pool.cli("nodes", "--json").stdout)
    assert {n["name"] for n in nodes} == {"gpu-a", "gpu-b", "gpu-c"}
    assert all(n["simulated"] for n in nodes)
    job = pool.client.submit(project="vision", command=[sys.executable, "-c", ENV], gpus=2,
                             workers=2, node_pool="a100")
    assert pool.wait(job.id, {"succeeded", "failed"}) == "succeeded"
    placed = pool.client.job(job.id).placement
    assert {w.node for w in placed} == {"gpu-a", "gpu-b"}  # one node each: 2 GPUs per node
    seen = [json.loads(pool.client.logs(job.id, rank=r).strip()) for r in (0, 1)]
    assert [s["RANK"] for s in seen] == ["0", "1"]
    assert {s["WORLD_SIZE"] for s in seen} == {"2"} and {s["LOCAL_RANK"] for s in seen} == {"0"}
    assert seen[0]["MASTER_PORT"] == seen[1]["MASTER_PORT"]
    assert seen[0]["CUDA_VISIBLE_DEVICES"] == "0,1"

    other = pool.client.submit(project="vision", command=["true"], gpus=1, node_pool="h100")
    assert pool.wait(other.id, {"succeeded"}) == "succeeded"
    assert pool.client.job(other.id).placement[0].node == "gpu-c"
    bad = pool.cli("submit", "-p", "vision", "--gpus", "3", "--", "true", check=False)
    assert bad.returncode != 0 and "largest node" in bad.stderr
