"""The CLI's output helpers make other people's data inert (issue 16, finding 5), and a static
guard keeps every command on them: outside ``cli/output.py`` no CLI module uses Rich, prints or
writes to a stream itself, so nothing reaches the terminal without ``clean``."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from rich.console import Console

from fairpool.cli import output
from fairpool.cli.output import clean, line, styled

CLI = Path(output.__file__).parent
#: functions that pass bytes through on purpose, and why
RAW = {("jobs.py", "logs"): "a job's own output, byte for byte, as cat shows a file"}
PRINTS = {"print", "echo", "secho", "rprint", "pprint", "log", "write", "writelines"}


@pytest.mark.parametrize(("text", "shown"), [
    ("\x1b[2J", "\\x1b[2J"),
    ("\x1b]8;;https://evil\x1b\\x\x1b]8;;\x1b\\", "\\x1b]8;;https://evil\\x1b\\x\\x1b]8;;\\x1b\\"),
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("a\rb\nc\td\x7f\x00", "a\\x0db\\x0ac\\x09d\\x7f\\x00"),
    ("\x9b2J \x9d0;t\x9c", "\\x9b2J \\x9d0;t\\x9c"),  # C1: CSI, OSC, ST in one byte
    ("evil\u202egnp.sh", "evil\\u202egnp.sh"),
    ("\u2066x\u2069 \u200bz\u200d \ufeff \u061c \u2028", "\\u2066x\\u2069 \\u200bz\\u200d \\ufeff"
                                                        " \\u061c \\u2028"),
    ("tag\U000e0041", "tag\\U000e0041"),
])
def test_clean_escapes_what_a_terminal_acts_on(text: str, shown: str) -> None:
    assert clean(text) == shown


@pytest.mark.parametrize("text", ["[/]", "[link=https://evil.example]x[/link]", "[bold red]x",
                                  "café 日本語 🚀 a\\x1b", ":smile:", "", "-> ∞ é"])
def test_clean_keeps_printable_text_as_it_is(text: str) -> None:
    assert clean(text) == text


def rendered(*parts: str, style: str = "") -> str:
    """What a colour terminal receives for a line of these parts."""
    buf = io.StringIO()
    term = Console(file=buf, force_terminal=True, color_system="truecolor", width=200,
                   markup=False, highlight=False, emoji=False)
    term.print(line(styled("id", style or "bold"), " ", *parts))
    return buf.getvalue()


def test_a_line_never_parses_markup_nor_passes_escapes() -> None:
    out = rendered("[/] [link=https://evil.example]x[/link] [bold red]y :smile:",
                   " \x1b[2J\x1b]0;t\x07\u202e")
    assert "[/] [link=https://evil.example]x[/link] [bold red]y :smile:" in out
    assert "\\x1b[2J\\x1b]0;t\\x07\\u202e" in out
    assert "\x1b]" not in out and "\x1b[2J" not in out and "\u202e" not in out
    assert "\x1b[1mid\x1b[0m" in out  # our own styling still works


def test_the_consoles_parse_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    for console in (output.console, output.err):
        assert not console._markup and not console._highlight and not console._emoji
    output.show("[/]", " [bold]x")
    output.table("t [/]", ["a [/]"], [["[link=https://e]x", "\x1b[2J"]])
    out = capsys.readouterr().out
    assert "[/] [bold]x" in out and "t [/]" in out and "[link=https://e]x" in out
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_fail_prints_one_escaped_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        output.fail("job [/]\x1b[2J\nnot found")
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err == "error: job [/]\\x1b[2J\\x0anot found\n"


def test_plain_cleans_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    output.plain("a,b\r\n\x1b[2J,[/]\r\n")
    assert capsys.readouterr().out == "a,b\n\\x1b[2J,[/]\n"


# -- the static guard --------------------------------------------------------------------------
def _called(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _violations(path: Path) -> list[str]:
    """What in a CLI module other than output.py could put text on a terminal unescaped."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                a.name for a in node.names]
            found.extend(f"{where}: imports {n} (use fairpool.cli.output)"
                         for n in names if n.split(".")[0] in ("rich", "click"))
        raw = (path.name, function) in RAW
        if isinstance(node, ast.Call) and _called(node) in PRINTS and not raw:
            found.append(f"{where}: calls {_called(node)}() (use show, table, plain or fail)")
        if (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")
                and isinstance(node.value, ast.Name) and node.value.id == "sys" and not raw):
            found.append(f"{where}: uses sys.{node.attr} (use show, plain or emit_json)")
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, "")
    return found


