"""Numbers that summarise one simulation run (one :class:`~.records.SimResult` per policy).

:func:`summarize` turns a result into a flat ``dict`` of plain ``int``/``float`` values, safe for
``json.dumps(..., allow_nan=False)``: every value is finite (anything that cannot be computed, e.g.
an average over no jobs, is 0, and fairness over nothing is 1.0). Seconds are rounded to 0.1 s,
ratios and GPU-hours to 4 decimals.

Time model. Samples are in time order; sample *i* holds from its ``t`` until sample *i+1*'s ``t``
and the last one until ``result.end_s``; its *duration* ``d_i`` is that span (0 if negative).
"A project" below means a key of a sample's ``demand``/``allocated`` dict or of ``result.quotas``;
a missing key counts as 0 GPUs.

Definitions (the keys of :func:`summarize`):

``jobs``
    number of job records. ``finished``: records with ``finish_s`` set.
``avg_jct_s``, ``p50_jct_s``, ``p99_jct_s``
    job completion time ``JCT = finish_s - submit_s`` over finished jobs: its mean, and its 50th
    and 99th percentile by :func:`numpy.percentile` (default ``linear`` method). 0 if none.
``avg_queue_s``
    mean of ``first_start_s - submit_s`` over jobs that started (the first wait only; waits after
    an eviction are not counted). 0 if none started.
``avg_wait_total_s``
    mean, over finished jobs, of the time they were not running: ``JCT - held time`` (held time
    = ``used_gpu_s / gpus``), so waits after evictions count too.
``makespan_s``
    ``max(finish_s) - min(submit_s)``, the max over finished jobs and the min over all jobs;
    0 if no job finished.
``utilisation``
    busy GPU-seconds / capacity GPU-seconds = ``Σ_i busy_gpus_i · d_i / (gpus · (end_s - t_0))``,
    ``t_0`` the first sample's ``t``. 0 when there are no samples or the denominator is not > 0.
``evictions``
    ``Σ JobRecord.evictions``. ``lost_gpu_hours``: ``Σ JobRecord.lost_gpu_s / 3600``.
``guarantee_violation_s``
    for each project *p* and sample *i* with ``demand_p > 0``, the guaranteed amount is
    ``g_p = min(quota_p, demand_p)`` (``quota_p`` from ``result.quotas``, 0 if absent); the sample
    counts ``d_i`` seconds against *p* when ``allocated_p < g_p - 1e-6`` GPUs. The key is the sum
    over projects (so two projects short at once count twice); per project values come from
    :func:`guarantee_violation_by_project`.
``jain_index``
    time-averaged Jain fairness of normalised allocation. At sample *i*, take the projects with
    ``demand_p > 0``; the entitlement is ``e_p = min(demand_p, fair_share_p)`` if
    ``fair_share_p > 0`` else ``min(demand_p, quota_p)``; projects with ``e_p <= 1e-6`` are
    skipped; ``x_p = allocated_p / e_p`` (not capped: above 1 means more than entitled). With *n*
    such projects, ``J_i = (Σ x_p)² / (n · Σ x_p²)``, and ``J_i = 1`` if ``Σ x_p² == 0``. The
    index is ``Σ J_i d_i / Σ d_i`` over samples with ``n >= 2``; 1.0 if there are none (or their
    durations sum to 0). It is 1 when every project gets the same fraction of its entitlement and
    ``1/n`` when one project gets everything.
``wall_s``, ``cycles``
    copied from the result (real seconds the simulation took, scheduler cycles run).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from .records import SimResult

__all__ = [
    "GPU_TOLERANCE",
    "guarantee_violation_by_project",
    "jain_index",
    "jain_of",
    "job_completion_times",
    "sample_durations",
    "summarize",
    "utilisation",
]

GPU_TOLERANCE = 1e-6  # GPUs: smaller differences are rounding, not a shortfall


def _finite(value: float, ndigits: int) -> float:
    """``value`` rounded, or 0.0 if it is NaN or infinite (the output must be JSON-encodable)."""
    v = float(value)
    return round(v, ndigits) if math.isfinite(v) else 0.0


def sample_durations(result: SimResult) -> list[float]:
    """Seconds each sample holds: until the next sample's ``t``, the last one until ``end_s``;
    nothing after ``end_s`` counts."""
    samples = result.samples
    out: list[float] = []
    for i, s in enumerate(samples):
        until = samples[i + 1].t if i + 1 < len(samples) else result.end_s
        out.append(max(0.0, min(until, result.end_s) - s.t))  # nothing counts after the end
    return out


def job_completion_times(result: SimResult) -> npt.NDArray[np.float64]:
    """``finish_s - submit_s`` of each finished job, in record order (seconds)."""
    jct = [j.finish_s - j.submit_s for j in result.jobs if j.finish_s is not None]
    return np.asarray(jct, dtype=float)


def utilisation(result: SimResult, durations: list[float] | None = None) -> float:
    """Busy GPU-seconds / capacity GPU-seconds (unrounded; see the module docstring)."""
    if durations is None:
        durations = sample_durations(result)
    if not result.samples:
        return 0.0
    capacity = result.gpus * (result.end_s - result.samples[0].t)
    if not capacity > 0:
        return 0.0
    busy = sum(s.busy_gpus * d for s, d in zip(result.samples, durations, strict=True))
    return busy / capacity


def _violation_seconds(result: SimResult) -> dict[str, float]:
    """Unrounded seconds short of the guarantee, per project (every known project a key)."""
    by_project: dict[str, float] = dict.fromkeys(result.quotas, 0.0)
    quotas = result.quotas
    for s, d in zip(result.samples, sample_durations(result), strict=True):
        for p, demand in s.demand.items():
            by_project.setdefault(p, 0.0)
            if demand <= 0 or d <= 0:
                continue
            guaranteed = min(quotas.get(p, 0.0), demand)
            if s.allocated.get(p, 0.0) < guaranteed - GPU_TOLERANCE:
                by_project[p] += d
    return by_project


def guarantee_violation_by_project(result: SimResult) -> dict[str, float]:
    """Seconds each project had demand but less than ``min(quota, demand)`` allocated.

    Every project of ``result.quotas`` or of any sample's demand is a key (0.0 if never short),
    sorted by name; values are rounded to 0.1 s. See the module docstring for the definition.
    """
    return {p: _finite(v, 1) for p, v in sorted(_violation_seconds(result).items())}


def jain_of(xs: Iterable[float]) -> float:
    """Jain's index ``(Σx)² / (n Σx²)`` of ``xs``; 1.0 when ``n <= 1`` or ``Σx² == 0``."""
    values = list(xs)
    n = len(values)
    squares = sum(x * x for x in values)
    if n <= 1 or squares == 0:
        return 1.0
    return sum(values) ** 2 / (n * squares)


