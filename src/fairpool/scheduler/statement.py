"""Statements: tentative changes with an undo log.

Every change the scheduler makes to its working state during a cycle (occupying devices, queue
accounting, recording a bind or an eviction) pushes its inverse onto one :class:`UndoLog`. A
:class:`Statement` marks the log when it opens; if it is not committed, leaving it rolls every
change back in reverse order, restoring the exact previous state. Statements nest: an inner
commit keeps its changes inside the outer statement, which may still roll them back. Outside every
statement a change is final (nothing could roll it back), so the log keeps nothing there: a cycle's
top-level decisions cost no memory for undo entries.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any


class UndoLog:
    __slots__ = ("entries", "open")

    def __init__(self) -> None:
        self.entries: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self.open = 0  # statements open now

    def push(self, undo: Callable[..., Any], *args: Any) -> None:
        if self.open:
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
        self._log.open += 1
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
        log = self._log
        log.open -= 1
        if not self._committed:
            log.rollback(self._start)
        elif not log.open:  # the outermost statement: its changes are final now
            del log.entries[self._start:]
