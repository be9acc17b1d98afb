"""A real local multi-node Ray cluster (``ray.cluster_utils.Cluster``: one raylet per node, all
on this machine) and a real ``fairpool up --ray-address`` on it.

Nodes offer simulated GPUs the way a user would on machines without GPUs: Ray's ``GPU`` resource
(``num_gpus``) with no NVML device behind it. The head node has no GPUs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Pool, start_pool, stop_pool

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024,
                             "include_dashboard": False}


def gpu_node(cluster: Cluster, gpus: int = 2, **labels: str) -> Any:
    return cluster.add_node(num_gpus=gpus, labels=labels, **NODE_ARGS)


def ray_node_name(node: Any) -> str:
    """The fairpool name of a node added by ``Cluster.add_node`` (see executors.ray.inventory)."""
    return f"{node.node_ip_address}-{node.node_id[:8]}"


@dataclass
class RayPool:
    cluster: Cluster
    pool: Pool
    nodes: list[Any]  # the GPU nodes, in the order added


def make_cluster(gpu_nodes: int) -> tuple[Cluster, list[Any]]:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    cluster = Cluster(initialize_head=True, head_node_args=dict(NODE_ARGS))
    nodes = [gpu_node(cluster) for _ in range(gpu_nodes)]
    cluster.wait_for_nodes()
    return cluster, nodes


def ray_pool(tmp: Path, gpu_nodes: int = 2) -> Iterator[RayPool]:
    """``gpu_nodes`` Ray nodes with 2 simulated GPUs each; department research (quota 4) with
    projects vision and nlp (quota 2 each)."""
    cluster, nodes = make_cluster(gpu_nodes)
    try:
        pool = start_pool(tmp, "--ray-address", cluster.address, timeout=120)
        try:
            pool.cli("department", "create", "research", "--quota-gpus", "4")
            pool.cli("project", "create", "vision", "-d", "research", "--quota-gpus", "2")
            pool.cli("project", "create", "nlp", "-d", "research", "--quota-gpus", "2")
            yield RayPool(cluster, pool, nodes)
        finally:
            stop_pool(pool)
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def rp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayPool]:
    yield from ray_pool(tmp_path_factory.mktemp("raypool"))
