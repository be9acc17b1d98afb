"""One cgroup per worker, with the worker's requests as limits: memory (an out-of-memory kill
is told apart from other deaths), CPU quota, a pids limit and, on cgroup v1, device access.

Both layouts are supported: cgroup v2 (one unified hierarchy, current distributions; device
access is then confined by the mount namespace alone, since v2 controls devices only through BPF
programs) and v1 with one hierarchy per controller, including hybrids that mount cgroup2 beside
v1 controllers. Worker cgroups live under ``fairpool/`` at the top of each hierarchy (as
Slurm's ``slurm/``): ``fairpool/<worker id>``. Every path a worker uses is recorded with it, so a
restarted executor finds them again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

V1_CONTROLLERS = ("memory", "cpu", "pids", "devices")
V2_CONTROLLERS = ("memory", "cpu", "pids")
BASE = "fairpool"
CFS_PERIOD_US = 100_000
#: device access every worker has (runc's defaults, so that podman can start a container
#: below): mknod of any node (using it is another matter), null, zero, full, random, urandom,
#: tty, console, ptmx, the pseudo-terminals and tun; GPUs are added per worker
DEFAULT_DEVICES = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                   "c 1:9 rwm", "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm",
                   "c 10:200 rwm")


@dataclass(frozen=True, slots=True)
class Support:
    """What this machine offers: the version and, per controller, the directory under which
    worker cgroups are made; ``missing`` names what is not there."""

    version: str | None  # "v1", "v2" or None
    roots: dict[str, str] = field(default_factory=dict)  # controller → base directory
    missing: tuple[str, ...] = ()

    @property
    def devices(self) -> bool:
        return "devices" in self.roots


def _mounts(path: str = "/proc/self/mounts") -> list[tuple[str, str, list[str]]]:
    out = []
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                out.append((parts[2], parts[1], parts[3].split(",")))
    return out


def detect(mounts: str = "/proc/self/mounts") -> Support:
    """Find the hierarchies and check that worker cgroups can be made in them (root only)."""
    found = _mounts(mounts)
    v1: dict[str, str] = {}
    for kind, where, options in found:
        if kind == "cgroup":
            for name in V1_CONTROLLERS:
                if name in options:
                    v1[name] = where
    unified = next((where for kind, where, _ in found if kind == "cgroup2"), None)
    if not v1 and unified is not None:
        try:
            available = Path(unified, "cgroup.controllers").read_text().split()
        except OSError:
            return Support(None, missing=("cgroups (cgroup2 is not readable)",))
        usable = [c for c in V2_CONTROLLERS if c in available]
        base = Path(unified, BASE)
        try:
            base.mkdir(exist_ok=True)
            _enable(Path(unified), usable)
            _enable(base, usable)
        except OSError as exc:
            return Support(None, missing=(f"cgroups (cannot make {base}: {exc.strerror})",))
        missing = tuple(f"cgroup controller {c}" for c in V2_CONTROLLERS if c not in usable)
        return Support("v2", {c: str(base) for c in usable},
                       (*missing, "device cgroup (cgroup v2: devices are confined by the "
                                  "mount namespace only)"))
    if not v1:
        return Support(None, missing=("cgroups (none mounted)",))
    roots = {}
    problems = []
    for name, where in v1.items():
        base = Path(where, BASE)
        try:
            base.mkdir(exist_ok=True)
            if name == "memory":
                with contextlib.suppress(OSError):
                    _write(base / "memory.use_hierarchy", "1")
            roots[name] = str(base)
        except OSError as exc:
            problems.append(f"cgroup controller {name} ({exc.strerror})")
    absent = [f"cgroup controller {c}" for c in V1_CONTROLLERS if c not in v1]
    return Support("v1" if roots else None, roots, (*absent, *problems))


def _enable(directory: Path, controllers: Iterable[str]) -> None:
    want = " ".join(f"+{c}" for c in controllers)
    if want:
        _write(directory / "cgroup.subtree_control", want)


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Limits:
    memory_mib: int = 0  # 0: no limit
    cpu_millis: int = 0  # 0: no quota
    pids: int = 0  # 0: no limit
    devices: tuple[str, ...] = ()  # extra "c MAJOR:MINOR rwm" rules (v1)


class WorkerCgroup:
    """The cgroup of a worker: a directory per v1 controller, or one v2 directory."""

    def __init__(self, version: str, dirs: dict[str, str]) -> None:
        self.version = version
        self.by_controller = {c: Path(d) for c, d in dirs.items()}
        self.dirs = sorted(set(self.by_controller.values()))

    @classmethod
    def create(cls, support: Support, name: str, limits: Limits) -> WorkerCgroup:
        assert support.version is not None
        group = cls(support.version, {c: str(Path(root, name))
                                      for c, root in support.roots.items()})
        for d in group.dirs:
            d.mkdir(exist_ok=True)
        group._limit(limits)
        return group

    def record(self) -> dict[str, object]:
        return {"version": self.version,
                "dirs": {c: str(d) for c, d in self.by_controller.items()}}

    @classmethod
    def from_record(cls, data: object) -> WorkerCgroup | None:
        if not isinstance(data, dict) or not isinstance(data.get("dirs"), dict):
            return None
        return cls(str(data.get("version")), {str(k): str(v) for k, v in data["dirs"].items()})

    def _limit(self, limits: Limits) -> None:
        mem, cpu = self.by_controller.get("memory"), self.by_controller.get("cpu")
        pids, devices = self.by_controller.get("pids"), self.by_controller.get("devices")
        if self.version == "v2":
            if mem is not None and limits.memory_mib:
                _write(mem / "memory.max", str(limits.memory_mib << 20))
                with contextlib.suppress(OSError):
                    _write(mem / "memory.swap.max", "0")
            if cpu is not None and limits.cpu_millis:
                _write(cpu / "cpu.max", f"{limits.cpu_millis * CFS_PERIOD_US // 1000} "
                                        f"{CFS_PERIOD_US}")
            if pids is not None and limits.pids:
                _write(pids / "pids.max", str(limits.pids))
            return
        if mem is not None and limits.memory_mib:
            _write(mem / "memory.limit_in_bytes", str(limits.memory_mib << 20))
            with contextlib.suppress(OSError):  # without swap accounting there is no such file
                _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_mib << 20))
        if cpu is not None and limits.cpu_millis:
            _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(limits.cpu_millis * CFS_PERIOD_US // 1000))
        if pids is not None and limits.pids:
            _write(pids / "pids.max", str(limits.pids))
        if devices is not None:
            _write(devices / "devices.deny", "a")
            for rule in (*DEFAULT_DEVICES, *limits.devices):
                _write(devices / "devices.allow", rule)

    def relative(self) -> str:
        """The cgroup's path inside its hierarchies (podman's ``--cgroup-parent``)."""
        return "/" + BASE + "/" + self.dirs[0].name

    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to join (every v1 hierarchy, or the one)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def oom_kills(self) -> int:
        """Processes the kernel killed for exceeding the memory limit."""
        d = self.by_controller.get("memory")
        if d is None:
            return 0
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (d / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def hit_limit(self) -> bool:
        """Whether the memory use reached the limit (v1: a container's own cgroup, which
        counts its OOM kills, is gone once it exits; its parent's peak use remains)."""
        d = self.by_controller.get("memory")
        if d is None:
            return False
        if self.version == "v2":
            return self.oom_kills() > 0
        with contextlib.suppress(OSError, ValueError):
            for prefix in ("memory.", "memory.memsw."):
                limit = int((d / f"{prefix}limit_in_bytes").read_text())
                peak = int((d / f"{prefix}max_usage_in_bytes").read_text())
                if peak + (256 << 10) >= limit:
                    return True
        return False

    def pids(self) -> list[int]:
        """Every process in the cgroup and below it (a container's cgroups are children)."""
        out: set[int] = set()
        for d in self.dirs:
            for sub, _dirs, _files in os.walk(d):
                with contextlib.suppress(OSError, ValueError):
                    out.update(int(p) for p in Path(sub, "cgroup.procs").read_text().split())
        return sorted(out)

    def kill_all(self) -> None:
        """SIGKILL everything in the cgroup, including what left the worker's process group."""
        if self.version == "v2":
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, wait_s: float = 2.0) -> bool:
        """Kill what is left (again and again: a process may fork while it is being killed),
        then remove the directories (children first); False if some could not be removed."""
        for _ in range(50):
            if not self.pids():
                break
            self.kill_all()
            time.sleep(0.01)
        deadline = time.monotonic() + wait_s
        done = True
        name = self.dirs[0].name
        # podman makes the cgroup of a container's parent in every hierarchy, ours or not
        others = [Path(where, BASE, name) for _kind, where, _opts in _mounts()]
        for d in [*self.dirs, *(o for o in others if o not in self.dirs and o.is_dir())]:
            for sub, _dirs, _files in sorted(os.walk(d), key=lambda e: -len(e[0])):
                while True:
                    try:
                        os.rmdir(sub)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            done = False
                            break
                        time.sleep(0.02)
        return done