def test_cli_modules_print_only_through_the_output_helpers() -> None:
    modules = sorted(p for p in CLI.glob("*.py") if p.name != "output.py")
    assert {p.name for p in modules} >= {"main.py", "jobs.py", "access.py", "reports.py",
                                         "simulate.py"}
    problems = [v for p in modules for v in _violations(p)]
    assert not problems, "\n".join(problems)


def test_the_guard_catches_what_it_must(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nfrom rich.text import Text\nfrom fairpool.cli.output import "
                   "console\n\ndef f(j):\n    console.print(f'[bold]{j.name}')\n"
                   "    sys.stderr.write(j.name)\n    print(j.name)\n")
    assert len(_violations(bad)) == 5  # the import, print, sys.stderr, write, print


def test_output_prints_only_lines_and_tables() -> None:
    """Inside output.py: every Console parses no markup, emoji or highlighting, and every
    print gets a ``line(...)`` (cleaned) or the table built from cleaned cells."""
    tree = ast.parse((CLI / "output.py").read_text())
    consoles = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n) == "Console"]
    assert len(consoles) == 2
    for c in consoles:
        off = {k.arg for k in c.keywords
               if isinstance(k.value, ast.Constant) and k.value.value is False}
        assert off >= {"markup", "emoji", "highlight"}, ast.unparse(c)
    prints = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n) == "print"]
    assert prints
    for p in prints:
        for arg in p.args:
            ok = (isinstance(arg, ast.Call) and _called(arg) == "line") or (
                isinstance(arg, ast.Name) and arg.id == "t")
            assert ok, f"output.py:{p.lineno}: {ast.unparse(p)}"


# -- tables that fit the terminal --------------------------------------------------------------
ID = "job-0123456789abcdef-long"  # 25 cells: more than a text column would keep
REASON = ("waiting: project computer-vision-research is at its limit of 4 GPUs with 4 GPUs in "
          "use; the job needs 2 GPUs more and runs when one of its running jobs ends or the "
          "limit is raised by a department admin")


