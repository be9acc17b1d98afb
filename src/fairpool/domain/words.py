"""Counts and spans of time in the words people read: ``plural(1, "GPU")`` is ``1 GPU``,
``plural(2, "GPU")`` is ``2 GPUs``; ``duration(150)`` is ``2 min``. Pure, so that the server's
messages (the scheduler's reasons, the services' errors) and the CLI say it the same way."""

from __future__ import annotations


def plural(count: float, word: str, many: str | None = None, shown: str | None = None) -> str:
    """``count`` and ``word``, in the singular only for exactly one (``0 GPUs``, ``0.5 GPUs``,
    ``1 GPU``). ``many``: the plural when it is not ``word`` + ``s``; ``shown``: how the count
    is written when not as ``{:g}`` (``f"{n:,}"``); then it is singular when that reads 1."""
    one = count == 1 if shown is None else shown == "1"  # as it reads: 0.9996 shown as 1
    if shown is None:
        shown = str(count) if isinstance(count, int) else f"{count:g}"
    return f"{shown} {word if one else (many or word + 's')}"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2.5 h``, ``3.1 d``: a rounded span, for "in about …"."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
