"""The CLI never acts on markup or terminal escapes in other people's data (issue 16, finding 5).

A researcher submits, on a real server, jobs whose names are Rich markup (``[/]``, a
``[link=…]``, ``[bold red]``) and whose commands carry terminal escapes (clear screen, an OSC 8
link, an OSC window title, a right-to-left override); she labels her token the same way, and an
admin's cordon reason does too. Other people then run the real ``fairpool`` CLI in a subprocess
with a forced terminal (colours on, as Rich renders for a person): every command exits 0, shows
the names literally and the escapes visibly escaped, and the output holds no ESC byte but the
SGR colour codes of the CLI's own styling, no OSC sequence (so no link and no title), no BEL
and no raw bidirectional override. ``--json`` stays machine-readable, with the data intact.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fairpool.schemas.jobs import JobOut
from tests.e2e.conftest import BIN
from tests.security.conftest import Org

NAMES = ("[/]", "[link=https://evil.example]x[/link]", "[bold red]x")
ESCAPES = ("\x1b[2J", "\x1b]8;;https://evil\x1b\\", "\x1b]0;pwned\x07", "\u202e")
SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
#: what the CLI's own styling may emit: SGR sequences (colours, bold), nothing else
SGR = re.compile(r"\x1b\[[0-9;]*m")
#: markup, where the server takes no control characters (a token's description, a reason)
MARKUP = "[/] [link=https://evil.example]x[/link] [bold red]y"


@dataclass
class Hostile:
    org: Org
    jobs: list[JobOut]
    node: str


@pytest.fixture(scope="module")
def hostile(org: Org) -> Iterator[Hostile]:
    rita = org.client("rita")
    jobs = [rita.submit(project="p1", name=name, command=[*SLEEP, *ESCAPES],
                        env={"MODE": "\x1b[2J"}) for name in NAMES[:2]]
    # its node selector matches no node: it waits, the reason quoting the label
    jobs.append(rita.submit(project="p1", name=NAMES[2], command=[*SLEEP, *ESCAPES],
                            labels={"team": "[/][link=https://evil.example]x[/link]"}))
    jobs.append(rita.submit(project="p1", name="[bold red]x", command=["sh", "-c", "exit 3",
                                                                        *ESCAPES]))
    rita.create_token("rita", 3600, description=MARKUP)
    for j in jobs[:2]:
        org.pool.wait(j.id, {"running"})
    org.pool.until(lambda: rita.explain(jobs[2].id).code == "NO_NODES", what="no node fits")
    org.pool.wait(jobs[3].id, {"failed"})
    node = org.pool.client.nodes()[0].name
    yield Hostile(org, jobs, node)
    org.pool.client.uncordon(node)


def cli(org: Org, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``fairpool ARGS`` as ``user``, rendered by Rich as for a person at a colour terminal."""
    env = dict(org.pool.env)
    env.pop("NO_COLOR", None)
    env.update(FAIRPOOL_TOKEN=org.tokens[user], FORCE_COLOR="1", TTY_COMPATIBLE="1",
               TERM="xterm-256color", COLUMNS="250")
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def inert(out: str, where: str) -> None:
    """Only our own SGR styling: no other escape, no OSC (links, titles), no BEL, no bidi."""
    rest = SGR.sub("", out)
    assert "\x1b" not in rest, f"{where}: a terminal escape reached the output: {rest!r}"
    for bad in ("\x07", "\x9b", "\x9d", "\u202e", "\u2066", "\u200b"):
        assert bad not in rest, f"{where}: {bad!r} reached the output"
    assert "Traceback" not in out and "MarkupError" not in out, f"{where}: {out}"


