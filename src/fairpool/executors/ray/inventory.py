"""Ray's nodes as fairpool nodes (pure: a ``ray.nodes()`` entry and the GPUs probed there in, a
:class:`NodeInfo` out).

- name: the node's ``fairpool.io/node-name`` label, else ``<ip>-<first 8 hex of the node id>``
  (several Ray nodes may share an address);
- GPUs: Ray's ``GPU`` resource, or another resource named in the settings (a custom resource is
  how a cluster without GPUs offers simulated ones). When NVML on the node sees at least that
  many devices they are real (model, memory, UUID from NVML); otherwise they are simulated, with
  the memory given by the ``fairpool.io/gpu-memory-mib`` label (default 80 GiB);
- pool: the ``fairpool.io/pool`` label (default ``default``); labels: the node's Ray labels, less
  Ray's own (``ray.io/…``);
- address (for ``MASTER_ADDR``): the node's IP as Ray knows it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fairpool.executors.base import DeviceInfo, NodeInfo
from fairpool.executors.gpus import SIMULATED_MODEL

POOL_LABEL = "fairpool.io/pool"
NAME_LABEL = "fairpool.io/node-name"
GPU_MEMORY_LABEL = "fairpool.io/gpu-memory-mib"
DEFAULT_GPU_MEMORY_MIB = 81920
_MIB = 1 << 20


def node_name(entry: Mapping[str, Any]) -> str:
    labels = entry.get("Labels") or {}
    name = labels.get(NAME_LABEL)
    if name:
        return str(name)
    return f"{entry.get('NodeManagerAddress', 'ray')}-{str(entry['NodeID'])[:8]}"


def gpu_count(entry: Mapping[str, Any], gpu_resource: str) -> int:
    return int((entry.get("Resources") or {}).get(gpu_resource, 0))


def node_info(entry: Mapping[str, Any], gpu_resource: str,
              probed: Sequence[Mapping[str, Any]]) -> NodeInfo:
    """``entry`` is one element of ``ray.nodes()``; ``probed`` what NVML saw on that node."""
    resources = entry.get("Resources") or {}
    labels = {str(k): str(v) for k, v in (entry.get("Labels") or {}).items()}
    count = gpu_count(entry, gpu_resource)
    devices: tuple[DeviceInfo, ...]
    if count and len(probed) >= count:
        devices = tuple(DeviceInfo(int(d["index"]), int(d["memory_mib"]), str(d["model"]),
                                   d.get("uuid")) for d in probed[:count])
        simulated = False
    else:
        try:
            memory = int(labels.get(GPU_MEMORY_LABEL, DEFAULT_GPU_MEMORY_MIB))
        except ValueError:
            memory = DEFAULT_GPU_MEMORY_MIB
        devices = tuple(DeviceInfo(i, max(memory, 1), SIMULATED_MODEL) for i in range(count))
        simulated = count > 0
    return NodeInfo(
        name=node_name(entry),
        devices=devices,
        cpu=int(float(resources.get("CPU", 0)) * 1000),
        memory=int(float(resources.get("memory", 0))) // _MIB,
        pool=labels.get(POOL_LABEL, "default"),
        labels={k: v for k, v in labels.items() if not k.startswith("ray.io/")},
        simulated=simulated,
        address=str(entry.get("NodeManagerAddress") or "127.0.0.1"),
    )
