"""The control loop's rules on a real SQLite file with the fake executor and a fake clock: no
sleeps, the clock is moved by hand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fairpool.control.loop import ControlLoop
from fairpool.control.settings import LoopSettings
from fairpool.executors.fake import FakeExecutor
from fairpool.executors.gpus import local_node
from fairpool.schemas.queues import ProjectCreate, QueueCreate, ResourceSpec
from fairpool.services import queues
from fairpool.store.db import Store


@dataclass
class Clock:
    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'fairpool.db'}")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def pool(store: Store, tmp_path: Path, clock: Clock, settings: LoopSettings | None = None,
         nodes: int = 1, gpus: int = 4) -> tuple[ControlLoop, FakeExecutor]:
    """Department d with projects p1 and p2 (half the GPUs each) on ``nodes`` fake nodes."""
    total = nodes * gpus
    queues.create_department(store, QueueCreate(name="d", quota=ResourceSpec(gpus=total)))
    for name in ("p1", "p2"):
        queues.create_project(store, ProjectCreate(name=name, department="d",
                                                   quota=ResourceSpec(gpus=total / 2)))
    fake = FakeExecutor([local_node(gpus, name=f"node-{i}") for i in range(nodes)])
    loop = ControlLoop(store, fake, tmp_path, settings or LoopSettings(
        grace_s=5, reasons_every_s=0), clock=clock)
    loop.sync_nodes()
    return loop, fake
