"""For training code: treat a preemption as a pause.

When fairpool takes a job's GPUs back (reclaim, preemption, an idle policy) its workers get
SIGTERM, and ``$FAIRPOOL_STOP_FILE`` says ``preempted``; the job is requeued with its attempt
counter raised and the same ``$FAIRPOOL_CHECKPOINT_DIR``. A loop that saves there and exits
resumes where it stopped::

    from fairpool import checkpoint

    checkpoint.install()                      # SIGTERM sets a flag instead of killing
    state = checkpoint.load("state.pt")       # None on the first attempt
    for step in range(start, steps):
        train_one_step()
        if checkpoint.stop_requested():       # check at a step boundary
            checkpoint.save("state.pt", ...)  # then exit; fairpool restarts it later
            sys.exit(0)

Cancelled or timed-out jobs get the same SIGTERM with ``cancelled`` or ``timeout`` in the
file; :func:`preempted` tells them apart. The grace period (``fairpool up --grace``) is how
long a worker has to save before SIGKILL.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

_requested = False


def directory() -> Path:
    """The job's checkpoint directory (kept across attempts); ./checkpoints outside fairpool."""
    path = Path(os.environ.get("FAIRPOOL_CHECKPOINT_DIR") or "checkpoints")
    path.mkdir(parents=True, exist_ok=True)
    return path


def attempt() -> int:
    return int(os.environ.get("FAIRPOOL_ATTEMPT", "0"))


def install(then: Callable[[], None] | None = None) -> None:
    """Handle SIGTERM by setting the flag :func:`stop_requested` reads (and calling ``then``)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        global _requested
        _requested = True
        if then is not None:
            then()

    signal.signal(signal.SIGTERM, handler)


def stop_requested() -> bool:
    return _requested


def stop_reason() -> str:
    """Why fairpool stops this worker: preempted, cancelled, timeout, failed; "" if it does
    not (or no reason was given)."""
    path = os.environ.get("FAIRPOOL_STOP_FILE")
    if not path:
        return ""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def preempted() -> bool:
    """True when the stop is a preemption: the job will be requeued and should checkpoint."""
    return stop_reason() == "preempted"


def save(name: str, obj: Any) -> Path:
    """Write ``obj`` with torch.save atomically (a crash mid-write leaves the old one)."""
    import torch

    target = directory() / name
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{name}.")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, target)
    return target


def load(name: str) -> Any:
    """What :func:`save` wrote under ``name``, or None."""
    import torch

    target = directory() / name
    if not target.exists():
        return None
    return torch.load(target, weights_only=False)
