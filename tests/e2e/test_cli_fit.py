"""The CLI fits the terminal: every table at 80 and 200 columns keeps ids, node and queue names
whole on one line, wraps long reasons at word boundaries, cuts other text with an ellipsis or
leaves columns out (and says so), and ``--wide`` prints every cell whole; plus the papercuts:
one-line usage errors, ``token create --json``, usage CSV by department, ``set-quota``'s flags
and counts in words ("1 GPU").

One real pool for the module: a department and projects with long names, two simulated nodes
with long names (one cordoned with a long reason), running jobs and a job waiting at its
project's limit, a token, a role binding, a secret, a mapped and a disabled user.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.conftest import BIN, Pool, start_pool, stop_pool
from tests.simulate.conftest import SAMPLE, needs_traces

DEPT = "research-and-development"
VISION = "computer-vision-lab"
LM = "language-models"
SCRATCH = "scratch-project"
NODE_A, NODE_B = "gpu-node-long-name-a", "gpu-node-long-name-b"
REASON = ("scheduled maintenance: replacing the failing power supply unit and updating the "
          "firmware of every device before the next training cycle starts on Monday morning")
USER = "researcher-with-long-name"
GONE = "former-employee-long-name"
SECRET = "WANDB_API_KEY_OF_THE_TEAM"
SLEEP = [sys.executable, "-c", "import time; time.sleep(600)"]
WIDTHS = (80, 200)


@dataclass
class Fit:
    pool: Pool
    running: list[str] = field(default_factory=list)  # job ids
    waiting: str = ""
    token_id: str = ""


@pytest.fixture(scope="module")
def fit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fit]:
    tmp = tmp_path_factory.mktemp("fit")
    nodes = tmp / "nodes.toml"
    nodes.write_text("".join(f'[[node]]\nname = "{n}"\ngpus = 2\ncpus = 8\nmemory_mib = 16384\n'
                             for n in (NODE_A, NODE_B)))
    pool = start_pool(tmp, "--nodes-file", str(nodes))
    try:
        pool.cli("department", "create", DEPT, "--quota-gpus", "4", "--quota-cpus", "8")
        pool.cli("project", "create", VISION, "-d", DEPT, "--quota-gpus", "2")
        pool.cli("project", "create", LM, "-d", DEPT, "--quota-gpus", "1", "--limit-gpus", "1")
        pool.cli("project", "create", SCRATCH, "-d", DEPT)
        c = pool.client
        c.cordon(NODE_B, REASON)  # so that both running jobs are on NODE_A
        out = Fit(pool)
        for project in (LM, VISION):
            job = c.submit(project=project, gpus=1, command=SLEEP, name=f"{project}-training")
            pool.wait(job.id, {"running"})
            out.running.append(job.id)
        waiting = c.submit(project=LM, gpus=1, command=SLEEP, name="waits-at-the-limit")
        out.waiting = waiting.id
        pool.until(lambda: "limit" in (c.job(waiting.id).reason or ""), what="a pending reason")
        out.token_id = c.create_token(USER, 86400, "the nightly evaluation robot of the "
                                                   "computer vision lab").id
        c.grant(USER, "researcher", VISION)
        c.set_secret(VISION, SECRET, "not shown")
        c.map_account(USER, "researcher")
        c.disable_user(GONE)
        yield out
    finally:
        stop_pool(pool)


def at(fit: Fit, width: int | str, *args: str) -> str:
    """``fairpool ARGS`` with COLUMNS=width (""/unset: a pipe, which Rich takes as 80)."""
    return fit.pool.cli(*args, env={"COLUMNS": str(width)}).stdout


def words_whole(text: str, out: str) -> bool:
    """Every word of ``text`` appears whole in ``out``: wrapped only at word boundaries."""
    tokens = set(out.replace("│", " ").replace("┃", " ").split())
    return all(w in tokens for w in text.split())


def whole(out: str, *names: str) -> list[str]:
    """The names that do not appear whole on one line of ``out``."""
    lines = out.splitlines()
    return [n for n in names if not any(n in ln for ln in lines)]


#: each table command I own, and what must show whole on one line in it
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "queues": (("queues",), (DEPT, VISION, LM, SCRATCH)),
    "nodes": (("nodes",), (NODE_A, NODE_B)),
    "usage": (("usage",), (VISION, LM)),
    "usage-dept": (("usage", "--by", "department"), (DEPT,)),
    "usage-job": (("usage", "--by", "job"), ()),
    "tokens": (("token", "list"), (USER,)),
    "roles": (("role", "list"), (USER, VISION, "researcher")),
    # the audit log's targets (user:role@scope, project/job) wrap like prose at 80 columns
    "audit": (("audit", "--limit", "20"), ("node.cordon",)),
    "secrets": (("secret", "list", VISION), (SECRET,)),
    "users": (("user", "list"), (USER,)),
    "disabled": (("user", "disabled"), (GONE,)),
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_fits_and_keeps_ids_whole(fit: Fit, name: str, width: int) -> None:
    args, names = TABLES[name]
    out = at(fit, width, *args)
    lines = out.splitlines()
    assert lines and max(map(len, lines)) <= width, out
    extra: tuple[str, ...] = ()
    if name in ("nodes", "usage-job"):
        extra = tuple(fit.running)  # "held by" lists them; usage by job keys on them
    if name == "tokens":
        extra = (fit.token_id,)
    if name == "audit" and width == 200:
        extra = (NODE_B, f"{USER}:researcher@{VISION}")
    assert not whole(out, *names, *extra), out


def test_queues_at_80_keep_names_and_say_what_was_left_out(fit: Fit) -> None:
    for out in (at(fit, 80, "queues"), at(fit, "", "queues")):  # COLUMNS=80, and a pipe
        assert max(map(len, out.splitlines())) <= 80 and not whole(out, DEPT, f"  {VISION}")
        assert "left out at 80 columns:" in out and "--wide" in out, out
    wide = at(fit, 80, "queues", "--wide")
    header = next(ln for ln in wide.splitlines() if "queue" in ln and "quota" in ln)
    for column in ("kind", "quota", "limit", "weight", "fair share", "allocated", "pending",
                   "jobs run/wait"):
        assert column in header, wide
    assert "left out" not in wide and max(map(len, wide.splitlines())) > 80


@pytest.mark.parametrize("width", WIDTHS)
def test_a_long_reason_wraps_at_words(fit: Fit, width: int) -> None:
    for args, text in ((("nodes",), f"cordoned ({REASON})"),
                       (("audit", "--action", "node.cordon"), REASON)):
        out = at(fit, width, *args)
        assert words_whole(text, out), out
        assert REASON not in out  # it did not fit on one line: wrapped (not cut, not folded)
        assert "…" not in "".join(ln for ln in out.splitlines() if "maintenance" in ln)


def test_wide_prints_the_whole_reason_on_one_line(fit: Fit) -> None:
    nodes = at(fit, 80, "nodes", "--wide")
    assert any(f"cordoned ({REASON})" in ln and NODE_B in ln for ln in nodes.splitlines()), nodes
    assert "isolation" in nodes and "model" in nodes and "left out" not in nodes
    audit = at(fit, 80, "audit", "--action", "node.cordon", "--wide")
    assert any(REASON in ln for ln in audit.splitlines()), audit
    assert "…" not in nodes + audit


@pytest.mark.parametrize("width", WIDTHS)
def test_job_tables_fit(fit: Fit, width: int) -> None:
    listing = at(fit, width, "jobs")
    assert max(map(len, listing.splitlines())) <= width, listing
    assert not whole(listing, *fit.running, fit.waiting, LM, VISION), listing
    detail = at(fit, width, "job", fit.waiting)
    assert max(map(len, detail.splitlines())) <= width, detail
    assert not whole(detail, fit.waiting), detail
    running = at(fit, width, "job", fit.running[0])
    assert not whole(running, fit.running[0], NODE_A), running
    reason = fit.pool.client.job(fit.waiting).reason or ""
    assert words_whole(reason, listing), listing
    wide = at(fit, 80, "jobs", "--wide")
    assert any(reason in ln for ln in wide.splitlines()), wide


def test_usage_csv_by_department_has_each_column_once(fit: Fit) -> None:
    rows = list(csv.reader(io.StringIO(at(fit, 80, "usage", "--by", "department", "--csv"))))
    assert rows[0] == ["department", "jobs", "allocated_gpu_hours", "used_gpu_hours",
                       "measured_gpu_hours"]
    assert [r[0] for r in rows[1:]] == [DEPT] and all(len(r) == 5 for r in rows)
    by_job = list(csv.reader(io.StringIO(at(fit, 80, "usage", "--by", "job", "--csv"))))
    assert by_job[0][:3] == ["job", "project", "department"]
    assert {(r[0], r[1], r[2]) for r in by_job[1:]} >= {(fit.running[0], LM, DEPT),
                                                        (fit.running[1], VISION, DEPT)}
    by_project = list(csv.reader(io.StringIO(at(fit, 80, "usage", "--csv"))))
    assert by_project[0][:3] == ["project", "department", "jobs"]
    table = at(fit, 200, "usage", "--by", "department")
    header = next(ln for ln in table.splitlines() if "allocated" in ln)
    assert header.count("department") == 1, table


def test_token_create_json(fit: Fit) -> None:
    out = fit.pool.cli("token", "create", "--user", "ci-bot", "--expires-days", "1",
                       "--description", "for CI", "--json")
    made = json.loads(out.stdout)
    assert made["token"].startswith("fp_") and made["user"] == "ci-bot"
    assert made["description"] == "for CI" and made["expires_at"] > made["created_at"]
    assert made["id"] in at(fit, 200, "token", "list") and out.stderr == ""


def test_set_quota_takes_the_flags_of_create(fit: Fit) -> None:
    pool = fit.pool
    out = pool.cli("project", "set-quota", SCRATCH, "--quota-gpus", "1", "--quota-cpus", "2",
                   "--limit-gpus", "3", "--limit-cpus", "4")
    assert f"{SCRATCH}: quota 1 GPU, limit 3" in out.stdout, out.stdout
    q = next(q for q in pool.client.queues() if q.name == SCRATCH)
    assert (q.quota.gpus, q.quota.cpus) == (1, 2)
    assert q.limit is not None and (q.limit.gpus, q.limit.cpus, q.limit.memory_mib) == (3, 4, None)
    pool.cli("project", "set-quota", SCRATCH, "--limit-memory", "8192")  # keeps the others
    q = next(q for q in pool.client.queues() if q.name == SCRATCH)
    assert q.limit is not None and (q.limit.gpus, q.limit.cpus, q.limit.memory_mib) == (3, 4, 8192)
    old = pool.cli("project", "set-quota", SCRATCH, "--gpus", "0")  # the old name still works
    assert old.stderr.splitlines() == ["note: --gpus is deprecated; use --quota-gpus"], old.stderr
    assert next(q for q in pool.client.queues() if q.name == SCRATCH).quota.gpus == 0
    assert "--gpus" not in pool.cli("project", "set-quota", "--help").stdout
    for args in (("--gpus", "1", "--quota-gpus", "2"), ("--unlimited", "--limit-gpus", "1"),
                 ()):
        bad = pool.cli("project", "set-quota", SCRATCH, *args, check=False)
        assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
        assert bad.stderr.startswith("error: "), bad.stderr


def test_counts_read_as_words(fit: Fit) -> None:
    out = fit.pool.cli("project", "create", "single-gpu", "-d", DEPT, "--quota-gpus", "1")
    assert "(quota 1 GPU)" in out.stdout, out.stdout
    reason = fit.pool.client.job(fit.waiting).reason or ""
    assert "at its limit 1 GPU " in reason and "1 GPUs" not in reason, reason
    fit.pool.client.create_token("one-token-user", 3600, "")
    out = fit.pool.cli("user", "disable", "one-token-user")
    assert "; 1 token revoked" in out.stdout, out.stdout
    (record,) = fit.pool.client.audit(action="user.disable", limit=1)
    assert record.detail == "1 token revoked", record


@pytest.mark.parametrize(("args", "where"), [
    (("submit", "--nope"), "submit"), (("jobs", "--limit", "x"), "jobs"),
    (("project", "create"), "project create"), (("project", "create", "x", "-d"),
                                                "project create"),
    (("nope",), ""), (("queues", "--wide", "extra"), "queues"),
    (("up", "--strategy", "sideways"), "up"),
])
def test_a_usage_error_is_one_line(args: tuple[str, ...], where: str) -> None:
    out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COLUMNS": "80"})
    assert out.returncode == 2 and out.stdout == "", out
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith("error: "), out.stderr
    assert out.stderr.endswith(f" (see {' '.join(['fairpool', *where.split()])} --help)\n")


def test_help_still_shows() -> None:
    for args in (("--help",), ("project", "set-quota", "--help")):
        out = subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "Usage" in out.stdout and out.stderr == "", out
    bare = subprocess.run([str(BIN), "project"], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2 and "set-quota" in bare.stdout, bare  # its help, as before


@needs_traces
def test_the_simulation_table_fits_80_columns() -> None:
    out = subprocess.run([str(BIN), "simulate", str(SAMPLE), "--gpus", "32", "--limit", "50"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(map(len, lines)) <= 80 and "50 jobs, 32 GPUs" in lines[0], out.stdout
    header = next(ln for ln in lines if "metric" in ln)
    assert all(p in header for p in ("fifo", "sjf", "las", "strict-quota", "fairpool")), header
    assert "…" not in out.stdout and "simulating fifo (50 jobs on 32 GPUs)" in out.stderr
