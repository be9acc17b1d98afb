"""Statements: tentative changes with an undo log.

Every change the scheduler makes to its working state during a cycle (occupying devices, queue
accounting, recording a bind or an eviction) pushes its inverse onto one :class:`UndoLog`. A
:class:`Statement` marks the log when it opens; if it is not committed, leaving it rolls every
change back in reverse order, restoring the exact previous state. Statements nest: an inner
commit keeps its changes inside the outer statement, which may still roll them back.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any


class UndoLog:
    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def push(self, undo: Callable[..., Any], *args: Any) -> None:
        self.entries.append((undo, args))

    def mark(self) -> int:
        return len(self.entries)

    def rollback(self, to: int) -> None:
        entries = self.entries
        while len(entries) > to:
            undo, args = entries.pop()
            undo(*args)


class Statement:
    """``with Statement(log) as st: ...; st.commit()`` — anything not committed is undone."""

    __slots__ = ("_committed", "_log", "_start")

    def __init__(self, log: UndoLog) -> None:
        self._log = log
        self._start = log.mark()
        self._committed = False

    def __enter__(self) -> Statement:
        return self

    def commit(self) -> None:
        self._committed = True

    def rollback(self) -> None:
        self._log.rollback(self._start)
        self._committed = False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            self._log.rollback(self._start)
