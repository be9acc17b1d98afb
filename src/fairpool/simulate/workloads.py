"""Synthetic workloads for the simulator, so that a policy choice rests on many workloads and
not on one trace. :func:`generate` turns a :class:`WorkloadSpec` and a seed into a
:class:`~.records.Trace` (the same seed gives the same trace); :data:`PRESETS` are the named
mixes ``fairpool simulate generated:NAME`` and the benchmarks use.

The knobs (every one in :class:`WorkloadSpec`):

* ``jobs``; ``gpus``: the cluster the load is measured against; ``gpus_per_node``: how jobs
  larger than a node are split into gang workers (as traces are, :func:`.traces.default_workers`).
* ``load``: the offered load, GPU-seconds asked per second over ``gpus`` (1.0: on average the
  cluster would be exactly busy; above 1 a queue builds up). Arrivals are a Poisson process
  whose rate gives that load for the jobs drawn.
* ``tenants`` projects in ``departments`` departments (project ``pNN`` in ``dK``, K = NN mod
  departments); ``skew``: a Zipf exponent on how many jobs each project submits (0: equal,
  1: the first submits twice the second's, ...).
* ``fraction_share``: the share of jobs that ask for a fraction of one GPU, drawn uniformly from
  ``fractions``; the others ask for whole GPUs, their count drawn from ``gang_sizes``
  ((GPUs, weight) pairs; sizes above ``gpus`` are left out).
* Durations are lognormal (heavy-tailed): median ``duration_median_s``, shape
  ``duration_sigma``, clipped to [``duration_min_s``, ``duration_max_s``]; ``long_tenant``
  multiplies the durations of project p00's jobs (one tenant with long jobs, as real clusters
  have).
* Quotas are each project's share of the GPU-hours drawn, in whole GPUs summing to ``gpus``
  (:func:`.traces.proportional_quotas`), as for traces without a quota file.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace

from fairpool.simulate.records import Trace, TraceJob
from fairpool.simulate.traces import default_workers, proportional_quotas

__all__ = ["PRESETS", "WorkloadSpec", "generate", "preset"]


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    jobs: int = 2000
    gpus: int = 64
    gpus_per_node: int = 8
    load: float = 1.0
    tenants: int = 8
    departments: int = 2
    skew: float = 1.0
    fraction_share: float = 0.0
    fractions: tuple[float, ...] = (0.25, 0.5)
    gang_sizes: tuple[tuple[int, float], ...] = ((1, 0.6), (2, 0.15), (4, 0.15), (8, 0.1))
    duration_median_s: float = 1800.0
    duration_sigma: float = 1.5
    duration_min_s: float = 30.0
    duration_max_s: float = 7 * 86400.0
    long_tenant: float = 1.0
    seed: int = 0
    name: str = "generated"

    def check(self) -> None:
        """Raise ValueError naming the first knob that is out of range."""
        whole = {"jobs": self.jobs, "gpus": self.gpus, "gpus_per_node": self.gpus_per_node,
                 "tenants": self.tenants, "departments": self.departments}
        for knob, value in whole.items():
            if value < 1:
                raise ValueError(f"workload: {knob} must be at least 1, got {value}")
        if not 0 < self.load <= 100:
            raise ValueError(f"workload: load must be in (0, 100], got {self.load}")
        if self.skew < 0:
            raise ValueError(f"workload: skew must be ≥ 0, got {self.skew}")
        if not 0 <= self.fraction_share <= 1:
            raise ValueError(f"workload: fraction_share must be in [0, 1], got "
                             f"{self.fraction_share}")
        if self.fraction_share > 0 and (not self.fractions or any(
                not 0 < f < 1 for f in self.fractions)):
            raise ValueError("workload: fractions must be in (0, 1)")
        if not any(g <= self.gpus and w > 0 for g, w in self.gang_sizes) or any(
                g < 1 or w < 0 for g, w in self.gang_sizes):
            raise ValueError(f"workload: gang_sizes need a size of 1 to {self.gpus} GPUs with a "
                             "positive weight (and no size below 1 or weight below 0)")
        if not 0 < self.duration_min_s <= self.duration_median_s <= self.duration_max_s:
            raise ValueError("workload: durations need 0 < duration_min_s ≤ duration_median_s "
                             "≤ duration_max_s")
        if self.duration_sigma < 0 or self.long_tenant <= 0:
            raise ValueError("workload: duration_sigma must be ≥ 0 and long_tenant > 0")


#: the named mixes: GPU sharing, large gangs, one tenant dominating; at a load that builds a queue
PRESETS: dict[str, WorkloadSpec] = {
    "fraction-heavy": WorkloadSpec(name="fraction-heavy", load=1.2, fraction_share=0.6,
                                   duration_median_s=900.0),
    "gang-heavy": WorkloadSpec(name="gang-heavy", load=1.2, gang_sizes=(
        (1, 0.3), (2, 0.1), (4, 0.15), (8, 0.25), (16, 0.15), (32, 0.05))),
    "skewed-tenants": WorkloadSpec(name="skewed-tenants", load=1.3, tenants=6, skew=2.0,
                                   fraction_share=0.4, long_tenant=20.0,
                                   duration_median_s=600.0),
}


def preset(name: str, **overrides: object) -> WorkloadSpec:
    """A preset by name, with knobs replaced (``jobs=500, gpus=40, seed=3``)."""
    base = PRESETS.get(name)
    if base is None:
        raise ValueError(f"no workload {name!r}; the presets are {', '.join(sorted(PRESETS))}")
    known = set(asdict(base))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"workload: no knob {', '.join(unknown)}; the knobs are "
                         f"{', '.join(sorted(known))}")
    return replace(base, **overrides)  # type: ignore[arg-type]


@dataclass(slots=True)
class _Draw:
    project: str
    gpus: float
    duration_s: float
    submit_s: float = 0.0


def generate(spec: WorkloadSpec) -> Trace:
    """The trace ``spec`` describes, drawn from ``random.Random(spec.seed)``."""
    spec.check()
    rng = random.Random(spec.seed)
    projects = [f"p{i:02d}" for i in range(spec.tenants)]
    weights = [1.0 / (i + 1) ** spec.skew for i in range(spec.tenants)]
    sizes = [(g, w) for g, w in spec.gang_sizes if g <= spec.gpus and w > 0]
    mu, sigma = math.log(spec.duration_median_s), spec.duration_sigma
    draws: list[_Draw] = []
    for project in rng.choices(projects, weights, k=spec.jobs):
        if rng.random() < spec.fraction_share:
            gpus = rng.choice(spec.fractions)
        else:
            gpus = float(rng.choices([g for g, _ in sizes], [w for _, w in sizes])[0])
        duration = rng.lognormvariate(mu, sigma) * (spec.long_tenant if project == "p00"
                                                    else 1.0)
        duration = min(spec.duration_max_s, max(spec.duration_min_s, duration))
        draws.append(_Draw(project, gpus, round(duration, 1)))
    work = sum(d.gpus * d.duration_s for d in draws) / len(draws)  # GPU-seconds per job
    rate = spec.load * spec.gpus / work  # jobs per second
    clock = 0.0
    for d in draws:
        d.submit_s = round(clock, 3)
        clock += rng.expovariate(rate)
    jobs = [TraceJob(job_id=f"{spec.name}-{i:06d}", submit_s=d.submit_s,
                     duration_s=d.duration_s, gpus=d.gpus, project=d.project,
                     department=f"d{int(d.project[1:]) % spec.departments}",
                     workers=default_workers(d.gpus, spec.gpus_per_node))
            for i, d in enumerate(draws)]
    quotas = proportional_quotas(jobs, spec.gpus)
    departments = {p: f"d{int(p[1:]) % spec.departments}" for p in quotas}
    department_quotas: dict[str, float] = {}
    for project in sorted(quotas):
        dept = departments[project]
        department_quotas[dept] = department_quotas.get(dept, 0.0) + quotas[project]
    knobs = ", ".join(f"{k}={v}" for k, v in asdict(spec).items() if k != "name")
    return Trace(name=spec.name, jobs=tuple(jobs), quotas=quotas, departments=departments,
                 department_quotas=department_quotas,
                 notes=(f"generated workload {spec.name} ({knobs}); quotas by share of "
                        f"GPU-hours", ))
