"""Response models of usage reports: GPU-hours allocated, used and measured per job, project or
department, and GPUs held per project over time."""

from __future__ import annotations

from pydantic import BaseModel


class UsageOut(BaseModel):
    key: str  # the job id, project or department
    project: str | None
    department: str
    jobs: int
    allocated_gpu_hours: float
    used_gpu_hours: float
    measured_gpu_hours: float


class SeriesOut(BaseModel):
    """GPUs held per project at each step (the mean over the step)."""

    start: float
    step_s: float
    series: dict[str, list[float]]
