"""Inventory discovery: the GPUs, CPUs and memory of the nodes an executor reports.

Real GPUs come from NVML (the optional ``nvidia-ml-py`` package, imported as ``pynvml``); on
machines without GPUs, or for tests and demos, nodes can carry *simulated* devices instead, either
for this machine alone (:func:`local_node`) or for several emulated nodes described in a TOML file
(:func:`load_nodes_file`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import tomllib
from pathlib import Path
from typing import Any

from fairpool.executors.base import DeviceInfo, NodeInfo

_MIB = 1024 * 1024
SIMULATED_MODEL = "simulated-gpu"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_devices() -> list[DeviceInfo] | None:
    """The GPUs NVML sees, or None when ``pynvml`` is missing or NVML cannot initialise."""
    try:
        nvml: Any = importlib.import_module("pynvml")
    except ImportError:
        return None
    try:
        nvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded, ...
        return None
    try:
        devices = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            devices.append(
                DeviceInfo(
                    index=index,
                    memory_mib=int(memory.total) // _MIB,
                    model=_text(nvml.nvmlDeviceGetName(handle)),
                    uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                )
            )
        return devices
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _machine_memory_mib() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // _MIB


def _machine_cpus() -> int:
    return os.cpu_count() or 1


def simulated_devices(count: int, gpu_memory_mib: int = 81920) -> tuple[DeviceInfo, ...]:
    """``count`` simulated devices of ``gpu_memory_mib`` each."""
    return tuple(DeviceInfo(index=i, memory_mib=gpu_memory_mib, model=SIMULATED_MODEL)
                 for i in range(count))


def local_node(
    simulate_gpus: int | None = None,
    *,
    name: str | None = None,
    pool: str = "default",
    gpu_memory_mib: int = 81920,
) -> NodeInfo:
    """This machine as a node: simulated GPUs when ``simulate_gpus`` is given, else NVML's."""
    if simulate_gpus is not None:
        if isinstance(simulate_gpus, bool) or not isinstance(simulate_gpus, int):
            raise ValueError(f"simulate_gpus must be an integer, got {simulate_gpus!r}")
        if simulate_gpus < 0:
            raise ValueError(f"simulate_gpus must be 0 or more, got {simulate_gpus}")
        if gpu_memory_mib <= 0:
            raise ValueError(f"gpu_memory_mib must be positive, got {gpu_memory_mib}")
        devices = simulated_devices(simulate_gpus, gpu_memory_mib)
        simulated = True
    else:
        devices = tuple(nvml_devices() or ())
        simulated = False
    return NodeInfo(
        name=name or socket.gethostname(),
        devices=devices,
        cpu=_machine_cpus() * 1000,
        memory=_machine_memory_mib(),
        pool=pool,
        simulated=simulated,
    )


_NODE_KEYS = {"name", "gpus", "gpu_memory_mib", "cpus", "memory_mib", "pool", "labels"}


def _int_field(entry: dict[str, Any], key: str, default: int, where: str, *,
               minimum: int) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: '{key}' must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: '{key}' must be {minimum} or more, got {value}")
    return value


def _str_field(entry: dict[str, Any], key: str, default: str, where: str) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def load_nodes_file(path: str | os.PathLike[str]) -> list[NodeInfo]:
    """Simulated nodes described by a TOML file of ``[[node]]`` tables (see module docs)."""
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ValueError(f"{file}: nodes file not found") from None
    except OSError as exc:
        raise ValueError(f"{file}: cannot read nodes file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{file}: invalid TOML: {exc}") from None
    unknown_top = sorted(set(data) - {"node"})
    if unknown_top:
        raise ValueError(f"{file}: unknown top-level key(s) {', '.join(unknown_top)}; "
                         "describe nodes in [[node]] tables")
    entries = data.get("node")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{file}: no [[node]] tables; add at least one [[node]] with a name")
    memory_default = _machine_memory_mib()
    cpus_default = _machine_cpus()
    nodes: list[NodeInfo] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        where = f"{file}: node #{i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: must be a [[node]] table")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: missing 'name' (a non-empty string)")
        where = f"{file}: node '{name}'"
        if name in seen:
            raise ValueError(f"{where}: duplicate name; node names must be unique")
        seen.add(name)
        unknown = sorted(set(entry) - _NODE_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(sorted(_NODE_KEYS))}")
        if "gpus" not in entry:
            raise ValueError(f"{where}: missing 'gpus' (number of simulated devices, 0 or more)")
        gpus = _int_field(entry, "gpus", 0, where, minimum=0)
        gpu_memory = _int_field(entry, "gpu_memory_mib", 81920, where, minimum=1)
        cpus = _int_field(entry, "cpus", cpus_default, where, minimum=1)
        memory = _int_field(entry, "memory_mib", memory_default, where, minimum=1)
        pool = _str_field(entry, "pool", "default", where)
        labels = entry.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ValueError(f"{where}: 'labels' must be a table of string values, "
                             f"e.g. labels = {{ rack = \"r1\" }}")
        nodes.append(NodeInfo(
            name=name,
            devices=simulated_devices(gpus, gpu_memory),
            cpu=cpus * 1000,
            memory=memory,
            pool=pool,
            labels=dict(labels),
            simulated=True,
            address="127.0.0.1",
        ))
    return nodes