def render(width: int, monkeypatch: pytest.MonkeyPatch, *args: object, **kw: object) -> str:
    """What ``output.table(*args, **kw)`` prints on a console ``width`` cells wide (as when
    COLUMNS is set, or stdout is a pipe: 80)."""
    buf = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buf, width=width, markup=False,
                                                   highlight=False, emoji=False))
    output.table(*args, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


def words_whole(text: str, out: str) -> bool:
    """Every word of ``text`` appears whole in ``out`` (none cut or folded in the middle)."""
    tokens = set(out.replace("│", " ").replace("┃", " ").split())
    return all(w in tokens for w in text.split())


COLUMNS = [output.Col("id", "id"), output.Col("gpus", "num"), output.Col("model", "text"),
           output.Col("reason", "wrap")]
ROWS = [[ID, "2", "NVIDIA H100 80GB HBM3 (simulated)", REASON], ["j2", "0.5", "x", "short"]]


@pytest.mark.parametrize("width", [80, 120, 200])
def test_ids_stay_whole_and_lines_fit(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    out = render(width, monkeypatch, "jobs", COLUMNS, ROWS)
    lines = out.splitlines()
    assert max(map(len, lines)) <= width, out
    assert any(ID in ln for ln in lines), out  # on one line, whole
    assert words_whole(REASON, out), out  # wrapped at word boundaries
    if width == 80:  # prose wraps at 40, then text is cut with an ellipsis (to 12, then 4)
        assert "NVIDIA H100 80GB" not in out and ("NVIDIA H100…" in out or "NVI…" in out), out
    else:  # room enough once the reason wraps: the text is whole
        assert "NVIDIA H100 80GB HBM3 (simulated)" in out and "…" not in out, out


def test_a_reason_wraps_at_words_even_at_200(monkeypatch: pytest.MonkeyPatch) -> None:
    long = REASON + " " + REASON  # wider than 200 columns leave it
    out = render(200, monkeypatch, "jobs", COLUMNS, [[ID, "1", "m", long]])
    assert max(map(len, out.splitlines())) <= 200 and words_whole(long, out), out
    assert sum("waiting:" in ln for ln in out.splitlines()) == 2  # it took several lines


def test_a_word_longer_than_the_column_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    word = "x" * 60
    out = render(80, monkeypatch, "t", [output.Col("id", "id"), output.Col("reason", "wrap")],
                 [["a" * 30, f"see {word} now"]])
    assert max(map(len, out.splitlines())) <= 80 and word not in out
    assert out.count("x") == 60, out  # folded, nothing lost


def test_num_columns_align_right(monkeypatch: pytest.MonkeyPatch) -> None:
    out = render(80, monkeypatch, "t", [output.Col("name", "id"), output.Col("count", "num")],
                 [["a", "1"], ["b", "100"]])
    assert "│     1 │" in out and "│   100 │" in out, out


def test_wide_prints_every_cell_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    out = render(80, monkeypatch, "jobs", [*COLUMNS, output.Col("extra", "text", drop=1)],
                 [[*row, "left out at 80"] for row in ROWS], wide=True)
    assert any(REASON in ln and ID in ln and "NVIDIA H100 80GB HBM3 (simulated)" in ln
               for ln in out.splitlines()), out
    assert "extra" in out and "…" not in out and "left out" not in out.splitlines()[-1]


def test_columns_give_way_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers wrap first, then text and wrap columns shrink, then columns are left out
    (highest ``drop`` first, told below the table); ids and numbers never shrink."""
    cols = [output.Col("queue", "id"), output.Col("weight", "num", drop=2),
            output.Col("pending", "num", drop=1), output.Col("fair share", "num"),
            output.Col("allocated", "num")]
    row = ["research-and-development-" + "x" * 20, "1", "0", "2", "1.5"]
    full = render(200, monkeypatch, "queues", cols, [row])
    assert "fair share" in full and "weight" in full and "left out" not in full
    narrow = render(80, monkeypatch, "queues", cols, [row])
    assert max(map(len, narrow.splitlines())) <= 80 and row[0] in narrow, narrow
    assert "weight" not in narrow.splitlines()[1] and "pending" in narrow, narrow
    assert "fair" in narrow and "share" in narrow and "fair share" not in narrow, narrow
    assert narrow.splitlines()[-1] == "left out at 80 columns: weight (--wide shows them)"


def test_fit_keeps_ids_and_numbers_whole() -> None:
    cols = [output.Col("id", "id"), output.Col("n", "num"), output.Col("t", "text"),
            output.Col("w", "wrap")]
    cells = [["a" * 30, "12345", "t" * 50, " ".join(["word"] * 40)]]
    widths = output.fit(cols, cells, 80)
    assert widths[0] == 30 and widths[1] == 5
    assert sum(w or 0 for w in widths) + 3 * 4 + 1 <= 80
    assert output.fit(cols, cells, 10**6) == [30, 5, 50, 199]  # room: every cell whole
    # ids alone wider than the terminal: they stay whole (the table is wider)
    assert output.fit([output.Col("id", "id")] * 3, [["b" * 40] * 3], 80) == [40, 40, 40]


def test_columns_given_as_strings_wrap_and_cut_nothing(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    out = render(80, monkeypatch, "t", ["id", "reason"], [[ID, REASON]])
    assert "…" not in out and words_whole(REASON, out) and max(map(len, out.splitlines())) <= 80
    assert any(ID in ln for ln in out.splitlines())


def test_an_unmarked_id_is_not_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ID in render(40, monkeypatch, "t", [output.Col("id", "id"), "x"], [[ID, "y"]])
