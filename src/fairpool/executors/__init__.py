"""Executors run workers on nodes behind one protocol (see :mod:`fairpool.executors.base`):
``local`` (subprocesses on this machine), ``fake`` (in-memory, for unit tests) and, for many
machines, ``ray``."""

from fairpool.executors.base import (
    DeviceInfo,
    Executor,
    NodeInfo,
    WorkerPhase,
    WorkerSpec,
    WorkerStatus,
)

__all__ = ["DeviceInfo", "Executor", "NodeInfo", "WorkerPhase", "WorkerSpec", "WorkerStatus"]
