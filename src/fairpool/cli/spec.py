"""Spec files on the command line: reading a job spec (YAML, ``-`` for standard input) with
syntax errors as one line naming the line and column, reading a file of sweep parameter sets
(``.jsonl``, ``.csv``, ``.json``, ``.yaml``), and ``fairpool spec schema``, the JSON Schema of
spec files (docs/job-spec.schema.json is its output)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from fairpool.cli.output import emit_value, fail
from fairpool.schemas.spec import spec_schema

spec_app = typer.Typer(no_args_is_help=True, help="Job spec files (fairpool submit -f).")


def register(app: typer.Typer) -> None:
    app.add_typer(spec_app, name="spec")


@spec_app.command("schema")
def schema() -> None:
    """Print the JSON Schema of job spec files (for editors and CI; docs/job-spec.md says what
    each field means)."""
    emit_value(spec_schema())


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML keeps the last
    silently, and a spec's ``gpus:`` written twice is a mistake either way)."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            again = key in seen
        except TypeError:  # a list as a key: construct_mapping says what is wrong
            break
        if again:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _read(path: str, what: str) -> tuple[str, str]:
    """The text of ``path`` (``-``: standard input) and the name to call it in errors."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except UnicodeDecodeError:
        fail(f"{what} {path} is not UTF-8 text")
    except OSError as exc:
        fail(f"cannot read the {what} {path}: {exc.strerror or exc}")


def yaml_data(text: str, name: str) -> Any:
    """``text`` parsed as YAML; a syntax error ends the command with one line naming where."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = "" if mark is None else f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = " ".join(str(exc.problem or exc.context or "not valid YAML").split())
        started = exc.context_mark
        context = "" if not exc.problem or not exc.context or started is None else (
            f" ({' '.join(exc.context.split())} that starts at line {started.line + 1}, "
            f"column {started.column + 1})")
        fail(f"{name}: {where}{problem}{context}")
    except yaml.YAMLError as exc:
        fail(f"{name}: not valid YAML: {' '.join(str(exc).split())}")


def load_spec_file(path: str) -> tuple[Any, Path | None]:
    """The YAML of a spec file and the folder its relative paths are relative to (None for
    standard input: the current one)."""
    text, name = _read(path, "spec file")
    data = yaml_data(text, name)
    return data, None if path == "-" else Path(path).resolve().parent


def load_sweep_file(path: str) -> Any:
    """Parameter sets from a file, by its extension: ``.jsonl`` (one JSON object a line),
    ``.csv`` (a header of names, a row per set), ``.json``/``.yaml``/``.yml`` (what a spec's
    ``sweep:`` takes: a list of sets, or a grid). Checked as the spec's ``sweep`` is."""
    text, name = _read(path, "sweep file")
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        sets: list[Any] = []
        for number, text_line in enumerate(text.splitlines(), 1):
            if not text_line.strip():
                continue
            try:
                sets.append(json.loads(text_line))
            except ValueError as exc:
                fail(f"{name}: line {number}: not JSON ({exc})")
        return sets
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            fail(f"{name}: empty: the first line names the parameters")
        names = rows[0]
        sets = []  # of dicts, one per row
        for number, row in enumerate(rows[1:], 2):
            if not row:
                continue
            if len(row) != len(names):
                fail(f"{name}: line {number} has {len(row)} values for {len(names)} names")
            sets.append(dict(zip(names, row, strict=True)))
        return sets
    if suffix == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            fail(f"{name}: not JSON ({exc})")
    if suffix in (".yaml", ".yml"):
        return yaml_data(text, name)
    fail(f"sweep file {name}: give a .jsonl, .csv, .json or .yaml file")
