"""The workload generator (fairpool.simulate.workloads): the same seed gives the same trace,
each knob shapes what it says (offered load, fractions, gang sizes, tenant skew, a long tenant,
durations), quotas add up to the cluster, bad knobs are refused by name, and a generated
workload runs through the simulator and ``fairpool simulate generated:NAME``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from fairpool.simulate.engine import ClusterSpec, Simulation
from fairpool.simulate.policies import POLICIES
from fairpool.simulate.workloads import PRESETS, WorkloadSpec, generate, preset

BIN = Path(sys.executable).with_name("fairpool")


def test_the_same_seed_gives_the_same_trace() -> None:
    spec = WorkloadSpec(jobs=300, seed=7)
    assert generate(spec) == generate(spec)
    assert generate(spec).jobs != generate(replace(spec, seed=8)).jobs


def test_the_offered_load_is_what_was_asked() -> None:
    for load in (0.5, 1.0, 2.0):
        t = generate(WorkloadSpec(jobs=4000, gpus=64, load=load, seed=1))
        span = t.jobs[-1].submit_s - t.jobs[0].submit_s
        offered = sum(j.gpus * j.duration_s for j in t.jobs[:-1]) / span / 64
        assert abs(offered - load) / load < 0.1, (load, offered)
        assert [j.submit_s for j in t.jobs] == sorted(j.submit_s for j in t.jobs)
        assert t.jobs[0].submit_s == 0.0


def test_fractions_gangs_and_durations_follow_their_knobs() -> None:
    t = generate(WorkloadSpec(jobs=5000, gpus=16, fraction_share=0.4, fractions=(0.25,),
                              gang_sizes=((1, 1.0), (16, 1.0), (32, 5.0)),
                              duration_median_s=600.0, duration_sigma=1.0, seed=2))
    fractional = [j for j in t.jobs if j.gpus < 1]
    assert abs(len(fractional) / len(t.jobs) - 0.4) < 0.03
    assert {j.gpus for j in fractional} == {0.25}
    whole = Counter(j.gpus for j in t.jobs if j.gpus >= 1)
    assert set(whole) == {1.0, 16.0}  # 32 GPUs do not fit a 16-GPU cluster: left out
    assert abs(whole[16.0] / sum(whole.values()) - 0.5) < 0.05
    assert all(j.workers == 2 for j in t.jobs if j.gpus == 16)  # 8 per node: a gang of two
    median = statistics.median(j.duration_s for j in t.jobs)
    assert 500 < median < 720, median
    assert min(j.duration_s for j in t.jobs) >= 30.0


def test_skew_and_a_long_tenant_shape_who_asks_for_what() -> None:
    flat = Counter(j.project for j in generate(WorkloadSpec(jobs=4000, skew=0.0)).jobs)
    steep = Counter(j.project for j in generate(WorkloadSpec(jobs=4000, skew=2.0)).jobs)
    assert max(flat.values()) / min(flat.values()) < 1.3
    assert steep["p00"] > 3 * steep["p01"] > 3 * steep["p03"]
    t = generate(WorkloadSpec(jobs=3000, tenants=4, skew=0.0, long_tenant=30.0, seed=3))
    hours: dict[str, float] = {}
    for j in t.jobs:
        hours[j.project] = hours.get(j.project, 0.0) + j.gpus * j.duration_s
    assert hours["p00"] > 0.8 * sum(hours.values())
    assert t.quotas["p00"] == max(t.quotas.values())


def test_quotas_and_departments_add_up() -> None:
    t = generate(WorkloadSpec(jobs=500, gpus=40, tenants=5, departments=2))
    assert sum(t.quotas.values()) == 40
    assert t.departments == {"p00": "d0", "p01": "d1", "p02": "d0", "p03": "d1", "p04": "d0"}
    assert sum(t.department_quotas.values()) == 40
    assert {j.department for j in t.jobs if j.project == "p03"} == {"d1"}
    assert "generated workload" in t.notes[0]


@pytest.mark.parametrize(("knobs", "says"), [
    ({"jobs": 0}, "jobs must be at least 1"),
    ({"load": 0}, "load must be in (0, 100]"),
    ({"fraction_share": 1.5}, "fraction_share must be in [0, 1]"),
    ({"gang_sizes": ((64, 1.0),), "gpus": 8}, "gang_sizes need a size of 1 to 8 GPUs"),
    ({"duration_min_s": 1e6}, "durations need"),
    ({"skew": -1}, "skew must be ≥ 0"),
])
def test_bad_knobs_are_refused_by_name(knobs: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        generate(replace(WorkloadSpec(), **knobs))  # type: ignore[arg-type]


def test_presets_run_through_the_simulator() -> None:
    assert set(PRESETS) == {"fraction-heavy", "gang-heavy", "skewed-tenants"}
    for name in PRESETS:
        t = generate(preset(name, jobs=150, gpus=32, seed=4))
        result = Simulation(t, POLICIES["fairpool"], ClusterSpec(32, 8),
                            checkpoint_s=1800).run()
        assert all(j.finish_s is not None for j in result.jobs), name
    with pytest.raises(ValueError, match="no workload 'nope'; the presets are fraction-heavy"):
        preset("nope")
    with pytest.raises(ValueError, match="no knob colour"):
        preset("gang-heavy", colour=1)


def test_the_cli_simulates_a_generated_workload() -> None:
    out = subprocess.run([str(BIN), "simulate", "generated:gang-heavy", "--gpus", "32",
                          "--limit", "120", "--seed", "5", "--policy", "fifo,fairpool",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert set(got) == {"fifo", "fairpool"} and got["fairpool"]["unfinished"] == 0
    assert "generated workload gang-heavy" in out.stderr
    bad = subprocess.run([str(BIN), "simulate", "generated:nope"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.startswith("error: no workload 'nope'"), bad.stderr
