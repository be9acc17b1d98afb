"""Rendering for the CLI: Rich tables for people, ``--json`` for programs, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import NoReturn, TypeVar

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

T = TypeVar("T")
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def emit_json(data: BaseModel | Sequence[BaseModel]) -> None:
    if isinstance(data, BaseModel):
        payload: object = data.model_dump(mode="json")
    else:
        payload = [d.model_dump(mode="json") for d in data]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def gpus(value: float) -> str:
    if value < 0:
        return "∞"
    return f"{value:g}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*r)
    console.print(t)


def call(fn: Callable[[], T]) -> T:
    """Run a client call; a failed request ends the command with its one-line reason."""
    from fairpool.client import FairpoolError

    try:
        return fn()
    except FairpoolError as exc:
        fail(exc.message)
