"""GPU utilisation readings: what a job reports (simulated GPUs), NVML per device and per
process (with a stand-in pynvml module: this machine has no GPU), and the local executor."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import fairpool
from fairpool.executors.utilisation import Nvml, group_pids, read_reported
from tests.executors.test_local import ex, spec  # noqa: F401 - the fixture

REPORT = ("import fairpool, time\n"
          "fairpool.report_utilization(0.4, memory_mib=512)\n"
          "time.sleep(30)\n")


def test_reports_are_read_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.util.json"
    monkeypatch.delenv("FAIRPOOL_UTIL_FILE", raising=False)
    assert fairpool.report_utilization(0.5) is False  # not under fairpool
    monkeypatch.setenv("FAIRPOOL_UTIL_FILE", str(path))
    assert fairpool.report_utilization(0.25, memory_mib=100) is True
    got = read_reported(str(path))
    assert got is not None and got.util == 0.25 and got.memory_mib == 100 and got.simulated
    with pytest.raises(ValueError):
        fairpool.report_utilization(1.5)
    assert read_reported(str(path), now=time.time() + 600) is None  # stale
    path.write_text("{not json")
    assert read_reported(str(path)) is None
    path.write_text(json.dumps({"util": 7, "at": time.time()}))
    assert read_reported(str(path)) is None
    assert read_reported(str(tmp_path / "missing")) is None


class FakeNvml:
    """The few pynvml calls fairpool makes, over made-up devices."""

    def __init__(self) -> None:
        self.util = {0: 30, 1: 90}
        self.samples: dict[int, list[Any]] = {
            0: [SimpleNamespace(pid=10, smUtil=20, timeStamp=1),
                SimpleNamespace(pid=10, smUtil=35, timeStamp=5),  # the latest counts
                SimpleNamespace(pid=11, smUtil=40, timeStamp=5),
                SimpleNamespace(pid=99, smUtil=50, timeStamp=5)]}  # another job
        self.procs = {0: [SimpleNamespace(pid=10, usedGpuMemory=1 << 30),
                          SimpleNamespace(pid=99, usedGpuMemory=4 << 30)]}

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        return SimpleNamespace(gpu=self.util[handle])

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=(handle + 1) << 30)

    def nvmlDeviceGetProcessUtilization(self, handle: int, since: int) -> list[Any]:
        if handle not in self.samples:
            raise RuntimeError("NVML_ERROR_NOT_FOUND")
        return self.samples[handle]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return self.procs.get(handle, [])


def test_nvml_devices_and_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    nvml = Nvml()
    assert nvml.available
    whole = nvml.devices((0, 1))
    assert whole is not None and whole.util == pytest.approx(0.6) and not whole.simulated
    assert whole.memory_mib == 1024 + 2048
    share = nvml.processes((0,), {10, 11})
    assert share is not None and share.util == pytest.approx(0.75)
    assert share.memory_mib == 1024  # only its own processes
    quiet = nvml.processes((1,), {10})  # no samples on device 1
    assert quiet is not None and quiet.util == 0.0
    nvml.close()
    assert not nvml.available and nvml.devices((0,)) is None


def test_group_pids_finds_this_process() -> None:
    assert os.getpid() in group_pids(os.getpgid(0))


def test_local_executor_reads_what_a_worker_reports(ex: Any, tmp_path: Path) -> None:  # noqa: F811
    worker = spec(tmp_path, [sys.executable, "-c", REPORT], devices=(0,))
    ex.start(worker)
    deadline = time.time() + 30
    reading = None
    while time.time() < deadline and reading is None:
        reading = ex.utilisation().get(worker.worker_id)
        time.sleep(0.1)
    assert reading is not None and reading.util == 0.4 and reading.simulated
    assert reading.memory_mib == 512
    ex.stop(worker.worker_id, 0)