def shown(org: Org, user: str, *args: str, styling: bool = True) -> str:
    """The command succeeds, prints nothing dangerous; returns its output without styling
    (which a table, or a job's bold id, shows: the terminal was forced)."""
    out = cli(org, user, *args)
    where = f"fairpool {' '.join(args)} as {user}"
    assert out.returncode == 0, f"{where}: exit {out.returncode}: {out.stderr}"
    inert(out.stdout + out.stderr, where)
    assert not styling or SGR.search(out.stdout), f"{where}: no styling: no forced terminal"
    return SGR.sub("", out.stdout)


def test_job_names_print_literally_and_commands_escaped(hostile: Hostile) -> None:
    org = hostile.org
    for job, name in zip(hostile.jobs, (*NAMES, NAMES[2]), strict=True):
        detail = shown(org, "vic", "job", job.id)
        assert name in detail, detail  # the markup is shown as typed, never interpreted
        assert r"\x1b[2J" in detail and r"\x1b]0;pwned\x07" in detail, detail
        assert r"\u202e" in detail and "\\x1b]8;;https://evil\\x1b\\" in detail, detail
        explained = shown(org, "vic", "explain", job.id, styling=False)
        assert job.id in explained
    waiting = shown(org, "vic", "explain", hostile.jobs[2].id, styling=False)
    assert "team=[/][link=https://evil.example]x[/link]" in waiting, waiting
    listing = shown(org, "vic", "jobs")
    assert all(j.id in listing for j in hostile.jobs)
    assert "team=[/][link=https://evil.example]x[/link]" in listing, listing
    shown(org, "vic", "jobs", "--project", "p1", "--state", "running")
    shown(org, "vic", "queues")
    shown(org, "vic", "whoami", styling=False)
    shown(org, "rita", "usage", "--by", "job")


def test_json_output_keeps_the_data_and_no_raw_escape(hostile: Hostile) -> None:
    out = cli(hostile.org, "vic", "job", hostile.jobs[0].id, "--json")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout  # json.dumps escapes them
    data = json.loads(out.stdout)
    assert data["name"] == "[/]" and data["command"][-len(ESCAPES):] == list(ESCAPES)
    listed = json.loads(cli(hostile.org, "vic", "jobs", "--json").stdout)
    assert {j["name"] for j in listed} >= set(NAMES)


def test_tokens_audit_and_cordon_reason_are_inert(hostile: Hostile) -> None:
    org = hostile.org
    cordoned = shown(org, "admin", "node", "cordon", hostile.node, "--reason", MARKUP,
                     styling=False)
    assert MARKUP in cordoned, cordoned
    nodes = shown(org, "vic", "nodes")
    assert hostile.node in nodes and "[link=https://evil.example]x" in nodes, nodes
    tokens = shown(org, "admin", "token", "list")
    assert MARKUP in tokens, tokens
    audit = shown(org, "admin", "audit", "--action", "node.cordon")
    assert "[/] [link=https://evil.example]x" in audit, audit
    shown(org, "admin", "audit")
    shown(org, "vic", "role", "list")


def test_errors_carrying_user_data_are_one_escaped_line(hostile: Hostile) -> None:
    org = hostile.org
    for args in (("job", "[/]" + ESCAPES[0]), ("explain", "[bold]x" + ESCAPES[2]),
                 ("cancel", hostile.jobs[0].id)):  # vic, a viewer, may not cancel
        out = cli(org, "vic", *args)
        where = f"fairpool {' '.join(args)}"
        assert out.returncode == 1, f"{where}: {out.returncode} {out.stdout} {out.stderr}"
        inert(out.stdout + out.stderr, where)
        message = SGR.sub("", out.stderr).strip()
        assert message.startswith("error: ") and "\n" not in message, message
    out = cli(org, "vic", "job", "[/]" + ESCAPES[0])
    assert r"[/]\x1b[2J" in SGR.sub("", out.stderr), out.stderr
    # the legitimate use: rita cancels her own job with the same command
    cancelled = shown(org, "rita", "cancel", hostile.jobs[0].id, styling=False)
    assert cancelled.startswith(hostile.jobs[0].id)
