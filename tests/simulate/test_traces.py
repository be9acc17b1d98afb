"""Tests for fairpool.simulate.traces: formats, row checks, workers, quotas and the real traces."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from fairpool.simulate import traces
from fairpool.simulate.traces import POLLUX_GPU_HOURS, load_trace
from tests.simulate.conftest import TRACES

HELIOS = Path(traces.__file__).parent / "configs" / "philly-helios.yaml"
needs_traces = pytest.mark.skipif(not TRACES.is_dir(), reason=f"{TRACES} is not on this machine")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GENERIC = """\
extra,project,num_gpus,duration,submit_time,job_id
x,alpha,1,100,110,b
x,beta,0.5,50,100,c
x,alpha,16,10,110,a
x,beta,2,0,150,d
"""


# --- generic format --------------------------------------------------------------------------


def test_generic_columns_in_any_order_sorted_and_shifted(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "g.csv", GENERIC), gpus=8)
    assert trace.name == "g"
    assert [j.job_id for j in trace.jobs] == ["c", "a", "b", "d"]
    assert [j.submit_s for j in trace.jobs] == [0.0, 10.0, 10.0, 50.0]
    c, a, _, d = trace.jobs
    assert (c.gpus, c.workers, c.project, c.duration_s) == (0.5, 1, "beta", 50.0)
    assert (a.gpus, a.workers) == (16.0, 2)
    assert d.duration_s == 0.0  # zero durations are allowed
    assert all(j.department == "default" and j.priority == "train" for j in trace.jobs)
    assert trace.departments == {"alpha": "default", "beta": "default"}


def test_generic_optional_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "g.csv", (
        "job_id,submit_time,duration,num_gpus,project,department,workers,priority\n"
        "1,0,60,4,alpha,research,4,build\n"
        "2,5,60,16,beta,prod,,inference\n"
        "3,9,60,16,beta,prod,16,\n"
        "4,9,60,1,gamma,,,\n"
    ))
    trace = load_trace(path, gpus=10)
    assert [(j.workers, j.priority, j.department) for j in trace.jobs] == [
        (4, "build", "research"), (2, "inference", "prod"), (16, "train", "prod"),
        (1, "train", "default"),
    ]
    assert trace.departments == {"alpha": "research", "beta": "prod", "gamma": "default"}
    assert trace.department_quotas == {
        d: sum(q for p, q in trace.quotas.items() if trace.departments[p] == d)
        for d in ("research", "prod", "default")
    }
    assert sum(trace.department_quotas.values()) == 10


@pytest.mark.parametrize(
    ("gpus", "per_node", "workers"),
    [(8, 8, 1), (16, 8, 2), (12, 8, 2), (24, 8, 3), (9, 8, 9), (10, 4, 10), (12, 4, 3),
     (0.25, 8, 1), (2, 1, 2)],
)
def test_default_workers(tmp_path: Path, gpus: float, per_node: int, workers: int) -> None:
    header = "job_id,submit_time,duration,num_gpus,project\n"
    path = write(tmp_path, "g.csv", f"{header}1,0,5,{gpus},p\n")
    (job,) = load_trace(path, gpus=64, gpus_per_node=per_node).jobs
    assert job.workers == workers
    assert job.gpus == gpus


def test_limit_keeps_first_jobs_after_sorting(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "g.csv", GENERIC), gpus=8, limit=2)
    assert [j.job_id for j in trace.jobs] == ["c", "a"]
    assert sum(trace.quotas.values()) == 8
    assert set(trace.quotas) == {"alpha", "beta"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("1,zero,60,1,p", "submit_time 'zero' is not a number"),
        ("1,0,-5,1,p", "negative duration"),
        ("1,0,60,0,p", "num_gpus must be above 0"),
        ("1,0,60,-2,p", "num_gpus must be above 0"),
        ("1,0,60,1.5,p", "neither a whole number nor below 1"),
        ("1,0,60,1,", "missing project"),
        ("1,0,60,1", "missing project"),
        (",0,60,1,p", "missing job_id"),
        ("1,0,nan,1,p", "not a finite number"),
        ("1,0,60,1,p,dept,x,train", "workers 'x' is not an integer"),
        ("1,0,60,4,p,dept,3,train", "cannot split"),
        ("1,0,60,0.5,p,dept,2,train", "cannot split"),
        ("1,0,60,1,p,dept,1,urgent", "unknown priority 'urgent'"),
        ("0,0,60,1,p", "duplicate job_id '0'"),
        ("1,0,60,1,q,other,1,train", "earlier rows put it in 'dept'"),
    ],
)
def test_generic_bad_rows_name_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, "bad.csv", (
        "job_id,submit_time,duration,num_gpus,project,department,workers,priority\n"
        f"0,0,60,1,q,dept,1,train\n{row}\n"
    ))
    with pytest.raises(ValueError, match=message) as err:
        load_trace(path, gpus=8)
    assert f"{path}:3" in str(err.value)


def test_unknown_header_names_generic_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "odd.csv", "id,start,len\n1,2,3\n")
    with pytest.raises(ValueError, match="unrecognised trace header") as err:
        load_trace(path, gpus=8)
    assert "job_id, submit_time, duration, num_gpus, project" in str(err.value)
    assert str(path) in str(err.value)


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty file"):
        load_trace(write(tmp_path, "e.csv", ""), gpus=8)
    header_only = write(tmp_path, "h.csv", "job_id,submit_time,duration,num_gpus,project\n")
    with pytest.raises(ValueError, match="no jobs"):
        load_trace(header_only, gpus=8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"gpus": 0}, "gpus must be"), ({"gpus": 8, "limit": 0}, "limit must be"),
     ({"gpus": 8, "gpus_per_node": 0}, "gpus_per_node must be")],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    path = write(tmp_path, "g.csv", GENERIC)
    with pytest.raises(ValueError, match=message):
        load_trace(path, gpus=kwargs["gpus"], limit=kwargs.get("limit"),
                   gpus_per_node=kwargs.get("gpus_per_node", 8))


# --- philly, pollux and elasticflow formats ---------------------------------------------------

PHILLY = """\
timestamp,duration,num_gpus,gpu_time,cluster
2017-10-09 07:01:55,66.0,1,66.0,11cb48
2017-10-09 06:13:03,2951.0,16,47216.0,6214e9
2017-10-09 07:01:55,10.0,2,20.0,6214e9

