"""Simulation plots: files written, real PNGs, not blank, fast on 100,000 samples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from fairpool.simulate.plots import _project_series, plot_all, step_series
from fairpool.simulate.records import JobRecord, Sample, SimResult

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 1000, path
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert float(np.var(pixels[..., :3])) > 0, f"{path} is blank"


def small_result(policy: str, skew: float) -> SimResult:
    # 8 GPUs, projects a/b/c with quotas 4/2/2; 6 jobs, allocation changing every 15 minutes.
    quotas = {"a": 4.0, "b": 2.0, "c": 2.0}
    jobs = [JobRecord(f"j{i}", "abc"[i % 3], 1.0, submit_s=600.0 * i, duration_s=1800.0,
                      first_start_s=600.0 * i + 60.0 * skew * i,
                      finish_s=600.0 * i + 1800.0 + 300.0 * skew * i)
            for i in range(6)]
    samples = []
    for k in range(16):
        alloc = {"a": 4.0 - skew * (k % 3), "b": 2.0 + skew * (k % 3), "c": float(k % 3)}
        demand = {"a": 5.0, "b": 4.0, "c": 2.0}
        share = {"a": 4.0, "b": 2.5, "c": 1.5}
        samples.append(Sample(t=900.0 * k, allocated=alloc, demand=demand, fair_share=share,
                              busy_gpus=sum(alloc.values())))
    return SimResult(policy=policy, trace="small", gpus=8, quotas=quotas, jobs=jobs,
                     samples=samples, end_s=16 * 900.0)


def big_result(n: int, projects: int) -> SimResult:
    # n samples a second apart over `projects` projects on 64 GPUs, random allocations.
    rng = np.random.default_rng(1)
    names = [f"proj{i:02d}" for i in range(projects)]
    alloc = rng.integers(0, 9, size=(n, projects)).astype(float)
    demand = alloc + rng.integers(0, 4, size=(n, projects))
    quotas = {p: 64.0 / projects for p in names}
    samples = []
    for k in range(n):
        row, drow = alloc[k].tolist(), demand[k].tolist()
        samples.append(Sample(t=float(k), allocated=dict(zip(names, row, strict=True)),
                              demand=dict(zip(names, drow, strict=True)), fair_share=quotas,
                              busy_gpus=sum(row)))
    jct = rng.lognormal(7.0, 1.5, size=5000)
    jobs = [JobRecord(f"j{i}", names[i % projects], 1.0, submit_s=0.0, duration_s=float(d),
                      first_start_s=0.0, finish_s=float(d)) for i, d in enumerate(jct)]
    return SimResult(policy="big", trace="synthetic", gpus=64, quotas=quotas, jobs=jobs,
                     samples=samples, end_s=float(n))


def test_plot_all_small_multi_policy(tmp_path: Path) -> None:
    results = {"fifo": small_result("fifo", 0.0), "drf/v2 fair": small_result("drf", 1.0)}
    paths = plot_all(results, tmp_path / "out")
    assert [p.name for p in paths] == [
        "jct_cdf.png", "utilisation.png", "allocation_fifo.png", "allocation_drf_v2_fair.png"]
    for p in paths:
        check_png(p)


def test_plot_all_100k_samples(tmp_path: Path) -> None:
    results = {"big": big_result(100_000, 10)}  # long series are binned (speed: benchmarks)
    paths = plot_all(results, tmp_path)
    assert {p.name for p in paths} == {"jct_cdf.png", "utilisation.png", "allocation_big.png"}
    for p in paths:
        check_png(p)


def test_plot_all_without_data(tmp_path: Path) -> None:
    empty = SimResult(policy="none", trace="t", gpus=4, quotas={}, jobs=[])
    for results in ({}, {"none": empty}):
        for p in plot_all(results, tmp_path):
            check_png(p)  # a "no data" note, title and axes: still a readable image


def test_many_projects_grouped_as_other() -> None:
    res = big_result(200, 10)
    panels = _project_series(res)
    assert len(panels) == 7
    assert panels[-1][0] == "other (4 projects)"
    assert panels[-1][1] == pytest.approx(4 * 6.4)  # the four quotas summed
    total = sum(s.busy_gpus for s in res.samples)
    assert sum(float(alloc.sum()) for _, _, alloc, _, _ in panels) == pytest.approx(total)
    hours = [float(alloc.sum()) for _, _, alloc, _, _ in panels[:6]]
    assert hours == sorted(hours, reverse=True)  # busiest first


def test_step_series_exact_and_binned() -> None:
    t, v = np.array([0.0, 25.0]), np.array([0.0, 1.0])
    x, y = step_series(t, v, 100.0, max_points=10)  # few samples: the exact steps
    assert x.tolist() == [0.0, 25.0, 100.0] and y.tolist() == [0.0, 1.0, 1.0]
    x, y = step_series(t, v, 100.0, max_points=1)  # one bin 0-100: (0*25 + 1*75) / 100
    assert x.tolist() == [0.0, 100.0] and y.tolist() == [0.75, 0.75]
    t = np.arange(1000.0)
    x, y = step_series(t, t % 2, 1000.0, max_points=100)  # 0/1 alternating: every bin 0.5
    assert x.size == 101 and np.allclose(y, 0.5)


def test_importing_plots_does_not_import_matplotlib() -> None:
    code = "import sys, fairpool.simulate.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
