"""What lets local workers outlive the fairpool server: each runs under a supervisor
(:mod:`fairpool.executors.supervisor`) whose command line names the worker, and the state
directory keeps each worker's spec (without its environment, which may hold secrets) and its
exit record. A restarted server finds running supervisors in /proc and exit records on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from fairpool.executors.base import WorkerSpec
from fairpool.executors.supervisor import MODULE, exit_path

#: exit records are kept this long after they were reported, so a server that crashed before
#: committing what it polled still finds them when it restarts
KEEP_EXITS_S = 300.0


def supervised(state: Path, spec: WorkerSpec) -> list[str]:
    return [sys.executable, "-m", MODULE, "--state", str(state), "--worker", spec.worker_id,
            "--", *spec.command]


def save_spec(state: Path, spec: WorkerSpec) -> None:
    data = asdict(spec)
    data["env"] = {}  # never on disk: it may hold the project's secrets
    data["command"] = list(spec.command)
    data["devices"] = list(spec.devices)
    path = state / f"{spec.worker_id}.spec.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def load_spec(state: Path, worker_id: str) -> WorkerSpec | None:
    try:
        data = json.loads((state / f"{worker_id}.spec.json").read_text())
        data["command"] = tuple(data["command"])
        data["devices"] = tuple(data["devices"])
        return WorkerSpec(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def forget(state: Path, worker_id: str) -> None:
    for path in (state / f"{worker_id}.spec.json", exit_path(state, worker_id)):
        with contextlib.suppress(OSError):
            path.unlink()


def running_supervisors(state: Path) -> dict[str, int]:
    """Worker id → supervisor pid, for supervisors of this state directory alive now."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if MODULE not in args or "--state" not in args or "--worker" not in args:
            continue
        try:
            if args[args.index("--state") + 1] != str(state):
                continue
            found[args[args.index("--worker") + 1]] = int(entry.name)
        except (IndexError, ValueError):
            continue
    return found


def ended_workers(state: Path) -> list[str]:
    """Workers with an exit record (ended, perhaps while no server was watching)."""
    return [p.name.removesuffix(".exit") for p in state.glob("*.exit")]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead: it only waits for its parent to read its status
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2:].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def old_records(state: Path, now: float | None = None) -> list[str]:
    """Workers whose exit record is older than :data:`KEEP_EXITS_S`."""
    now = time.time() if now is None else now
    out = []
    for path in state.glob("*.exit"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > KEEP_EXITS_S:
                out.append(path.name.removesuffix(".exit"))
    return out
