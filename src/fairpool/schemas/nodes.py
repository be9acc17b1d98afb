"""Response models of nodes: their resources, devices and state, and how each confines
the jobs it runs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class IsolationOut(BaseModel):
    """How a node confines jobs: full (every part in place), partial (``missing`` names what
    is not) or none; the Unix account mode jobs run as; whether devices are simulated."""

    level: str  # full | partial | none
    run_as: str
    missing: list[str] = Field(default_factory=list)
    simulated_devices: bool = False


class DeviceOut(BaseModel):
    index: int
    model: str
    memory_mib: int
    used: float
    holders: list[str]


class NodeOut(BaseModel):
    name: str
    pool: str
    labels: dict[str, str]
    simulated: bool
    ready: bool
    cordoned: bool
    cordon_until: float | None = None
    cordon_reason: str | None = None
    cpus: float
    memory_mib: int
    devices: list[DeviceOut]
    isolation: IsolationOut | None = None
