"""Inventory discovery: local node, simulated GPUs, nodes files."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from fairpool.executors.gpus import load_nodes_file, local_node, nvml_devices


def test_local_node_with_simulated_gpus() -> None:
    node = local_node(4, gpu_memory_mib=40960, pool="dev")
    assert node.simulated
    assert node.name == socket.gethostname()
    assert node.pool == "dev"
    assert [d.index for d in node.devices] == [0, 1, 2, 3]
    assert all(d.memory_mib == 40960 and d.model == "simulated-gpu" for d in node.devices)
    assert node.cpu == (os.cpu_count() or 1) * 1000
    assert node.memory > 0


def test_local_node_default_memory_and_name() -> None:
    node = local_node(0, name="box")
    assert node.name == "box"
    assert node.devices == ()
    assert node.simulated


def test_local_node_negative_gpus_rejected() -> None:
    with pytest.raises(ValueError, match="simulate_gpus"):
        local_node(-1)


def test_local_node_real_devices_match_nvml() -> None:
    node = local_node()
    assert not node.simulated
    assert list(node.devices) == (nvml_devices() or [])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nodes.toml"
    path.write_text(text)
    return path


GOOD = """
[[node]]
name = "gpu-a"
gpus = 8
cpus = 32
memory_mib = 262144
pool = "a100"
labels = { rack = "r1" }

[[node]]
name = "gpu-b"
gpus = 2
gpu_memory_mib = 24576
"""


def test_load_nodes_file(tmp_path: Path) -> None:
    a, b = load_nodes_file(write(tmp_path, GOOD))
    assert (a.name, len(a.devices), a.cpu, a.memory, a.pool) == ("gpu-a", 8, 32000, 262144, "a100")
    assert dict(a.labels) == {"rack": "r1"}
    assert a.devices[0].memory_mib == 81920
    assert (b.name, len(b.devices), b.pool, dict(b.labels)) == ("gpu-b", 2, "default", {})
    assert all(d.memory_mib == 24576 for d in b.devices)
    assert b.cpu == (os.cpu_count() or 1) * 1000
    assert b.memory == local_node(0).memory
    assert all(n.simulated and n.address == "127.0.0.1" for n in (a, b))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[node]\nname = ", "invalid TOML"),
        ("", r"no \[\[node\]\]"),
        ("[other]\nx = 1\n", "unknown top-level"),
        ("[[node]]\ngpus = 1\n", "node #1: missing 'name'"),
        ('[[node]]\nname = "a"\ngpus = 1\n[[node]]\nname = "a"\ngpus = 2\n',
         "node 'a': duplicate name"),
        ('[[node]]\nname = "a"\n', "node 'a': missing 'gpus'"),
        ('[[node]]\nname = "a"\ngpus = -1\n', "node 'a': 'gpus' must be 0 or more"),
        ('[[node]]\nname = "a"\ngpus = 1.5\n', "node 'a': 'gpus' must be an integer"),
        ('[[node]]\nname = "a"\ngpus = "2"\n', "node 'a': 'gpus' must be an integer"),
        ('[[node]]\nname = "a"\ngpus = 1\ngpu = 2\n', "node 'a': unknown key.* gpu;"),
        ('[[node]]\nname = "a"\ngpus = 1\nlabels = { rack = 1 }\n', "node 'a': 'labels'"),
        ('[[node]]\nname = "a"\ngpus = 1\ncpus = 0\n', "node 'a': 'cpus' must be 1 or more"),
    ],
)
def test_load_nodes_file_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=expected) as info:
        load_nodes_file(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "\n" not in message


def test_load_nodes_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        load_nodes_file(tmp_path / "absent.toml")
