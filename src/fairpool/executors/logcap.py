"""The cap on a worker's log (``log_max_mib``), enforced where its bytes are written.

A local worker never writes its log itself: its stdout and stderr are a pipe, and a *log
copier* copies the pipe into the log file as it comes. The copier is a POSIX shell running
``head -c`` (no Python: it starts in a millisecond), in a session of its own (a stop's signals
and the worker's cgroup never reach it) and run by the server's account, so a job cannot reach
the file, raise the cap or stop the copying. Once the cap is reached it appends one line saying so
(:func:`marker`) and discards the rest of the output, reading it to the end so that the worker
is never blocked or killed by a full pipe. A ``RLIMIT_FSIZE`` would kill the job (SIGXFSZ) and
cap its checkpoints too; a container's output (``--log-driver=passthrough``) is the same pipe.
The copier outlives a server restart like the worker (it is found again by its recorded pid).

The Ray executor writes what the nodes send through :class:`CappedLog`, with the same cap and
the same line. Both executors report a truncation once (``WorkerStatus.log_truncated``); the
control loop turns it into the job's event :data:`EVENT`.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, BinaryIO

from fairpool.executors import adopt

MIB = 1 << 20
#: the copier: ``$1`` bytes at most, then the marker ``$2`` once more output comes, then drain;
#: ``head`` writes through stdio, so ``stdbuf`` (coreutils) makes it pass on each read at once
COPIER = """if command -v stdbuf > /dev/null; then stdbuf -o0 head -c "$1"; else head -c "$1"; fi
if [ "$(head -c 1 | wc -c)" -gt 0 ]; then
  printf '\\n%s\\n' "$2"
  exec cat > /dev/null
fi
"""
#: the copier's $0, as it shows in ps
MARK = "fairpool-log"
#: how long the end of a worker waits for its copier to write the last of its output (longer
#: only where something the worker left behind keeps the pipe open)
DRAIN_S = 2.0
#: the kind of the job event that records a truncation
EVENT = "log-truncated"


def mib_text(max_bytes: int) -> str:
    return f"{max_bytes / MIB:g} MiB"


def marker(max_bytes: int) -> str:
    """The line that ends a truncated log (after a newline, so that it is a line of its own)."""
    return (f"fairpool: log truncated at {mib_text(max_bytes)} (log_max_mib); the rest of this "
            f"worker's output is discarded")


def event_text(rank: int, max_bytes: int) -> str:
    return (f"rank {rank}: log truncated at {mib_text(max_bytes)} (the server's log_max_mib); "
            f"later output of this worker is discarded")


def start_copier(log: BinaryIO, max_bytes: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start the copier of a worker's output into ``log`` (what the log holds already counts
    against the cap); returns it and the pipe's write end, to be the worker's stdout and stderr
    (the caller closes it once the worker is started)."""
    read, write = os.pipe()
    try:
        room = max(0, max_bytes - os.fstat(log.fileno()).st_size)
        proc = subprocess.Popen(
            ["/bin/sh", "-c", COPIER, MARK, str(room), marker(max_bytes)], stdin=read,
            stdout=log, stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
            start_new_session=True)
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    return proc, write


def copying(proc: subprocess.Popen[bytes] | None, recorded: Any) -> bool:
    """Whether a worker's copier still runs: ``proc`` where this executor started it, else the
    process ``recorded`` (:func:`adopt.identity`) when it was started."""
    if proc is not None:
        return proc.poll() is None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("pid"), int):
        return False
    pid = recorded["pid"]
    return adopt.pid_alive(pid) and adopt.same_process(pid, recorded)


def truncated(path: str, max_bytes: int) -> bool:
    """Whether the log at ``path`` was truncated: only the marker takes it past the cap."""
    try:
        return os.stat(path).st_size > max_bytes
    except OSError:
        return False


class CappedLog:
    """A worker's log written by this process, holding at most ``max_bytes`` of output and then
    :func:`marker`; what comes after is dropped."""

    def __init__(self, file: BinaryIO, max_bytes: int) -> None:
        self.file = file
        self.max_bytes = max_bytes
        self.room = max(0, max_bytes - os.fstat(file.fileno()).st_size)
        self.truncated = False

    def write(self, data: bytes) -> bool:
        """Append ``data`` as far as the cap allows; True when this write reached the cap (the
        marker is then written, once)."""
        if self.truncated or not data:
            return False
        if len(data) <= self.room:
            self.file.write(data)
            self.room -= len(data)
            return False
        self.file.write(data[:self.room] + b"\n" + marker(self.max_bytes).encode() + b"\n")
        self.room, self.truncated = 0, True
        return True

    def close(self) -> None:
        self.file.close()
