"""The cooperative limit of a GPU fraction, against a stand-in for ``torch.cuda`` (no GPU
here; the real call is the one documented by PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from fairpool import gpu_share


@dataclass
class FakeCuda:
    totals: list[int]
    caps: dict[int, float] = field(default_factory=dict)

    def is_available(self) -> bool:
        return True

    def device_count(self) -> int:
        return len(self.totals)

    def get_device_properties(self, index: int) -> SimpleNamespace:
        return SimpleNamespace(total_memory=self.totals[index] << 20)

    def set_per_process_memory_fraction(self, fraction: float, device: int) -> None:
        self.caps[device] = fraction


def test_a_fraction_caps_the_allocator_on_every_visible_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda([81920, 81920])
    monkeypatch.setenv("FAIRPOOL_GPU_FRACTION", "0.25")
    assert gpu_share.limit(SimpleNamespace(cuda=cuda)) == 0.25
    assert cuda.caps == {0: 0.25, 1: 0.25}


def test_gpu_memory_becomes_a_share_of_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda([40960])
    monkeypatch.delenv("FAIRPOOL_GPU_FRACTION", raising=False)
    monkeypatch.setenv("FAIRPOOL_GPU_MEMORY_MIB", "10240")
    assert gpu_share.limit(SimpleNamespace(cuda=cuda)) == 0.25
    assert cuda.caps == {0: 0.25}


def test_whole_gpus_and_runs_outside_fairpool_are_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAIRPOOL_GPU_FRACTION", raising=False)
    monkeypatch.delenv("FAIRPOOL_GPU_MEMORY_MIB", raising=False)
    cuda = FakeCuda([81920])
    assert gpu_share.limit(SimpleNamespace(cuda=cuda)) is None and cuda.caps == {}
