"""The job spec file model: its short forms (a command string, ``2h``, ``0-99%10``, a sweep
grid, ``SRC:DST:ro``), its conversion to the wire's JobSubmit/ArraySubmit, every problem at its
path in the file (the wire model's own checks mapped back), the command line over the file,
the published JSON Schema, and the exit status of ``fairpool wait``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fairpool.cli.lookup import counts, duration
from fairpool.client.handle import CANCELLED, TIMED_OUT, exit_status, poll_delays
from fairpool.schemas.arrays import ArrayOut, ArraySubmit
from fairpool.schemas.jobs import JobOut, JobSubmit
from fairpool.schemas.spec import (
    ArraySpec,
    JobSpec,
    Resources,
    SpecError,
    from_request,
    merge,
    parse_duration,
    parse_spec,
    spec_schema,
    to_request,
)

ROOT = Path(__file__).resolve().parents[2]
BASE: dict[str, Any] = {"project": "vision", "command": "python train.py"}
ID = "0123456789ab"


def request(data: dict[str, Any], **kw: Any) -> JobSubmit:
    return to_request(parse_spec(data), **kw)


def problems(data: object, **kw: Any) -> str:
    with pytest.raises(SpecError) as err:
        to_request(parse_spec(data), **kw)
    return str(err.value)


def test_a_spec_becomes_the_submission_people_meant() -> None:
    req = request({**BASE, "command": "python train.py --name 'my run'", "workers": 2,
                   "resources": {"gpus": 1, "cpus": 4, "memory_mib": 8192},
                   "env": {"OMP_NUM_THREADS": 4, "DEBUG": True, "LR": 0.001},
                   "labels": {"team": "cv"}, "retries": 3, "max_runtime": "1h30m",
                   "min_runtime": 600, "key": "nightly", "image": "ghcr.io/o/t:1",
                   "mounts": ["/data:/data:ro", {"source": "/out", "target": "/out"}],
                   "after": ID})
    assert type(req) is JobSubmit
    assert req.command == ["python", "train.py", "--name", "my run"]
    assert (req.workers, req.gpus, req.cpus, req.memory_mib) == (2, 1, 4, 8192)
    assert req.env == {"OMP_NUM_THREADS": "4", "DEBUG": "true", "LR": "0.001"}
    assert (req.max_retries, req.max_runtime_s, req.min_runtime_s) == (3, 5400, 600)
    assert req.client_key == "nightly" and req.after == [ID] and req.labels == {"team": "cv"}
    assert [(m.source, m.target, m.read_only) for m in req.mounts] == [
        ("/data", "/data", True), ("/out", "/out", False)]


def test_arrays_and_sweeps() -> None:
    short = request({**BASE, "array": "0-99:3%10"})
    assert isinstance(short, ArraySubmit)
    assert (short.indices, short.max_running, len(short.index_list())) == ("0-99:3", 10, 34)
    long = request({**BASE, "array": {"indices": "1,3,5-7", "max_running": 2}})
    assert isinstance(long, ArraySubmit) and long.index_list() == [1, 3, 5, 6, 7]
    grid = request({**BASE, "sweep": {"lr": ["1e-3", 0.1], "bs": [32, 64]}})
    assert isinstance(grid, ArraySubmit) and grid.params == [
        {"lr": "1e-3", "bs": "32"}, {"lr": "1e-3", "bs": "64"}, {"lr": "0.1", "bs": "32"},
        {"lr": "0.1", "bs": "64"}]  # every combination, the last name varying fastest
    sets = request({**BASE, "sweep": [{"lr": 1}, {"lr": 2}], "array": {"indices": "10-11"}})
    assert isinstance(sets, ArraySubmit) and sets.index_list() == [10, 11]
    assert sets.params == [{"lr": "1"}, {"lr": "2"}]


@pytest.mark.parametrize(("data", "said"), [
    ({**BASE, "resources": {"gpus": -1}},
     "resources.gpus: Input should be greater than or equal to 0"),
    ({**BASE, "retries": 101}, "retries: Input should be less than or equal to 100"),
    ({**BASE, "max_runtime": "2x"}, "max_runtime: '2x' is not a duration"),
    ({**BASE, "max_runtime": 0}, "max_runtime: Input should be greater than 0"),  # the wire's
    ({**BASE, "project": "Vision"}, "project: String should match pattern"),
    ({**BASE, "name": "a\x1bb"}, "name: Value error, the job name must not contain control"
     .replace("Value error, ", "")),
    ({**BASE, "image": "busybox", "mounts": ["/a:/b", {"source": "rel", "target": "/c"}]},
     "mounts[1].source: mount source 'rel' must be an absolute path"),
    ({**BASE, "mounts": ["/a"]}, "mounts[0]: '/a': write SRC:DST or SRC:DST:ro"),
    ({**BASE, "env": {"1BAD": "x"}}, "env: environment variable name '1BAD' is not valid"),
    ({**BASE, "env": {"A": None}}, "env: A: give a string or a number"),
    ({**BASE, "array": "0-9%x"}, "array: array '0-9%x': the cap after % must be"),
    ({**BASE, "array": {"indices": "9-1"}}, "array.indices: array indices '9-1': '9-1' ends"),
    ({**BASE, "array": {"indices": "0-9", "max_running": 0}},
     "array.max_running: Input should be greater than or equal to 1"),
    ({**BASE, "sweep": {"FAIRPOOL_X": [1]}}, "sweep: parameter name 'FAIRPOOL_X'"),
    ({**BASE, "sweep": {"lr": []}}, "sweep: lr: give at least one value"),
    ({**BASE, "after": [123456]}, "quote job references ('123456')"),
    ({**BASE, "command": "python 'unclosed"}, "command: cannot split the command"),
    ({**BASE, "resources": {"gpus": 1, "gpu_fraction": 0.5}},
     "ask for gpus, gpu_fraction or gpu_memory_mib, not several"),
    (["project", "vision"], "a spec is a mapping of fields"),
])
def test_each_problem_names_its_path_in_the_file(data: object, said: str) -> None:
    assert said in problems(data)


def test_unknown_keys_are_named_with_the_keys_there() -> None:
    said = problems({**BASE, "gpus": 1, "resources": {"gpu": 1}})
    assert "gpus: unknown key (the keys here: project, name, command" in said
    assert "resources.gpu: unknown key (the keys here: gpus, gpu_fraction," in said
    assert "mounts[0].ro: unknown key (the keys here: source, target, read_only)" in problems(
        {**BASE, "mounts": [{"source": "/a", "target": "/b", "ro": True}]})


def test_dependencies_are_resolved_and_their_errors_placed() -> None:
    seen: list[str] = []

    def resolve(ref: str) -> str:
        seen.append(ref)
        if ref == "nope":
            raise ValueError("no job or array you can see is 'nope'")
        return ID

    req = request({**BASE, "after": ["train", "3fa"], "after_any": "prep"}, resolve=resolve)
    assert req.after == [ID, ID] and req.after_any == [ID] and seen == ["train", "3fa", "prep"]
    said = problems({**BASE, "after_failed": ["ok", "nope"]}, resolve=resolve)
    assert said == "after_failed[1]: no job or array you can see is 'nope'"


def test_the_command_line_overrides_the_file() -> None:
    file = {**BASE, "resources": {"gpus": 2, "cpus": 4}, "env": {"A": "1", "B": "2"},
            "array": "0-9%2", "after": ["x"]}
    flags = {"resources": {"gpu_fraction": 0.5}, "env": {"B": "3"}, "array": "0-1",
             "after": [ID]}
    req = request(merge(file, flags))
    assert isinstance(req, ArraySubmit)
    # another GPU form replaces the file's; the other resources and env keys stay
    assert (req.gpus, req.gpu_fraction, req.cpus) == (0, 0.5, 4)
    assert req.env == {"A": "1", "B": "3"}
    assert (req.indices, req.max_running, req.after) == ("0-1", None, [ID])


def test_what_a_dry_run_prints_reads_back_as_the_same_request() -> None:
    req = request({**BASE, "resources": {"gpu_memory_mib": 4096}, "retries": 1,
                   "max_runtime": "2h", "array": "0-3%2", "env": {"A": "1"}})
    written = from_request(req)
    assert written["resources"] == {"gpu_memory_mib": 4096, "cpus": 0.0, "memory_mib": 0}
    assert written["array"] == {"indices": "0-3", "max_running": 2}
    assert written["retries"] == 1 and written["max_runtime"] == 7200
    assert to_request(parse_spec(written)) == req


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "30m", "2h", "1h30m", "1d", "1.5h", 45, "60")
            ] == [90, 1800, 7200, 5400, 86400, 5400, 45, 60]
    for bad in ("2x", "h", "", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_the_spec_keeps_the_wire_models_bounds() -> None:
    """Each bounded field of the spec has the very bounds of the wire field it becomes (its
    JSON Schema shows them; JobSubmit checks them again)."""
    forms = ("gpus", "gpu_fraction", "gpu_memory_mib", "cpus", "memory_mib")
    pairs: list[tuple[type[BaseModel], str, str]] = [(Resources, f, f) for f in forms]
    pairs += [(JobSpec, "workers", "workers"), (JobSpec, "retries", "max_retries")]
    for model, name, wire in pairs:
        assert model.model_fields[name].metadata == JobSubmit.model_fields[wire].metadata, name
    assert (ArraySpec.model_fields["max_running"].metadata
            == ArraySubmit.model_fields["max_running"].metadata)


def test_the_published_schema_is_the_generated_one() -> None:
    """docs/job-spec.schema.json is `fairpool spec schema` > docs/job-spec.schema.json."""
    committed = (ROOT / "docs" / "job-spec.schema.json").read_text()
    assert committed == json.dumps(spec_schema(), indent=2) + "\n", (
        "regenerate it: fairpool spec schema > docs/job-spec.schema.json")
    schema = json.loads(committed)
    documented = (ROOT / "docs" / "job-spec.md").read_text()
    for field in schema["properties"]:
        assert f"`{field}`" in documented, f"docs/job-spec.md does not document {field}"
    for field in schema["$defs"]["Resources"]["properties"]:
        assert f"`{field}`" in documented, field


def job(state: str, exit_code: int | None = None) -> JobOut:
    return JobOut(id=ID, name="", project="p", state=state, command=["x"], workdir=None,
                  workers=1, gpus=0, gpu_fraction=None, gpu_memory_mib=None, cpus=0,
                  memory_mib=0, priority="train", preemptible=True, attempt=0,
                  submitted_at=0, started_at=None, finished_at=None, exit_code=exit_code,
                  reason=None, reason_code=None, placement=[], client_key=None)


@pytest.mark.parametrize(("state", "code", "status"), [
    ("succeeded", 0, 0), ("failed", 3, 3), ("failed", 1, 1), ("failed", 255, 255),
    ("failed", None, 1), ("failed", -9, 137), ("failed", -15, 143),
    ("failed", TIMED_OUT, 1), ("failed", CANCELLED, 1),  # kept for wait's own outcomes
    ("cancelled", None, CANCELLED), ("cancelled", -15, CANCELLED),
])
def test_exit_status_tells_the_outcomes_apart(state: str, code: int | None, status: int
                                              ) -> None:
    assert exit_status(job(state, code)) == status
    assert (TIMED_OUT, CANCELLED) == (124, 125)


def test_polls_back_off_from_a_fifth_of_a_second_to_two() -> None:
    delays = poll_delays()
    got = [next(delays) for _ in range(12)]
    assert got[0] == 0.2 and got == sorted(got) and got[-1] == 2.0 and max(got) == 2.0


def test_runtimes_and_counts_read_short() -> None:
    assert [duration(s) for s in (0, 35, 245, 3720, 3 * 86400 + 4 * 3600)] == [
        "0s", "35s", "4m05s", "1h02m", "3d04h"]
    a = ArrayOut(id=ID, name="a", project="p", size=1000, indices="0-999", max_running=50,
                 submitted_at=0, submitted_by=None, state="running",
                 counts={"succeeded": 958, "queued": 30, "running": 12})
    assert counts(a) == "12 running · 30 queued · 958 succeeded"
