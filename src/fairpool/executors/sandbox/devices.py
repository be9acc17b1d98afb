"""The GPU device nodes a worker may open, and stand-ins for simulated GPUs.

A real NVIDIA GPU ``i`` is ``/dev/nvidia<i>``; CUDA also needs the shared control nodes
(``/dev/nvidiactl``, ``/dev/nvidia-uvm``, ...), which every GPU worker gets. A simulated GPU has
a *stand-in*: a character device of an unassigned major number (240, reserved for local use),
one minor per simulated GPU of the executor, mode 0666 like the real ones, under
``/run/fairpool/<instance>/gpus/<node>/nvidia<i>``. Opening a stand-in one may use fails with
ENXIO (no driver); opening one the device cgroup denies fails with EPERM, and in a worker's
mount namespace only its own appear as ``/dev/nvidia<i>``: exactly what a real GPU would show.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

STAND_IN_MAJOR = 240
CONTROL = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")


@dataclass(frozen=True, slots=True)
class Device:
    host: str  # path on the machine
    inside: str  # path in the worker's /dev
    major: int
    minor: int

    @property
    def rule(self) -> str:
        return f"c {self.major}:{self.minor} rwm"


def _device(host: str, inside: str) -> Device | None:
    try:
        st = os.stat(host)
    except OSError:
        return None
    if not stat.S_ISCHR(st.st_mode):
        return None
    return Device(host, inside, os.major(st.st_rdev), os.minor(st.st_rdev))


def real_gpus(indexes: Sequence[int]) -> list[Device]:
    """The device nodes of real GPUs ``indexes`` and the control nodes that exist."""
    out = [d for i in indexes if (d := _device(f"/dev/nvidia{i}", f"/dev/nvidia{i}"))]
    if out:
        out += [d for path in CONTROL if (d := _device(path, path))]
    return out


def stand_in_dir(instance: str) -> Path:
    key = hashlib.sha256(instance.encode()).hexdigest()[:10]
    return Path("/run/fairpool") / key / "gpus"


class StandIns:
    """Stand-in device nodes of the simulated GPUs of some nodes; ``available`` is False where
    they cannot be made (no CAP_MKNOD, or not root)."""

    def __init__(self, instance: str, nodes: Sequence[tuple[str, int]]) -> None:
        self.root = stand_in_dir(instance)
        self._minor: dict[tuple[str, int], int] = {}
        self.available = os.geteuid() == 0
        minor = 0
        for node, count in sorted(nodes):
            for index in range(count):
                self._minor[(node, index)] = minor
                minor += 1
        if not self.available:
            return
        try:
            for (node, index), number in self._minor.items():
                path = self.path(node, index)
                path.parent.mkdir(parents=True, exist_ok=True)
                for parent in (path.parent, self.root, self.root.parent, self.root.parent.parent):
                    os.chmod(parent, 0o755)
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(path)
                    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(
                            STAND_IN_MAJOR, number):
                        continue
                    path.unlink()
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(STAND_IN_MAJOR, number))
                os.chmod(path, 0o666)
        except OSError:
            self.available = False

    def path(self, node: str, index: int) -> Path:
        return self.root / node / f"nvidia{index}"

    def devices(self, node: str, indexes: Sequence[int]) -> list[Device]:
        if not self.available:
            return []
        return [Device(str(self.path(node, i)), f"/dev/nvidia{i}", STAND_IN_MAJOR,
                       self._minor[(node, i)]) for i in indexes if (node, i) in self._minor]
