"""What every CLI command module shares: the ``--json`` and ``--wide`` options, the client,
and how a validation error becomes one line."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from fairpool.client import Client

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
#: for ``output.table(..., wide=wide)``: lines as long as the table needs, nothing cut
WideOpt = Annotated[bool, typer.Option("--wide", help="show every column in full")]


def client() -> Client:
    return Client()


def validation(exc: ValidationError) -> str:
    """A pydantic error as one line: each problem as ``field: message``, joined by ``; ``."""
    parts = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where.replace('_', '-')}: {message}" if where else message)
    return "; ".join(parts)
