"""Rendering for the CLI: Rich tables for people, ``--json`` for programs, one-line errors.

Everything the CLI shows goes through here, and what it shows is inert: most of it is other
people's data (job names and commands, reasons, events, descriptions, the server's error
messages), so no Rich markup in it is ever parsed (a name ``[/]`` prints as ``[/]``, a
``[link=…]`` is no link) and the characters a terminal would act on or that disguise text (C0
and C1 controls, DEL, bidirectional embeddings, overrides and isolates, zero-width and other
invisible characters) are shown escaped, as ``\\x1b`` or ``\\u202e``. The consoles parse no
markup, emoji or highlighting; our own styling comes only from styles given to ``styled``, and
every string handed to ``show``, ``table``, ``fail`` or ``plain`` is escaped with ``clean``.
The other CLI modules use no Rich API and write to no stream directly
(tests/unit/test_cli_output.py checks that).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NoReturn, TypeVar

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

T = TypeVar("T")
#: a table cell: a string (cleaned when shown) or a ``Text`` from ``styled`` or ``line``
Cell = str | Text
console = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)

#: what is shown escaped: C0 controls, DEL and C1 controls (escape sequences, BEL, carriage
#: return), the Arabic letter mark, the Mongolian vowel separator, zero-width spaces, joiners
#: and directional marks, line and paragraph separators, bidirectional embeddings, overrides and
#: isolates, the word joiner and invisible operators, the BOM, interlinear annotations, and tag
#: characters (invisible copies of ASCII)
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e"
                    "\u2060-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def clean(value: object) -> str:
    """``value`` as text with every character of ``UNSAFE`` written as its escape."""
    return UNSAFE.sub(_escaped, str(value))


def styled(value: object, style: str) -> Text:
    """``value``, cleaned, in a Rich style of ours (``"bold"``, ``"red"``); never markup."""
    return Text(clean(value), style=style)


def line(*parts: str | Text) -> Text:
    """One piece of text from parts: strings are cleaned, ``Text`` (from ``styled``) kept."""
    out = Text()
    for part in parts:
        out.append(part if isinstance(part, Text) else clean(part))
    return out


def show(*parts: str | Text) -> None:
    """Print a line of parts (as ``line`` makes it) on standard output."""
    console.print(line(*parts))


def show_err(*parts: str | Text) -> None:
    """Print a line of parts (as ``line`` makes it) on standard error."""
    err.print(line(*parts), soft_wrap=True)


def plain(text: str, stderr: bool = False) -> None:
    """Write ``text`` without Rich (a token, CSV): each of its lines cleaned, one per line."""
    stream = sys.stderr if stderr else sys.stdout
    stream.write("".join(clean(part) + "\n" for part in text.splitlines()))


def fail(*parts: str | Text, code: int = 1) -> NoReturn:
    """End the command with exit ``code`` and one line ``error: <parts>`` on standard error;
    the parts are cleaned (error messages of the server quote what people sent it)."""
    err.print(line(styled("error:", "red"), " ", *parts), soft_wrap=True)
    raise SystemExit(code)


def emit_json(data: BaseModel | Sequence[BaseModel]) -> None:
    if isinstance(data, BaseModel):
        payload: object = data.model_dump(mode="json")
    else:
        payload = [d.model_dump(mode="json") for d in data]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def emit_value(payload: object) -> None:
    """Print plain data (dicts, lists, numbers) as JSON; NaN or infinity is refused."""
    sys.stdout.write(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def gpus(value: float | None) -> str:
    """An amount of GPUs; None (a limit that does not cap them) as ∞."""
    if value is None or value < 0:
        return "∞"
    return f"{value:g}"


@dataclass(frozen=True)
class Col:
    """A table column and how it gives way on a narrow terminal. ``kind``: ``id`` (an id or
    another value people copy: never wraps, never cut), ``num`` (right-aligned, never wraps),
    ``text`` (cut with an ellipsis), ``wrap`` (long prose: wraps at word boundaries)."""

    name: str
    kind: Literal["id", "num", "text", "wrap"] = "text"


def table(title: str, columns: Sequence[str | Col], rows: Sequence[Sequence[Cell]],
          right: Collection[int] = (), wide: bool = False) -> None:
    """Print a table; each cell that is a string is cleaned, ``Text`` (``styled``) is kept.
    The columns numbered in ``right`` (from 0) are aligned right. ``wide``: show every cell
    whole, however wide the terminal."""
    t = Table(title=line(title), title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        col = c if isinstance(c, Col) else Col(c)
        no_wrap = col.kind in ("id", "num") or wide
        t.add_column(line(col.name), overflow="fold" if wide else
                     ("ellipsis" if col.kind == "text" else "fold"), no_wrap=no_wrap,
                     justify="right" if i in right or col.kind == "num" else "left")
    for r in rows:
        t.add_row(*(line(cell) for cell in r))
    console.print(t)


def call(fn: Callable[[], T]) -> T:
    """Run a client call; a failed request ends the command with its one-line reason."""
    from fairpool.client import FairpoolError

    try:
        return fn()
    except FairpoolError as exc:
        fail(exc.message)