def jain_index(result: SimResult) -> float:
    """Time-averaged Jain index of allocation / entitlement (unrounded; see module docstring)."""
    quotas = result.quotas
    weighted = 0.0
    weight = 0.0
    for s, d in zip(result.samples, sample_durations(result), strict=True):
        if d <= 0:
            continue
        xs: list[float] = []
        for p, demand in s.demand.items():
            if demand <= 0:
                continue
            share = s.fair_share.get(p, 0.0)
            entitled = min(demand, share) if share > 0 else min(demand, quotas.get(p, 0.0))
            if entitled <= GPU_TOLERANCE:
                continue
            xs.append(s.allocated.get(p, 0.0) / entitled)
        if len(xs) >= 2:
            weighted += jain_of(xs) * d
            weight += d
    return weighted / weight if weight > 0 else 1.0


def summarize(result: SimResult) -> dict[str, float | int]:
    """The run's headline numbers; every key is defined in this module's docstring."""
    jct = job_completion_times(result)
    waits = [j.first_start_s - j.submit_s for j in result.jobs if j.first_start_s is not None]
    total_waits = [j.finish_s - j.submit_s - j.used_gpu_s / j.gpus for j in result.jobs
                   if j.finish_s is not None and j.gpus > 0]
    finishes = [j.finish_s for j in result.jobs if j.finish_s is not None]
    makespan = max(finishes) - min(j.submit_s for j in result.jobs) if finishes else 0.0
    durations = sample_durations(result)
    has_jct = jct.size > 0
    return {
        "jobs": len(result.jobs),
        "finished": int(jct.size),
        "avg_jct_s": _finite(float(np.mean(jct)), 1) if has_jct else 0.0,
        "p50_jct_s": _finite(float(np.percentile(jct, 50)), 1) if has_jct else 0.0,
        "p99_jct_s": _finite(float(np.percentile(jct, 99)), 1) if has_jct else 0.0,
        "avg_queue_s": _finite(float(np.mean(waits)), 1) if waits else 0.0,
        "avg_wait_total_s": _finite(float(np.mean(total_waits)), 1) if total_waits else 0.0,
        "makespan_s": _finite(makespan, 1),
        "utilisation": _finite(utilisation(result, durations), 4),
        "evictions": sum(j.evictions for j in result.jobs),
        "lost_gpu_hours": _finite(sum(j.lost_gpu_s for j in result.jobs) / 3600.0, 4),
        "guarantee_violation_s": _finite(sum(_violation_seconds(result).values()), 1),
        "jain_index": _finite(jain_index(result), 4),
        "wall_s": _finite(result.wall_s, 3),
        "cycles": int(result.cycles),
    }


