"""What lets local workers outlive the fairpool server.

Each worker runs under a supervisor: a POSIX shell (a few hundred microseconds to start, where a
Python one costs tens of milliseconds on every job) that runs the command in the foreground,
survives the SIGTERM that stopping the worker sends to its process group (a trap with a command
is reset to the default in the child, so the command still gets it), and writes the command's
exit status to ``STATE/<worker>.exit`` before exiting the same way (a reader looks at the record
only once the supervisor is gone, so a plain write is enough). Its command line names the
state directory and the worker, and the state directory keeps each worker's spec (without its
environment, which may hold secrets). A restarted server finds running supervisors in /proc and
exit records on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fairpool.executors.base import WorkerSpec

#: the shell's $0: how a supervisor is recognised in /proc
MARK = "fairpool-supervisor"
SUPERVISOR = """trap : TERM INT HUP
"$@"
code=$?
echo "$code" > "$STATE/$WID.exit"
exit "$code"
"""

#: exit records are kept this long after they were reported, so a server that crashed before
#: committing what it polled still finds them when it restarts
KEEP_EXITS_S = 300.0


def supervised(state: Path, spec: WorkerSpec, argv: list[str] | None = None) -> list[str]:
    """The supervisor's command line for ``argv`` (default: the worker's own command)."""
    script = f'STATE="$1"; WID="$2"; shift 2\n{SUPERVISOR}'
    command = list(spec.command) if argv is None else argv
    return ["/bin/sh", "-c", script, MARK, str(state), spec.worker_id, *command]


def exit_path(state: Path, worker_id: str) -> Path:
    return state / f"{worker_id}.exit"


def read_exit(state: Path, worker_id: str) -> tuple[int, str] | None:
    """(code, detail) of how a supervised command ended; a shell reports death by signal N as
    128+N, which is turned back into -N, as Python reports it."""
    try:
        code = int(exit_path(state, worker_id).read_text().strip())
    except (OSError, ValueError):
        return None
    if code > 128:
        return -(code - 128), ""
    if code in (126, 127):
        return code, ("cannot start the command: not found" if code == 127 else
                      "cannot start the command: not executable") + " (the log says more)"
    return code, ""


def save_spec(state: Path, spec: WorkerSpec, sandbox: dict[str, Any] | None = None) -> None:
    """The worker's spec and what its sandbox holds (cgroup, uid, container), for the next
    executor on ``state``; only root can read the state directory."""
    data = asdict(spec)
    data["env"] = {}  # never on disk: it may hold the project's secrets
    data["command"] = list(spec.command)
    data["devices"] = list(spec.devices)
    data["mounts"] = [list(m) for m in spec.mounts]
    path = state / f"{spec.worker_id}.spec.json"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({**data, "_sandbox": sandbox or {}}, f)
    os.replace(tmp, path)


def load_spec(state: Path, worker_id: str) -> tuple[WorkerSpec, dict[str, Any]] | None:
    try:
        data = json.loads((state / f"{worker_id}.spec.json").read_text())
        sandbox = data.pop("_sandbox", {})
        data["command"] = tuple(data["command"])
        data["devices"] = tuple(data["devices"])
        data["mounts"] = tuple(tuple(m) for m in data.get("mounts", ()))
        return WorkerSpec(**data), sandbox if isinstance(sandbox, dict) else {}
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
        # /bin/sh -c SCRIPT fairpool-supervisor STATE WORKER COMMAND...
        if len(args) > 5 and args[3] == MARK and args[4] == str(state):
            try:
                if entry.stat().st_uid != os.geteuid():
                    continue  # a job's imitation: supervisors run as the server
            except OSError:
                continue
            found[args[5]] = int(entry.name)
    return found


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rfind(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def identity(pid: int) -> dict[str, int | None]:
    return {"pid": pid, "start": start_time(pid)}


def same_process(pid: int, recorded: object) -> bool:
    """Whether ``pid`` is the process recorded when the worker started (records from before
    this check was kept have none: any supervisor of the server's own account then counts)."""
    if not isinstance(recorded, dict) or "pid" not in recorded:
        return True
    return bool(recorded.get("pid") == pid and recorded.get("start") == start_time(pid))


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
