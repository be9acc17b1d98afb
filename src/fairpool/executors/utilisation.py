"""GPU utilisation of running workers: NVML for real devices, and for simulated ones what the
worker itself reports through :func:`fairpool.report_utilization` (always labelled simulated).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: a report older than this is ignored (the worker stopped reporting)
STALE_S = 120.0


@dataclass(frozen=True, slots=True)
class WorkerUsage:
    util: float  # 0..1, the mean over the worker's devices
    memory_mib: int | None = None
    simulated: bool = False


def util_file(log_path: str) -> str:
    """Where a worker reports its own utilisation: next to its log."""
    return log_path + ".util.json"


def read_reported(path: str, now: float | None = None) -> WorkerUsage | None:
    """The worker's own report; the file is the job's, so it is read without following links,
    only if it is a small regular file, and never blocking (a FIFO is not read)."""
    from fairpool.executors.sandbox.jobfiles import read_safely

    text = read_safely(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        util = float(data["util"])
        at = float(data["at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (time.time() if now is None else now) - at > STALE_S or not 0.0 <= util <= 1.0:
        return None
    memory = data.get("memory_mib")
    return WorkerUsage(util, int(memory) if isinstance(memory, int | float) else None, True)


class Nvml:
    """Device utilisation through NVML, when the ``nvidia-ml-py`` package and a driver are
    present; otherwise every reading is None."""

    def __init__(self) -> None:
        self._nvml: Any = None
        with contextlib.suppress(Exception):
            nvml = importlib.import_module("pynvml")
            nvml.nvmlInit()
            self._nvml = nvml

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def devices(self, indexes: tuple[int, ...]) -> WorkerUsage | None:
        if self._nvml is None or not indexes:
            return None
        try:
            utils, memory = [], 0
            for index in indexes:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                utils.append(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
                memory += int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used) // (1 << 20)
        except Exception:
            return None
        return WorkerUsage(sum(utils) / len(utils), memory, False)

    def processes(self, indexes: tuple[int, ...], pids: set[int]) -> WorkerUsage | None:
        """Utilisation and memory of ``pids`` alone on devices they share with other jobs
        (GPU fractions): the SM share NVML sampled per process, summed over the processes."""
        if self._nvml is None or not indexes or not pids:
            return None
        utils, memory = [], 0
        for index in indexes:
            try:
                handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                latest: dict[int, tuple[int, float]] = {}
                try:
                    samples = self._nvml.nvmlDeviceGetProcessUtilization(handle, 0)
                except Exception:  # NVML_ERROR_NOT_FOUND: no process sampled lately
                    samples = []
                for sample in samples:
                    if sample.pid in pids and sample.timeStamp >= latest.get(
                            sample.pid, (-1, 0.0))[0]:
                        latest[sample.pid] = (sample.timeStamp, sample.smUtil / 100.0)
                utils.append(min(1.0, sum(u for _, u in latest.values())))
                for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if proc.pid in pids and proc.usedGpuMemory:
                        memory += int(proc.usedGpuMemory) // (1 << 20)
            except Exception:
                return None
        return WorkerUsage(sum(utils) / len(utils), memory, False)

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None


def group_pids(pgid: int) -> set[int]:
    """The processes of a process group (a worker and everything it started), from /proc."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[2] == str(pgid):
            out.add(int(entry.name))
    return out
