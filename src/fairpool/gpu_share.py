"""For training code on a GPU fraction: keep PyTorch within the worker's share of the device.

A worker placed with ``--gpu-fraction 0.5`` or ``--gpu-memory 20000`` shares its GPU with
other workers. fairpool confines which devices it can open, but nothing in the driver stops a
process from allocating more than its share of the device's memory: this limit is
cooperative. :func:`limit` caps PyTorch's caching allocator at the share (``torch.cuda.
set_per_process_memory_fraction``), so an allocation beyond it fails in this process with an
out-of-memory error instead of starving the neighbours::

    from fairpool import gpu_share
    gpu_share.limit()      # no-op outside fairpool, on whole GPUs, or without CUDA
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def share(total_mib: int | None = None) -> float | None:
    """This worker's share of each of its devices (None: whole GPUs, or not under fairpool).
    ``total_mib``: the device's memory, to turn ``FAIRPOOL_GPU_MEMORY_MIB`` into a share."""
    fraction = os.environ.get("FAIRPOOL_GPU_FRACTION")
    if fraction:
        return min(1.0, float(fraction))
    memory = os.environ.get("FAIRPOOL_GPU_MEMORY_MIB")
    if memory and total_mib:
        return min(1.0, int(memory) / total_mib)
    return None


def limit(torch: Any = None) -> float | None:
    """Cap PyTorch's allocator on every visible device at this worker's share; returns the
    share applied (None when there is nothing to limit)."""
    if not (os.environ.get("FAIRPOOL_GPU_FRACTION") or os.environ.get(
            "FAIRPOOL_GPU_MEMORY_MIB")):
        return None
    if torch is None:
        try:
            torch = importlib.import_module("torch")
        except ImportError:
            return None
    if not torch.cuda.is_available():
        return None
    applied = None
    for index in range(torch.cuda.device_count()):
        total = torch.cuda.get_device_properties(index).total_memory // (1 << 20)
        fraction = share(total)
        if fraction is not None:
            torch.cuda.set_per_process_memory_fraction(fraction, index)
            applied = fraction
    return applied
