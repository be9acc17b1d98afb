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

import importlib
import json
import re
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn, TypeVar

from pydantic import BaseModel
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fairpool.domain.words import plural

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


def gpu_count(value: float | None) -> str:
    """An amount of GPUs with its word: ``1 GPU``, ``0.5 GPUs``, ``∞ GPUs``."""
    return plural(2 if value is None or value < 0 else value, "GPU", shown=gpus(value))


Kind = Literal["id", "num", "text", "wrap"]


@dataclass(frozen=True)
class Col:
    """A table column and how it gives way on a narrow terminal. ``kind``: ``id`` (an id, a
    node, queue or state name, another value people copy: never wraps, never cut), ``num``
    (right-aligned, never wraps nor cut), ``text`` (one line, cut with an ellipsis: the first
    to shrink), ``wrap`` (prose such as reasons and messages: wraps at word boundaries, a word
    longer than the column folds). ``drop`` > 0: the column may be left out, highest first,
    when the table does not fit otherwise (``--wide`` shows it)."""

    name: str
    kind: Kind = "text"
    drop: int = 0


#: how far ``text`` and ``wrap`` columns shrink before a column is left out, and after
TEXT_SOFT, TEXT_HARD = 12, 4
WRAP_ROOMY, WRAP_SOFT, WRAP_HARD = 40, 24, 10
#: a wrap column keeps room for its longest word, up to this (longer ones fold), until
#: nothing else is left to give way
WORD_CAP = 30


def _span(text: str) -> int:
    return max((cell_len(part) for part in text.split("\n")), default=0)


def _word(text: str) -> int:
    return max((cell_len(word) for word in text.split()), default=0)


def _overhead(columns: int) -> int:
    """Cells a table of ``columns`` columns takes beside its content: the box's edges and
    separators and one space of padding either side of each cell."""
    return 3 * columns + 1


