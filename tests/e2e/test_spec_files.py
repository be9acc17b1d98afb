"""``fairpool submit -f job.yaml`` against a real server: every field of a file reaching the
job, the options given overriding the file, each problem as one line at its YAML path (nothing
submitted), ``--dry-run``, sweep files, and ``fairpool spec schema``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Pool

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]
SHOW = ("import os\n"
        "print('cwd', os.getcwd())\n"
        "print('env', os.environ['FOO'], os.environ['FLAG'], os.environ.get('B', '-'))\n")


def write(tmp: Path, text: str, name: str = "job.yaml") -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def test_a_spec_file_sets_every_field(pool: Pool, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    spec = write(tmp_path, f"""
project: vision
name: from-a-file
command: [{PY}, -c, {json.dumps(SHOW)}]
workdir: run                  # relative to the file's folder
workers: 1
resources:
  gpus: 1
  cpus: 0.5
  memory_mib: 256
priority: train
preemptible: false
env:
  FOO: 3
  FLAG: true
retries: 2
max_runtime: 1h30m
min_runtime: 30s
key: spec-file-key-1
""")
    job = json.loads(pool.cli("submit", "-f", spec, "--json").stdout)
    assert (job["name"], job["gpus"], job["cpus"], job["memory_mib"]) == (
        "from-a-file", 1, 0.5, 256)
    assert (job["preemptible"], job["max_retries"], job["max_runtime_s"]) == (False, 2, 5400)
    assert job["workdir"] == str(tmp_path / "run") and job["client_key"] == "spec-file-key-1"
    assert pool.wait(job["id"], {"succeeded", "failed"}) == "succeeded"
    assert pool.client.logs(job["id"]).splitlines() == [f"cwd {tmp_path / 'run'}",
                                                        "env 3 true -"]
    again = json.loads(pool.cli("submit", "-f", spec, "--json").stdout)
    assert again["id"] == job["id"]  # the key: the same job


def test_the_options_given_override_the_file(pool: Pool, tmp_path: Path) -> None:
    spec = write(tmp_path, f"""
