"""PNG charts comparing simulation runs, one :class:`~.records.SimResult` per policy.

:func:`plot_all` writes, into ``out_dir`` (created if missing), and returns the paths of:

``jct_cdf.png``
    per policy, the empirical CDF of job completion time ``finish_s - submit_s`` over finished
    jobs: the fraction of finished jobs with JCT <= x, x in hours on a log axis (JCTs below 1 s
    are drawn at 1 s so the log axis can show them). Above 2,000 jobs the curve is drawn through
    2,000 evenly spaced quantiles. The legend gives each policy's finished and total job counts
    (unfinished jobs are not in the curve) and its median JCT.
``utilisation.png``
    per policy, cluster utilisation over time: ``busy_gpus / gpus`` of the piecewise-constant
    samples, as time-weighted averages over at most 400 equal time bins (the exact steps when
    there are fewer samples), in percent, time in hours. The legend gives the run's mean
    utilisation (:func:`.metrics.utilisation`).
``allocation_<policy>.png``
    one per policy (the name with characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_``): one panel per project, sharing the time axis in hours. Each panel shows
    the GPUs allocated to the project (solid), its fair share (dotted) and its quota (dashed) in
    one colour, over a light fill of its demand (clipped to the panel, which is scaled to the
    other three). With more than 7 projects, the 6 with the most allocated GPU-hours get panels
    and the others are summed into one "other" panel (their allocations, fair shares, demands and
    quotas added up). Series are time-weighted averages over at most 1,000 time bins.

Downsampling is exact for piecewise-constant data: each bin's value is the integral of the step
function over the bin divided by the bin's width, so a 100,000-sample run plots in about a second.
Figures use matplotlib's Agg canvas directly (no pyplot, no global backend switch); matplotlib is
imported only when a plot is drawn, so importing this module is cheap.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .metrics import job_completion_times, sample_durations, utilisation
from .records import SimResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_all", "plot_allocation", "plot_jct_cdf", "plot_utilisation", "step_series"]

FloatArray = npt.NDArray[np.float64]
Panel = tuple[str, float, FloatArray, FloatArray, FloatArray]  # name, quota, alloc, share, demand

DPI = 110
TOP_PROJECTS = 6  # panels with their own project; the rest are grouped as "other"
UTILISATION_BINS = 400
ALLOCATION_BINS = 1000
CDF_POINTS = 2000
MIN_JCT_S = 1.0  # shortest JCT shown on the log axis
HOUR = 3600.0


def step_series(
    t: FloatArray, values: FloatArray, end_s: float, max_points: int
) -> tuple[FloatArray, FloatArray]:
    """A piecewise-constant series as ``(x, y)`` for ``drawstyle="steps-post"``, ≤ max_points+1.

    ``values[i]`` holds from ``t[i]`` to ``t[i+1]`` (the last one until ``end_s``). With more than
    ``max_points`` samples, ``y`` holds time-weighted averages over equal time bins and ``x`` the
    bin edges; the last ``y`` repeats so the final step is drawn to the end.
    """
    if t.size == 0:
        return np.zeros(0), np.zeros(0)
    knots = np.append(t, max(end_s, float(t[-1])))
    durations = np.clip(np.diff(knots), 0.0, None)
    knots = float(t[0]) + np.concatenate(([0.0], np.cumsum(durations)))  # non-decreasing
    if t.size <= max_points or knots[-1] <= knots[0]:
        return knots, np.append(values, values[-1]).astype(float)
    area = np.concatenate(([0.0], np.cumsum(values * durations)))
    edges = np.linspace(knots[0], knots[-1], max_points + 1)
    averages = np.diff(np.interp(edges, knots, area)) / np.diff(edges)
    return edges, np.append(averages, averages[-1])


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _hours_label(value_h: float) -> str:
    return f"{value_h:g}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / HOUR:.1f} h"


def plot_jct_cdf(results: dict[str, SimResult], path: Path) -> Path:
    """``jct_cdf.png``: CDF of job completion time per policy, log hours axis."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = _figure(11.0, 5.5)
    ax = fig.add_subplot()
    drawn = 0
    span = (float("inf"), 0.0)  # smallest and largest JCT drawn, seconds
    for i, (policy, result) in enumerate(results.items()):
        jct = np.sort(np.maximum(job_completion_times(result), MIN_JCT_S))
        if jct.size == 0:
            continue
        if jct.size > CDF_POINTS:
            levels = np.linspace(0.0, 1.0, CDF_POINTS)
            xs, ys = np.quantile(jct, levels), levels
        else:
            xs, ys = jct, np.arange(1, jct.size + 1) / jct.size
        label = (f"{policy}\n{jct.size:,} of {len(result.jobs):,} jobs finished, "
                 f"median {_duration(float(np.median(jct)))}")
        xs, ys = np.append(xs[0], xs), np.append(0.0, ys)  # start the curve at 0
        ax.step(xs / HOUR, ys, where="post", color=f"C{i % 10}", lw=1.6, label=label)
        span = (min(span[0], float(xs[0])), max(span[1], float(xs[-1])))
        drawn += 1
    if drawn:
        ax.set_xscale("log")
        labels = FuncFormatter(lambda v, _pos: _hours_label(v))
        ax.xaxis.set_major_formatter(labels)
        # Label the 2x..9x ticks too when the data spans under ~1.5 decades (else too crowded).
        ax.xaxis.set_minor_formatter(labels if span[1] < 30 * span[0] else NullFormatter())
        fig.legend(loc="outside right upper", title="policy", labelspacing=0.9)
        ax.grid(True, which="major", alpha=0.4)
        ax.grid(True, which="minor", alpha=0.12)
    else:
        _no_data(ax, "no finished jobs")
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("job completion time (hours, log scale)")
    ax.set_ylabel("fraction of finished jobs (JCT ≤ x)")
    ax.set_title("Job completion time CDF by policy")
    return _save(fig, path)