def _squeeze(widths: list[int], floors: list[int], over: int) -> int:
    """Take up to ``over`` cells off ``widths``, widest first, none below its floor; what is
    still over."""
    while over > 0:
        room = [i for i, w in enumerate(widths) if w > floors[i]]
        if not room:
            break
        top = max(widths[i] for i in room)
        at_top = [i for i in room if widths[i] == top]
        below = [widths[i] for i in room if widths[i] < top]
        level = max([*below, *(floors[i] for i in at_top)])
        step = min(top - level, -(-over // len(at_top)))
        for i in reversed(at_top):
            take = min(step, over)
            widths[i] -= take
            over -= take
    return over


def fit(columns: Sequence[Col], cells: Sequence[Sequence[str]], width: int
        ) -> list[int | None]:
    """The width of each column (None: left out) of a table of ``cells`` that should take at
    most ``width`` cells of a line. In order, until it fits: headers of ``id`` and ``num``
    columns wrap at their spaces, ``wrap`` columns (prose) wrap at ``WRAP_ROOMY``, ``text``
    columns are cut to ``TEXT_SOFT``, ``wrap`` columns wrap at ``WRAP_SOFT`` (each at least its
    longest word, up to ``WORD_CAP``); then columns with ``drop`` are left out, highest
    first; then ``text`` shrinks to ``TEXT_HARD``, ``wrap`` to ``WRAP_HARD`` or its longest
    word (up to ``WORD_CAP``), and last to ``WRAP_HARD`` (folding longer words). ``id`` and
    ``num`` columns never shrink below their longest cell: when they alone do not fit, the
    table is wider than ``width``."""
    natural, floors = [], []
    for i, col in enumerate(columns):
        texts = [row[i] for row in cells if i < len(row)]
        longest = max((_span(t) for t in texts), default=0)
        natural.append(max(longest, _span(col.name), 1))
        word = min(max((_word(t) for t in texts), default=0), WORD_CAP)
        fixed = max(longest, _word(col.name), 1)
        floors.append({
            "id": (fixed,) * 5, "num": (fixed,) * 5,
            "text": (natural[i], natural[i], min(natural[i], TEXT_SOFT),
                     min(natural[i], TEXT_HARD), min(natural[i], TEXT_HARD)),
            "wrap": (natural[i], min(natural[i], max(WRAP_ROOMY, word)),
                     min(natural[i], max(WRAP_SOFT, word)),
                     min(natural[i], max(WRAP_HARD, word)), min(natural[i], WRAP_HARD))
        }[col.kind])
    shown = list(range(len(columns)))

    def attempt(stages: Sequence[tuple[int, Collection[str]]]) -> tuple[list[int], int]:
        widths = [natural[i] for i in shown]
        over = sum(widths) + _overhead(len(shown)) - width
        for stage, kinds in stages:
            floor = [floors[i][stage] if columns[i].kind in kinds else widths[j]
                     for j, i in enumerate(shown)]
            over = _squeeze(widths, floor, over)
        return widths, over

    soft = ((0, ("id", "num")), (1, ("wrap",)), (2, ("text",)), (2, ("wrap",)))
    widths, over = attempt(soft)
    while over > 0:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            widths, over = attempt((*soft, (3, ("text",)), (3, ("wrap",)), (4, ("wrap",))))
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
        widths, over = attempt(soft)
    out: list[int | None] = [None] * len(columns)
    for j, i in enumerate(shown):
        out[i] = widths[j]
    return out


def table(title: str, columns: Sequence[str | Col], rows: Sequence[Sequence[Cell]],
          right: Collection[int] = (), wide: bool = False) -> None:
    """Print a table at the console's width (see ``fit``); each cell that is a string is
    cleaned, ``Text`` (``styled``) is kept. A column given as a string wraps (``Col(name,
    "wrap")``); the columns numbered in ``right`` (from 0) are aligned right. ``wide``: every
    column, every cell whole on its line, however wide that makes the lines (for a pager or
    a file)."""
    cols = [c if isinstance(c, Col) else Col(c, "wrap") for c in columns]
    body = [[line(cell) for cell in r] for r in rows]
    cols += [Col("", "wrap")] * (max(map(len, body), default=0) - len(cols))  # as Rich does
    for r in body:
        r.extend(Text() for _ in range(len(cols) - len(r)))
    room = console.width
    plain_cells = [[cell.plain for cell in r] for r in body]
    widths = (fit(cols, plain_cells, 10**9) if wide else fit(cols, plain_cells, room))
    left_out = [c.name for c, w in zip(cols, widths, strict=True) if w is None]
    t = Table(header_style="bold")
    for i, (col, w) in enumerate(zip(cols, widths, strict=True)):
        if w is None:
            continue
        head = line(col.name)
        head.no_wrap, head.overflow = col.kind == "text", (
            "ellipsis" if col.kind == "text" else "fold")
        t.add_column(head, width=w, no_wrap=wide or col.kind != "wrap",
                     overflow="ellipsis" if col.kind == "text" else "fold",
                     justify="right" if i in right or col.kind == "num" else "left")
    for r in body:
        t.add_row(*(cell for cell, w in zip(r, widths, strict=True) if w is not None))
    shown = [w for w in widths if w is not None]
    need = sum(shown) + _overhead(len(shown))
    # the title and the note on what was left out wrap at the terminal's width, not the
    # table's (and are not padded to it); with --wide they stay on one line
    console.print(line(styled(title, "italic")), soft_wrap=wide)
    if need <= room:
        console.print(t)
    else:
        console.width = need  # --wide, or ids alone wider than the terminal: whole lines
        try:
            console.print(t)
        finally:
            console.width = room
    if left_out:
        console.print(line(styled(f"left out at {room} columns: {', '.join(left_out)} "
                                  "(--wide shows them)", "dim")))


def call(fn: Callable[[], T]) -> T:
    """Run a client call; a failed request ends the command with its one-line reason."""
    from fairpool.client import FairpoolError

    try:
        return fn()
    except FairpoolError as exc:
        fail(exc.message)


def _click_exceptions() -> Any:
    """The module of the Click exceptions the Typer in use raises: its own copy of Click
    (Typer 0.2x), or Click."""
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("neither typer._click nor click is installed")


def _said(exc: Exception) -> str:
    """Click's message as one line of ours: spaces collapsed, no closing full stop, a capital
    first letter lowered unless it starts an acronym."""
    format_message = getattr(exc, "format_message", None)
    text = " ".join(str(format_message() if callable(format_message) else exc).split())
    text = text.removesuffix(".").replace("Value error, ", "")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text


def _path(app: object, args: Sequence[str]) -> str:
    """``fairpool project create`` for the arguments ``project create x -d``: the commands
    they name (for an error Click raised without its context)."""
    import typer.main

    words = ["fairpool"]
    command: object = typer.main.get_command(app) if isinstance(app, typer.Typer) else None
    for arg in args:
        commands = getattr(command, "commands", None)
        if not isinstance(commands, dict) or arg not in commands:
            break
        words.append(arg)
        command = commands[arg]
    return " ".join(words)


def run(command: Callable[..., object]) -> None:
    """Run the Typer app ``command`` with every usage error (an unknown option or command, a
    missing argument, a bad value) as one line ``error: <message> (see <command> --help)``
    on standard error, exit 2; other Click errors as one line with their exit code; Ctrl-C as
    exit 130. ``typer.Exit(code)`` keeps its code, and ``--help`` shows the help, exit 0."""
    import typer

    cx = _click_exceptions()
    try:
        code = command(standalone_mode=False)
    except getattr(cx, "NoArgsIsHelpError", ()) as exc:  # `fairpool project`: help printed
        raise SystemExit(exc.exit_code) from None
    except cx.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else _path(command, sys.argv[1:])
        fail(_said(exc), f" (see {where} --help)", code=exc.exit_code)
    except cx.ClickException as exc:
        fail(_said(exc), code=exc.exit_code)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort as exc:  # a prompt ended by Ctrl-C or the end of its input
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise SystemExit(130) from None
        fail("aborted: no answer to the prompt")
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
