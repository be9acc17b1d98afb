"""What a simulation takes in and gives out: trace jobs, per-job records and time samples.

These plain dataclasses are the contract between the trace loaders (:mod:`.traces`), the
discrete-event engine (:mod:`.engine`), the metrics (:mod:`.metrics`) and the plots
(:mod:`.plots`). Times are seconds from the start of the trace; GPU amounts are in GPUs (a float:
0.5 is half of one shared GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class TraceJob:
    job_id: str
    submit_s: float  # arrival, seconds from the start of the trace (the first job is at 0)
    duration_s: float  # run time on the requested GPUs, without interruptions
    gpus: float  # GPUs for the whole job; below 1: a fraction of one shared GPU
    project: str
    department: str = "default"
    workers: int = 1  # the job's GPUs are split evenly among its workers (a gang)
    priority: str = "train"  # train, build or inference (fairpool's priority classes)


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    jobs: tuple[TraceJob, ...]  # sorted by submit_s, then job_id
    quotas: dict[str, float]  # project -> guaranteed GPUs
    departments: dict[str, str]  # project -> its department
    department_quotas: dict[str, float]  # department -> guaranteed GPUs (sum of its projects')
    notes: tuple[str, ...] = ()  # assumptions a reader must know (e.g. a duration made up)


@dataclass(slots=True)
class JobRecord:
    """One job's life in a simulation."""
    job_id: str
    project: str
    gpus: float
    submit_s: float
    duration_s: float  # work needed (from the trace)
    first_start_s: float | None = None
    finish_s: float | None = None
    evictions: int = 0
    lost_gpu_s: float = 0.0  # GPU-seconds of work thrown away by evictions (since checkpoints)
    used_gpu_s: float = 0.0  # GPU-seconds the job held GPUs (useful work + lost work)
    #: the start-time estimate made when it was submitted (replay of the estimate; None: not
    #: sampled, or sampled with no estimate: see ``estimated``)
    estimated_start_s: float | None = None
    estimated: bool = False  # sampled for the estimate's replay


@dataclass(frozen=True, slots=True)
class Sample:
    """The cluster between ``t`` and the next sample (piecewise constant)."""
    t: float
    allocated: dict[str, float]  # project -> GPUs held by its running jobs
    demand: dict[str, float]  # project -> GPUs its running and waiting jobs ask for
    fair_share: dict[str, float]  # project -> GPUs the scheduler's fair share gives it
    busy_gpus: float  # GPUs held, all projects


@dataclass(slots=True)
class SimResult:
    policy: str
    trace: str
    gpus: int  # cluster size
    quotas: dict[str, float]
    jobs: list[JobRecord]
    samples: list[Sample] = field(default_factory=list)
    end_s: float = 0.0  # simulated time when the last job finished
    wall_s: float = 0.0  # real seconds the simulation took
    cycles: int = 0  # scheduler cycles run