project: nlp
name: overridden
command: [{PY}, -c, {json.dumps(SHOW)}]
resources: {{gpus: 2, cpus: 1}}
env: {{FOO: file, FLAG: "no", B: file}}
""")
    job = json.loads(pool.cli("submit", "-f", spec, "-p", "vision", "--gpu-fraction", "0.5",
                              "--env", "B=flag", "--name", "from-flags", "--json").stdout)
    assert (job["project"], job["name"], job["gpus"], job["gpu_fraction"], job["cpus"]) == (
        "vision", "from-flags", 0, 0.5, 1)
    assert pool.wait(job["id"], {"succeeded", "failed"}) == "succeeded"
    assert pool.client.logs(job["id"]).splitlines()[1] == "env file no flag"
    argv = json.loads(pool.cli("submit", "-f", spec, "--dry-run", "--json", "--", "echo",
                               "other").stdout)
    assert argv["request"]["command"] == ["echo", "other"] and argv["request"]["gpus"] == 2


@pytest.mark.parametrize(("text", "args", "said", "code"), [
    ("project: vision\ncommand: x\nresources:\n  gpus: -1\n", (),
     "error: resources.gpus: Input should be greater than or equal to 0", 1),
    ("project: vision\ncommand: x\nresourcs: {gpus: 1}\n", (),
     "error: resourcs: unknown key (the keys here: project, name, command,", 1),
    ("project: vision\ncommand: [x\n", (),
     "job.yaml: line 3, column 1: expected ',' or ']', but got '<stream end>' (while "
     "parsing a flow sequence that starts at line 2, column 10)", 1),
    ("project: vision\ncommand: x\nproject: nlp\n", (),
     "job.yaml: line 3, column 1: the key 'project' is given twice", 1),
    ("project: vision\ncommand: x\nimage: busybox\nmounts: [rel:/data]\n", (),
     "error: mounts[0].source: mount source 'rel' must be an absolute path", 1),
    ("project: vision\ncommand: x\nretries: 1000\nmax_runtime: soon\n", (),
     "error: retries: Input should be less than or equal to 100; max_runtime: 'soon' is "
     "not a duration", 1),
    ("project: vision\ncommand: x\nafter: [no-such-job]\n", (),
     "error: after[0]: no job or array you can see is 'no-such-job'", 1),
    ("project: vision\ncommand: x\n", ("--gpus", "-1"),
     "error: --gpus: Input should be greater than or equal to 0", 1),
    ("project: vision\ncommand: x\n", ("--array", "9-1"),
     "error: --array: array indices '9-1': '9-1' ends before it starts", 1),
    ("command: x\n", (), "error: give the project: -p PROJECT, or project: in the spec", 2),
    ("- project: vision\n", (), "error: a spec is a mapping of fields", 1),
])
def test_a_problem_is_one_line_at_its_path(pool: Pool, tmp_path: Path, text: str,
                                           args: tuple[str, ...], said: str, code: int
                                           ) -> None:
    before = len(pool.client.jobs(limit=10_000))
    out = pool.cli("submit", "-f", write(tmp_path, text), *args, check=False)
    assert out.returncode == code and out.stdout == "", out
    assert len(out.stderr.splitlines()) == 1 and said in out.stderr, out.stderr
    assert len(pool.client.jobs(limit=10_000)) == before


def test_a_dry_run_prints_the_request_and_where_it_would_start(pool: Pool,
                                                                tmp_path: Path) -> None:
    before = len(pool.client.jobs(limit=10_000))
    trigger = tmp_path / "go"
    parent = pool.client.submit(project="nlp", name="dry-parent", command=[
        PY, "-c", "import os, sys, time\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)",
        str(trigger)])
    spec = write(tmp_path, "project: vision\ncommand: python train.py\nresources: {gpus: 1}\n"
                           "max_runtime: 2h\nafter: dry-parent\n")
    out = pool.cli("submit", "-f", spec, "--dry-run").stdout
    for expected in ("project: vision", "- python", "- train.py", "  gpus: 1",
                     "priority: train", "max_runtime: 7200.0", f"- {parent.id}",
                     "# dry run: nothing was submitted", "fits now: yes (on ",
                     "would wait for its dependencies"):
        assert expected in out, out
    big = pool.cli("submit", "-p", "vision", "--gpus", "64", "--dry-run", "--", "x").stdout
    assert "fits now: no" in big and "would be refused" in big, big
    swept = pool.cli("submit", "-p", "vision", "--sweep", "lr=1,2,3", "--array", "0-2%1",
                     "--dry-run", "--", "x").stdout
    assert "tasks: 3" in swept and "indices: 0-2" in swept and "max_running: 1" in swept
    assert "- lr: '1'" in swept, swept
    assert len(pool.client.jobs(limit=10_000)) == before + 1  # only the parent
    trigger.touch()
    assert pool.client.wait(parent.id, timeout=60).state == "succeeded"


def test_a_sweep_file_gives_each_task_a_set(pool: Pool, tmp_path: Path) -> None:
    sets = write(tmp_path, "lr,bs\n0.1,32\n0.2,64\n", "sets.csv")
    made = json.loads(pool.cli("submit", "-p", "nlp", "--sweep-file", sets, "--json", "--",
                               "sh", "-c", "echo $lr $bs").stdout)
    assert made["size"] == 2
    done = pool.client.wait_array(made["id"], timeout=60)
    assert done.counts == {"succeeded": 2}
    assert [pool.client.logs(t.id) for t in pool.client.array_tasks(made["id"])] == [
        "0.1 32\n", "0.2 64\n"]
    bad = write(tmp_path, '{"lr": 1}\nnot json\n', "sets.jsonl")
    out = pool.cli("submit", "-p", "nlp", "--sweep-file", bad, "--", "x", check=False)
    assert out.returncode == 1 and out.stderr.startswith(f"error: {bad}: line 2: not JSON")


def test_the_schema_command_prints_the_published_schema(pool: Pool) -> None:
    out = pool.cli("spec", "schema").stdout
    assert out == (ROOT / "docs" / "job-spec.schema.json").read_text()
    assert json.loads(out)["properties"]["resources"] == {"$ref": "#/$defs/Resources"}