def plot_utilisation(results: dict[str, SimResult], path: Path) -> Path:
    """``utilisation.png``: busy GPUs / cluster GPUs over time, per policy."""
    from matplotlib.ticker import PercentFormatter

    fig = _figure(11.0, 5.0)
    ax = fig.add_subplot()
    top = 1.0
    drawn = 0
    for i, (policy, result) in enumerate(results.items()):
        if not result.samples or result.gpus <= 0:
            continue
        t = np.fromiter((s.t for s in result.samples), float, len(result.samples))
        busy = np.fromiter((s.busy_gpus for s in result.samples), float, len(result.samples))
        x, y = step_series(t, busy / result.gpus, result.end_s, UTILISATION_BINS)
        label = f"{policy} ({utilisation(result):.1%})"
        ax.plot(x / HOUR, y, drawstyle="steps-post", color=f"C{i % 10}", lw=1.3, alpha=0.9,
                label=label)
        top = max(top, float(np.max(y)))
        drawn += 1
    if drawn:
        fig.legend(loc="outside right upper", title="policy (mean utilisation)")
        ax.grid(True, alpha=0.35)
    else:
        _no_data(ax, "no samples")
    ax.set_ylim(0.0, top * 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("time (hours)")
    ax.set_ylabel("GPUs busy (% of cluster)")
    ax.set_title("Cluster utilisation over time (time-weighted bin averages)")
    return _save(fig, path)


def _project_series(result: SimResult) -> list[Panel]:
    """Per panel: (label, quota, allocated, fair share, demand) sample arrays, busiest first."""
    samples = result.samples
    names: set[str] = set(result.quotas)
    for s in samples:
        names.update(s.allocated, s.demand, s.fair_share)
    n = len(samples)
    dur = np.asarray(sample_durations(result), dtype=float)

    def column(field: str, p: str) -> FloatArray:
        return np.fromiter((getattr(s, field).get(p, 0.0) for s in samples), float, n)

    alloc = {p: column("allocated", p) for p in names}
    order = sorted(names, key=lambda p: (-float(alloc[p] @ dur), p))
    shown = order if len(order) <= TOP_PROJECTS + 1 else order[:TOP_PROJECTS]
    panels = [
        (p, result.quotas.get(p, 0.0), alloc[p], column("fair_share", p), column("demand", p))
        for p in shown
    ]
    rest = order[len(shown):]
    if rest:
        zero = np.zeros(n)
        panels.append((
            f"other ({len(rest)} projects)",
            sum(result.quotas.get(p, 0.0) for p in rest),
            sum((alloc[p] for p in rest), zero),
            sum((column("fair_share", p) for p in rest), zero),
            sum((column("demand", p) for p in rest), zero),
        ))
    return panels


def plot_allocation(result: SimResult, path: Path) -> Path:
    """``allocation_<policy>.png``: per-project allocation, fair share, quota and demand."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    panels = _project_series(result) if result.samples else []
    fig = _figure(10.0, 1.6 + 1.55 * max(1, len(panels)))
    title = f"GPUs per project under {result.policy} ({result.trace}, {result.gpus} GPUs)"
    fig.suptitle(title, fontsize=13)
    if not panels:
        _no_data(fig.add_subplot(), "no samples")
        return _save(fig, path)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    t = np.fromiter((s.t for s in result.samples), float, len(result.samples))
    dur = np.asarray(sample_durations(result), dtype=float)
    for i, (ax, (name, quota, alloc, share, demand)) in enumerate(zip(axes, panels, strict=True)):
        colour = f"C{i % 10}"
        x, ya = step_series(t, alloc, result.end_s, ALLOCATION_BINS)
        _, ys = step_series(t, share, result.end_s, ALLOCATION_BINS)
        _, yd = step_series(t, demand, result.end_s, ALLOCATION_BINS)
        xh = x / HOUR
        ax.fill_between(xh, 0.0, yd, step="post", color=colour, alpha=0.13, lw=0)
        ax.plot(xh, ya, drawstyle="steps-post", color=colour, lw=1.5)
        ax.plot(xh, ys, drawstyle="steps-post", color=colour, lw=1.3, ls=":")
        if quota > 0:
            ax.axhline(quota, color=colour, lw=1.2, ls="--")
        top = max(float(np.max(ya, initial=0.0)), float(np.max(ys, initial=0.0)), quota, 1.0)
        ax.set_ylim(0.0, top * 1.2)
        gpu_h = float(alloc @ dur) / HOUR
        ax.set_title(f"{name}: quota {quota:g} GPUs, {gpu_h:,.1f} GPU-hours used",
                     loc="left", fontsize=10, color=colour)
        ax.set_ylabel("GPUs")
        ax.grid(True, alpha=0.3)
        ax.set_xlim(xh[0], xh[-1] if xh[-1] > xh[0] else xh[0] + 1.0 / HOUR)
    axes[-1].set_xlabel("time (hours)")
    handles = [
        Line2D([], [], color="0.2", lw=1.5, label="allocated"),
        Line2D([], [], color="0.2", lw=1.3, ls=":", label="fair share"),
        Line2D([], [], color="0.2", lw=1.2, ls="--", label="quota (guarantee)"),
        Patch(color="0.2", alpha=0.13, label="demand (clipped to panel)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False)
    return _save(fig, path)


def _file_stem(policy: str, taken: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", policy).strip("_.") or "policy"
    unique, k = stem, 2
    while unique in taken:
        unique, k = f"{stem}_{k}", k + 1
    taken.add(unique)
    return unique


def plot_all(results: dict[str, SimResult], out_dir: Path) -> list[Path]:
    """Write jct_cdf.png, utilisation.png and allocation_<policy>.png; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        plot_jct_cdf(results, out_dir / "jct_cdf.png"),
        plot_utilisation(results, out_dir / "utilisation.png"),
    ]
    taken: set[str] = set()
    for policy, result in results.items():
        name = f"allocation_{_file_stem(policy, taken)}.png"
        paths.append(plot_allocation(result, out_dir / name))
    return paths
