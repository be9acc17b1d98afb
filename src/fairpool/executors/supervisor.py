"""The per-worker supervisor: ``python -m fairpool.executors.supervisor --state DIR --worker ID
-- COMMAND...``.

It runs the worker's command in its own process group (the supervisor's session), survives the
SIGTERM that stopping the worker sends to the group, waits for the command and writes its exit
code to ``DIR/ID.exit`` before exiting the same way. Because the record outlives both the
worker and the fairpool server, a server restarted after a crash can find running workers (by
their supervisors' command lines) and the exit codes of those that ended meanwhile.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

MODULE = "fairpool.executors.supervisor"


def exit_path(state: Path, worker_id: str) -> Path:
    return state / f"{worker_id}.exit"


def write_exit(state: Path, worker_id: str, code: int, detail: str) -> None:
    path = exit_path(state, worker_id)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"code": code, "detail": detail}))
    os.replace(tmp, path)  # readers see the whole record or none


def read_exit(state: Path, worker_id: str) -> tuple[int, str] | None:
    try:
        data = json.loads(exit_path(state, worker_id).read_text())
        return int(data["code"]), str(data.get("detail", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[0] != "--state" or argv[2] != "--worker" or argv[4] != "--":
        sys.stderr.write("usage: supervisor --state DIR --worker ID -- COMMAND...\n")
        return 2
    state, worker_id, command = Path(argv[1]), argv[3], argv[5:]
    # the group's SIGTERM is for the command; a handler (not SIG_IGN, which the command would
    # inherit) keeps the supervisor alive to record how the command ended
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except (OSError, ValueError) as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        detail = f"cannot start {command!r}: {exc}"
        sys.stdout.write(f"fairpool: worker {worker_id}: {detail}\n")
        sys.stdout.flush()
        write_exit(state, worker_id, code, detail)
        return code
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:
            continue
    write_exit(state, worker_id, code, "")
    if code < 0:  # end the way the command ended, so a waiting parent sees the same signal
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be handled anyway
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code  # the signal did not end us (e.g. SIGCHLD is ignored by default)
    return code & 0xFF


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