#: a sampled job that waited this long counts among the ``waited_…`` figures
WAITED_S = 60.0


def estimate_accuracy(result: SimResult) -> dict[str, float | int]:
    """How good the start-time estimate was, by replay (``Simulation(estimate_every=N)``):
    over the jobs sampled at submit that started, the absolute error ``|estimated start −
    first_start_s|`` (a sampled job with no estimate counts in ``no_estimate``, not in the
    errors): its median and 90th percentile (``linear``), and the median of the estimate minus
    the start (``median_bias_s``: > 0, the estimate was late); the same errors over the jobs
    that waited at least ``WAITED_S`` (``waited_…``), where an estimate matters."""
    sampled = [j for j in result.jobs if j.estimated]
    pairs = [(j.estimated_start_s, j.first_start_s) for j in sampled
             if j.estimated_start_s is not None and j.first_start_s is not None]
    errors = np.array([abs(e - s) for e, s in pairs], dtype=float)
    bias = np.array([e - s for e, s in pairs], dtype=float)
    has = errors.size > 0
    submit = {j.job_id: j.submit_s for j in sampled}
    waited = np.array([abs(j.estimated_start_s - j.first_start_s) for j in sampled
                       if j.estimated_start_s is not None and j.first_start_s is not None
                       and j.first_start_s - submit[j.job_id] >= WAITED_S], dtype=float)
    return {
        "waited": int(waited.size),
        "waited_median_abs_error_s": (_finite(float(np.percentile(waited, 50)), 1)
                                      if waited.size else 0.0),
        "waited_p90_abs_error_s": (_finite(float(np.percentile(waited, 90)), 1)
                                   if waited.size else 0.0),
        "sampled": len(sampled),
        "compared": int(errors.size),
        "no_estimate": sum(1 for j in sampled if j.estimated_start_s is None),
        "median_abs_error_s": _finite(float(np.percentile(errors, 50)), 1) if has else 0.0,
        "p90_abs_error_s": _finite(float(np.percentile(errors, 90)), 1) if has else 0.0,
        "median_bias_s": _finite(float(np.percentile(bias, 50)), 1) if has else 0.0,
    }