"""


def test_philly_format(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, "philly.csv", PHILLY), gpus=16)
    assert [(j.job_id, j.submit_s) for j in trace.jobs] == [
        ("1", 0.0), ("0", 2932.0), ("2", 2932.0)
    ]
    first = trace.jobs[0]
    assert (first.project, first.gpus, first.workers, first.duration_s) == (
        "vc-6214e9", 16.0, 2, 2951.0
    )
    assert set(trace.quotas) == {"vc-6214e9", "vc-11cb48"}
    assert any("UTC" in note for note in trace.notes)


def test_philly_bad_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "philly.csv", PHILLY.replace("2017-10-09 07:01:55,10.0", "soon,10.0"))
    with pytest.raises(ValueError, match=r"philly\.csv:4: timestamp 'soon'"):
        load_trace(path, gpus=16)


def test_pollux_format_assumes_documented_durations(tmp_path: Path) -> None:
    path = write(tmp_path, "workload-x.csv", (
        "name,time,application,num_replicas,batch_size\n"
        "cifar10-0,53,cifar10,4,2048\nimagenet-1,100,imagenet,16,800\nncf-2,60,ncf,1,256\n"
    ))
    trace = load_trace(path, gpus=64, gpus_per_node=4)
    assert [j.job_id for j in trace.jobs] == ["cifar10-0", "ncf-2", "imagenet-1"]
    cifar, ncf, imagenet = trace.jobs
    assert cifar.duration_s == POLLUX_GPU_HOURS["cifar10"] * 3600 / 4
    assert ncf.duration_s == POLLUX_GPU_HOURS["ncf"] * 3600
    assert (imagenet.duration_s, imagenet.workers) == (POLLUX_GPU_HOURS["imagenet"] * 3600 / 16, 4)
    assert (cifar.project, imagenet.submit_s) == ("cifar10", 47.0)
    assert any("ASSUMED" in note for note in trace.notes)


def test_pollux_unknown_application(tmp_path: Path) -> None:
    header = "name,time,application,num_replicas,batch_size\n"
    path = write(tmp_path, "w.csv", f"{header}x-0,1,gpt9,1,8\n")
    with pytest.raises(ValueError, match=r"w\.csv:2: unknown Pollux application 'gpt9'"):
        load_trace(path, gpus=64)


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("cluster07.csv",
         "job_id,submission_time,num_iteration,model_name,deadline,batch_size,num_gpu,duration"),
        ("philly_1.csv", "job_id,submit_time,real_iteration,model_name,ddl,batch_size,num_gpu,"
                         "real_duration,duration,iteration"),
    ],
)
def test_elasticflow_formats(tmp_path: Path, name: str, header: str) -> None:
    cells = "1,resnet50,9,64,{gpus},{dur}" if "submission_time" in header else \
        "1,resnet50,9,64,{gpus},{dur},{dur},1"
    rows = [
        ("u1", 1000, cells.format(gpus=64, dur=600)),
        ("u2", 900, cells.format(gpus=1, dur=700)),
    ]
    text = header + "\n" + "".join(f"{jid},{t},{rest}\n" for jid, t, rest in rows)
    trace = load_trace(write(tmp_path, name, text), gpus=512)
    assert [(j.job_id, j.submit_s, j.duration_s, j.gpus) for j in trace.jobs] == [
        ("u2", 0.0, 700.0, 1.0), ("u1", 100.0, 600.0, 64.0)
    ]
    assert trace.jobs[1].workers == 8
    assert {j.project for j in trace.jobs} == {Path(name).stem}
    assert trace.quotas == {Path(name).stem: 512.0}


# --- default quotas ---------------------------------------------------------------------------


def quota_trace(
    tmp_path: Path, rows: list[tuple[str, float, float]], gpus: int
) -> dict[str, float]:
    text = "job_id,submit_time,duration,num_gpus,project\n" + "".join(
        f"{i},0,{dur},{g},{p}\n" for i, (p, dur, g) in enumerate(rows)
    )
    return load_trace(write(tmp_path, "q.csv", text), gpus=gpus).quotas


def test_default_quotas_largest_remainder(tmp_path: Path) -> None:
    # GPU-hours 2 : 1 of 7 GPUs = 4.67 : 2.33 -> 5 : 2
    assert quota_trace(tmp_path, [("a", 100, 2), ("b", 100, 1)], 7) == {"a": 5.0, "b": 2.0}
    # equal shares of 10: one spare GPU goes to the first name
    assert quota_trace(tmp_path, [("c", 10, 1), ("b", 10, 1), ("a", 5, 2)], 10) == {
        "a": 4.0, "b": 3.0, "c": 3.0
    }
    # fractions count by their GPU-hours; a tiny share can round to 0
    assert quota_trace(tmp_path, [("a", 1000, 1), ("b", 1, 0.5)], 4) == {"a": 4.0, "b": 0.0}
    # only zero durations: equal split
    assert quota_trace(tmp_path, [("a", 0, 1), ("b", 0, 4)], 5) == {"a": 3.0, "b": 2.0}


@pytest.mark.parametrize("gpus", [1, 7, 64, 768, 1001])
def test_default_quotas_sum_to_gpus(tmp_path: Path, gpus: int) -> None:
    rows = [(f"p{i % 7}", 37.0 * (i + 1), (1, 2, 4, 0.5)[i % 4]) for i in range(40)]
    quotas = quota_trace(tmp_path, rows, gpus)
    assert sum(quotas.values()) == gpus
    assert all(q == math.floor(q) >= 0 for q in quotas.values())


# --- quota files ------------------------------------------------------------------------------


def test_quota_file_overrides(tmp_path: Path) -> None:
    quota = write(tmp_path, "q.yaml", (
        "projects:\n"
        "  alpha: {quota: 3, department: research}\n"
        "  absent: {quota: 100}\n"
        "default_quota: 1.5\n"
    ))
    trace = load_trace(write(tmp_path, "g.csv", GENERIC), gpus=8, quota_file=quota)
    assert trace.quotas == {"alpha": 3.0, "beta": 1.5}
    assert trace.departments == {"alpha": "research", "beta": "default"}
    assert trace.department_quotas == {"research": 3.0, "default": 1.5}
    assert {j.department for j in trace.jobs if j.project == "alpha"} == {"research"}


def test_quota_file_scaling_and_overcommit_note(tmp_path: Path) -> None:
    quota = write(tmp_path, "q.yaml", (
        "scale_from_gpus: 100\nprojects:\n  alpha: {quota: 99}\n  beta: {quota: 51}\n"
    ))
    trace = load_trace(write(tmp_path, "g.csv", GENERIC), gpus=8, quota_file=quota)
    assert trace.quotas == {"alpha": 7.0, "beta": 4.0}  # floor(7.92), floor(4.08)
    assert any("above the cluster" in note for note in trace.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("projects: {}\nextra: 1\n", r"unknown key\(s\) \['extra'\]"),
        ("projects:\n  alpha: {quota: 1, weight: 2}\n", r"projects\.alpha: unknown key"),
        ("projects:\n  alpha: {quota: -1}\n", r"projects\.alpha\.quota: must be a non-negative"),
        ("projects:\n  alpha: {quota: lots}\n", r"projects\.alpha\.quota: must be a number"),
        ("projects:\n  alpha: {quota: true}\n", r"projects\.alpha\.quota: must be a number"),
        ("projects:\n  alpha: {department: x}\n", r"projects\.alpha\.quota: missing"),
        ("projects:\n  alpha: {quota: 1, department: 3}\n", r"projects\.alpha\.department"),
        ("projects:\n  alpha: 4\n", r"projects\.alpha: expected a mapping"),
        ("projects:\n  103959: {quota: 1}\n", r"project names must be strings"),
        ("projects: {}\ndefault_quota: -2\n", r"default_quota: must be a non-negative"),
        ("projects: {}\nscale_from_gpus: 0\n", r"scale_from_gpus: must be a positive integer"),
        ("scale_from_gpus: 10\n", r"projects: expected a mapping"),
        ("- alpha\n", r"expected a mapping with keys"),
        ("projects: [\n", r"not valid YAML"),
    ],
)
def test_quota_file_validation(tmp_path: Path, text: str, message: str) -> None:
    quota = write(tmp_path, "quota.yaml", text)
    with pytest.raises(ValueError, match=message) as err:
        load_trace(write(tmp_path, "g.csv", GENERIC), gpus=8, quota_file=quota)
    assert str(quota) in str(err.value)


# --- the real traces --------------------------------------------------------------------------


@needs_traces
def test_real_philly() -> None:
    trace = load_trace(TRACES / "philly.csv", gpus=768)  # (its speed: simulate_philly.py)
    jobs = trace.jobs
    assert len(jobs) == 82_247
    assert jobs[0].submit_s == 0
    keys = [(j.submit_s, j.job_id) for j in jobs]
    assert keys == sorted(keys)
    per_project = Counter(j.project for j in jobs)
    assert len(per_project) == len(trace.quotas) == 15
    assert per_project["vc-6214e9"] == 41_226 and per_project["vc-795a4c"] == 3
    assert Counter(j.gpus for j in jobs)[1.0] == 76_627
    assert sum(trace.quotas.values()) == 768
    assert trace.department_quotas == {"default": 768.0}


@needs_traces
def test_real_philly_with_helios_quotas() -> None:
    trace = load_trace(TRACES / "philly.csv", gpus=768, quota_file=HELIOS)
    assert trace.quotas["vc-6214e9"] == math.floor(512 * 768 / 2816) == 139
    assert trace.quotas["vc-103959"] == math.floor(64 * 768 / 2816)
    for vc in ("23dbec", "51b7ef", "925e2b", "795a4c"):
        assert trace.quotas[f"vc-{vc}"] == 0
    assert len(trace.quotas) == 15
    full = load_trace(TRACES / "philly.csv", gpus=2816, quota_file=HELIOS, limit=10)
    assert sum(full.quotas.values()) <= 2816


def test_helios_yaml_totals_2816_gpus() -> None:
    import yaml

    data = yaml.safe_load(HELIOS.read_text())
    assert data["scale_from_gpus"] == 2816
    assert sum(p["quota"] for p in data["projects"].values()) == 2816
    assert len(data["projects"]) == 15


@needs_traces
def test_real_sample_generic() -> None:
    trace = load_trace(TRACES / "sample_generic.csv", gpus=64)
    assert len(trace.jobs) == 200
    assert (trace.jobs[0].submit_s, trace.jobs[-1].submit_s) == (0.0, 48_283.0)
    assert Counter(j.project for j in trace.jobs)["vc-11cb48"] == 83
    assert sum(trace.quotas.values()) == 64


@needs_traces
@pytest.mark.parametrize(
    ("name", "count", "gpus"),
    [("pollux/workload-1.csv", 160, 64), ("pollux/workload-6.csv", 160, 64),
     ("pollux/workload-realistic-6.csv", 160, 64), ("elasticflow/cluster01.csv", 1595, 512),
     ("elasticflow/cluster10.csv", 260, 256), ("elasticflow/philly_103959.csv", 876, 256)],
)
def test_real_pollux_and_elasticflow(name: str, count: int, gpus: int) -> None:
    trace = load_trace(TRACES / name, gpus=gpus)
    assert len(trace.jobs) == count
    assert trace.jobs[0].submit_s == 0
    assert sum(trace.quotas.values()) == gpus
    if name.startswith("pollux"):
        assert set(trace.quotas) <= set(POLLUX_GPU_HOURS)
    else:
        assert set(trace.quotas) == {Path(name).stem}


@needs_traces
def test_pollux_variants_carry_the_same_work() -> None:
    def gpu_hours(name: str) -> float:
        return sum(j.duration_s * j.gpus for j in load_trace(TRACES / name, gpus=64).jobs) / 3600

    assert gpu_hours("pollux/workload-6.csv") == pytest.approx(
        gpu_hours("pollux/workload-realistic-6.csv")
    )
