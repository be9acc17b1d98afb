"""Arrays, sweeps, dependencies, references, bulk cancel and ``wait`` through the CLI and the
SDK, against a real server whose tasks are real subprocesses (the REST contract itself is
tested in tests/workflow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from fairpool.client import Client, FairpoolError, Job
from tests.e2e.conftest import BIN, Pool

PY = sys.executable
#: a task that writes when it started and ended into the folder it is given
MARK = ("import os, sys, time, pathlib\n"
        "d = pathlib.Path(sys.argv[1]); i = os.environ['FAIRPOOL_ARRAY_INDEX']\n"
        "(d / f'{i}.start').write_text(repr(time.time()))\n"
        "time.sleep(0.5)\n"
        "(d / f'{i}.end').write_text(repr(time.time()))\n")
#: a job that runs until the file it is given exists, then exits with the code given (0)
HOLD = ("import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"
        "sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)\n")


def submitted(pool: Pool, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = json.loads(pool.cli("submit", "--json", *args, env=env).stdout)
    assert isinstance(out, dict)
    return out


def hold(pool: Pool, trigger: Path, *args: str, code: int = 0) -> str:
    """A job (of vision unless ``args`` say) that runs until ``trigger`` exists, then exits
    with ``code``."""
    return str(submitted(pool, "-p", "vision", *args, "--", PY, "-c", HOLD, str(trigger),
                         str(code))["id"])


def one_line_error(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("error: "), out.stderr
    return out.stderr


def test_an_array_never_runs_more_tasks_than_its_cap(pool: Pool, tmp_path: Path) -> None:
    made = submitted(pool, "-p", "vision", "--cpus", "0.1", "--array", "0-7%3", "--name",
                     "capped", "--", PY, "-c", MARK, str(tmp_path))
    assert pool.cli("wait", "capped").returncode == 0
    spans = [(float((tmp_path / f"{i}.start").read_text()),
              float((tmp_path / f"{i}.end").read_text())) for i in range(8)]  # all ran
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert 2 <= most <= 3, spans  # the pool had room for all 8 at once: the cap held them
    listing = pool.cli("jobs").stdout
    row = next(ln for ln in listing.splitlines() if str(made["id"]) in ln)
    assert "capped" in row and "8 succeeded" in row and "×8" in row, listing
    tasks = [t.id for t in pool.client.array_tasks(str(made["id"]))]
    assert not any(t in listing for t in tasks)  # one line for the array, not its tasks
    assert all(t in pool.cli("jobs", "--tasks", "--limit", "500").stdout for t in tasks)
    only = json.loads(pool.cli("jobs", "--array", "capped", "--json").stdout)
    assert sorted(j["id"] for j in only) == sorted(tasks)
    assert {j["array_id"] for j in only} == {made["id"]}


def test_a_sweep_gives_each_task_its_parameters(pool: Pool) -> None:
    made = submitted(pool, "-p", "nlp", "--sweep", "LR=1e-3,1e-4", "--sweep", "BS=32,64",
                     "--name", "grid", "--", "sh", "-c",
                     "echo index=$FAIRPOOL_ARRAY_INDEX lr=$LR bs=$BS")
    assert made["size"] == 4
    assert pool.cli("wait", "--quiet", str(made["id"])[:8]).returncode == 0
    grid = [("1e-3", "32"), ("1e-3", "64"), ("1e-4", "32"), ("1e-4", "64")]
    tasks = pool.client.array_tasks(str(made["id"]))
    for i, (lr, bs) in enumerate(grid):
        assert pool.client.logs(tasks[i].id).split() == [f"index={i}", f"lr={lr}", f"bs={bs}"]
    assert pool.cli("logs", "grid:2").stdout == "index=2 lr=1e-4 bs=32\n"
    shown = pool.cli("job", f"{made['id']}:3").stdout
    assert "params: LR=1e-4 BS=64" in shown and f"task 3 of array {made['id']}" in shown


def test_dependencies_run_in_order_and_a_failed_parent_cancels(pool: Pool, tmp_path: Path
                                                                ) -> None:
    first = hold(pool, tmp_path / "go", "--name", "chain-first")
    second = submitted(pool, "-p", "vision", "--after", "chain-first", "--", "true")
    assert second["deps_waiting"] is True
    detail = pool.cli("job", str(second["id"])).stdout
    assert "dependencies (waiting)" in detail and first in detail, detail
    assert "succeeded" in detail and "running" in detail  # what it needs, how it stands
    (tmp_path / "go").touch()
    assert pool.cli("wait", str(second["id"])).returncode == 0
    a, b = pool.client.job(first), pool.client.job(str(second["id"]))
    assert a.finished_at is not None and b.started_at is not None
    assert a.finished_at <= b.started_at

    failing = {"id": hold(pool, tmp_path / "fail", code=3)}
    prefix = str(failing["id"])[:7]
    child = submitted(pool, "-p", "vision", "--after", prefix, "--", "true")
    cleanup = submitted(pool, "-p", "vision", "--after-failed", prefix, "--", "true")
    anyway = submitted(pool, "-p", "vision", "--after-any", str(child["id"]), "--", "true")
    assert child["depends"] == [{"id": failing["id"], "array": False, "on": "ok"}]
    (tmp_path / "fail").touch()
    out = pool.cli("wait", str(child["id"]), str(cleanup["id"]), str(anyway["id"]),
                   check=False)
    assert out.returncode == 125, out  # the first that did not succeed was cancelled
    assert f"job {failing['id']} failed; it had to succeed" in pool.cli(
        "job", str(child["id"])).stdout
    states = {j: pool.client.job(str(j)).state for j in (cleanup["id"], anyway["id"])}
    assert set(states.values()) == {"succeeded"}, states

    arr = submitted(pool, "-p", "nlp", "--array", "0-2", "--name", "parents", "--",
                    "sleep", "0.2")
    after = submitted(pool, "-p", "nlp", "--after", "parents", "--", "true")
    assert after["depends"] == [{"id": arr["id"], "array": True, "on": "ok"}]
    assert pool.cli("wait", str(after["id"])).returncode == 0


def test_wait_exits_with_the_outcome(pool: Pool, tmp_path: Path) -> None:
    ok = str(submitted(pool, "-p", "vision", "--", "true")["id"])
    three = str(submitted(pool, "-p", "vision", "--", "sh", "-c", "exit 3")["id"])
    held = hold(pool, tmp_path / "never")
    out = pool.cli("wait", "--timeout", "0.5", held, check=False)
    assert out.returncode == 124 and "not finished after 0.5 s" in out.stdout
    pool.client.cancel(held)
    assert pool.cli("wait", ok).returncode == 0
    failed = pool.cli("wait", ok, three, held, check=False)
    assert failed.returncode == 3, failed  # the first, in the order given, that failed
    assert f"{three}" in failed.stdout and "failed (exit 3)" in failed.stdout
    assert pool.cli("wait", held, three, check=False).returncode == 125
    quiet = pool.cli("wait", "-q", three, check=False)
    assert quiet.returncode == 3 and quiet.stdout == "" and quiet.stderr == ""
    arr = submitted(pool, "-p", "vision", "--array", "0-3", "--", "sh", "-c",
                    'test "$FAIRPOOL_ARRAY_INDEX" != 2 || exit 4')
    whole = pool.cli("wait", str(arr["id"]), check=False)
    assert whole.returncode == 4 and "3 succeeded · 1 failed" in whole.stdout, whole
    assert one_line_error(pool.cli("wait", "no-such-job", check=False))


def test_references_prefixes_names_and_bulk_cancel(pool: Pool, tmp_path: Path) -> None:
    trigger = tmp_path / "go"
    blocker = hold(pool, trigger)
    wide = submitted(pool, "-p", "vision", "--array", "0-299", "--name", "waiting-wide",
                     "--after", blocker, "--", "true")
    twins = [str(submitted(pool, "-p", "nlp", "--name", "twin", "--after", blocker, "--",
                           "true")["id"]) for _ in range(2)]
    tasks = [t.id for t in pool.client.array_tasks(str(wide["id"]), limit=1000)]
    assert len(tasks) == 300
    known = [j.id for j in pool.client.jobs(limit=10_000)] + [
        a.id for a in pool.client.arrays(limit=10_000)]
    # a prefix two ids share: ambiguous, the error lists them (300 ids: one surely repeats)
    shared = next(p for p, n in Counter(i[:3] for i in known).items() if n > 1)
    bad = one_line_error(pool.cli("job", shared, check=False))
    assert "ambiguous" in bad and sum(i in bad for i in known if i.startswith(shared)) >= 2
    unique = next(i[:n] for n in range(3, 13) for i in tasks
                  if sum(k.startswith(i[:n]) for k in known) == 1)
    assert json.loads(pool.cli("job", unique, "--json").stdout)["id"].startswith(unique)
    # names and ARRAY:INDEX
    assert json.loads(pool.cli("job", "waiting-wide:7", "--json").stdout)["id"] == tasks[7]
    twin = one_line_error(pool.cli("cancel", "twin", check=False))
    assert "ambiguous" in twin and all(t in twin for t in twins)
    assert one_line_error(pool.cli("logs", "waiting-wide", check=False)).count(
        f"{wide['id']}:INDEX")
    # many at once: shown first, and without a terminal to ask on, refused
    refused = pool.cli("cancel", "waiting-wide", check=False)
    assert "no terminal to ask on: add --yes" in one_line_error(refused)
    assert refused.stdout.startswith("would cancel 300 jobs: ")
    assert pool.client.array(str(wide["id"])).counts == {"queued": 300}
    done = pool.cli("cancel", "waiting-wide", "--yes")
    assert "cancelled 300 jobs" in done.stdout
    assert pool.client.array(str(wide["id"])).counts == {"cancelled": 300}
    again = pool.cli("cancel", "--project", "nlp", "--state", "queued", "--yes", "--json")
    assert sorted(json.loads(again.stdout)["cancelled"]) == sorted(twins)
    assert pool.cli("cancel", "--project", "nlp", "--yes").stdout.strip() == (
        "nothing to cancel")
    assert one_line_error(pool.cli("cancel", check=False), code=2)
    trigger.touch()
    assert pool.cli("wait", blocker).returncode == 0


def test_jobs_mine_and_user(pool: Pool, tmp_path: Path) -> None:
    pool.client.grant("alice", "researcher", "nlp")
    alice = {"FAIRPOOL_TOKEN": pool.client.create_token("alice", 3600).token}
    hers = str(submitted(pool, "-p", "nlp", "--name", "alice-job", "--", "true",
                         env=alice)["id"])
    mine = str(submitted(pool, "-p", "nlp", "--", "true")["id"])
    def ids(*args: str, env: dict[str, str] | None = None) -> set[str]:
        return {j["id"] for j in json.loads(pool.cli("jobs", "--json", *args,
                                                     env=env).stdout)}
    assert ids("--mine", env=alice) == {hers}
    assert hers in ids("--user", "alice") and mine not in ids("--user", "alice")
    assert mine in ids("--mine") and hers not in ids("--mine")
    assert one_line_error(pool.cli("jobs", "--mine", "--user", "x", check=False), code=2)
    assert pool.cli("wait", hers, mine).returncode == 0


def test_logs_follow_says_why_a_job_waits(pool: Pool, tmp_path: Path) -> None:
    trigger = tmp_path / "go"
    blocker = hold(pool, trigger)
    child = str(submitted(pool, "-p", "vision", "--after", blocker, "--", "sh", "-c",
                          "echo child ran")["id"])
    proc = subprocess.Popen([str(BIN), "logs", "-f", child[:8]], env=pool.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        said = proc.stderr.readline()
        assert said.startswith(f"job {child} is waiting (queued): waiting for job {blocker}")
        assert said.rstrip().endswith("following its log once it starts"), said
        trigger.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "child ran\n" and err == "", (out, err)


def test_the_sdk_waits_submits_arrays_and_runs_where_it_is_called(
        pool: Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    c: Client = pool.client
    out = c.submit(project="vision", command=["sh", "-c", "pwd; exit 3"])
    assert out.workdir == os.getcwd() == str(tmp_path)  # the caller's directory
    job = c.job_handle(out)
    assert isinstance(job, Job)
    done = job.wait(timeout=60)
    assert done.state == "failed" and done.exit_code == 3 and job.state == "failed"
    assert job.logs().strip() == str(tmp_path)
    trigger = tmp_path / "go"
    held = c.job_handle(hold(pool, trigger)[:6])  # a prefix, resolved
    with pytest.raises(TimeoutError):
        held.wait(timeout=0.3)
    assert held.cancel().state in ("stopping", "cancelled")
    assert c.wait(held.id, timeout=60).state == "cancelled"

    arr = c.submit_array(project="nlp", command=["sh", "-c", "echo $X"],
                         params=[{"X": "a"}, {"X": "b"}], max_running=1, name="sdk-sweep")
    assert (arr.size, arr.max_running) == (2, 1)
    assert c.wait_array(arr.id, timeout=60).counts == {"succeeded": 2}
    assert c.resolve("sdk-sweep").id == arr.id and c.resolve(f"{arr.id}:1").kind == "job"
    tasks = c.array_tasks(arr.id)
    assert [c.logs(t.id).strip() for t in tasks] == ["a", "b"]
    assert all(t.workdir == str(tmp_path) for t in tasks)
    assert {j.id for j in c.jobs(array=arr.id)} == {t.id for t in tasks}
    assert arr.id not in {j.array_id for j in c.jobs(tasks=False, limit=1000)}
    assert arr.id in {a.id for a in c.arrays(project="nlp")}
    checked = c.dry_run(project="nlp", command=["true"], indices="0-4")
    assert checked.tasks == 5 and checked.request.workdir == str(tmp_path)
    none = c.cancel_many(project="nlp", state="queued", dry_run=True)
    assert none.dry_run and none.cancelled == []
    with pytest.raises(FairpoolError) as err:
        c.resolve("no-such-anything")
    assert err.value.status == 404


def test_job_shows_the_command_shell_quoted(pool: Pool) -> None:
    j = submitted(pool, "-p", "vision", "--name", "quoted", "--", "sh", "-c", 'echo "a b"')
    assert "command: sh -c 'echo \"a b\"'" in pool.cli("job", "quoted").stdout
    assert pool.cli("wait", str(j["id"])).returncode == 0
