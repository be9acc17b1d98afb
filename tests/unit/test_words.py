"""Counts read as English: ``1 GPU``, ``2 GPUs`` (domain.words.plural), in the domain's text
and the scheduler's reasons as well as the CLI."""

from __future__ import annotations

import pytest

from fairpool.domain import Queue, Resources
from fairpool.domain.words import plural
from fairpool.scheduler import SchedulerConfig, Snapshot, schedule
from tests.helpers import job, nodes, project


@pytest.mark.parametrize(("count", "word", "kw", "text"), [
    (1, "GPU", {}, "1 GPU"), (1.0, "GPU", {}, "1 GPU"), (0, "GPU", {}, "0 GPUs"),
    (0.5, "GPU", {}, "0.5 GPUs"), (2, "job", {}, "2 jobs"), (12.5, "CPU", {}, "12.5 CPUs"),
    (1234, "job", {"shown": "1,234"}, "1,234 jobs"), (1, "job", {"shown": "1"}, "1 job"),
    (0.9996, "GPU", {"shown": "1"}, "1 GPU"), (3, "policy", {"many": "policies"}, "3 policies"),
])
def test_plural(count: float, word: str, kw: dict[str, str], text: str) -> None:
    assert plural(count, word, **kw) == text


def test_resources_say_one_gpu_and_one_cpu() -> None:
    assert Resources.of(gpus=1, cpus=1).describe() == "1 GPU, 1 CPU"
    assert Resources.of(gpus=2, cpus=0.5).describe() == "2 GPUs, 0.5 CPUs"


def test_a_placement_reason_counts_in_words() -> None:
    gang = job("g", "p", g=1, workers=2)
    plan = schedule(Snapshot(nodes(1, 1), (Queue("d"), project("p")), (gang,)),
                    SchedulerConfig())
    message = plan.pending["g"].message
    assert "needs 2 workers × 1 GPU;" in message and "1 GPU free" in message, message
    assert "1 GPUs" not in message
