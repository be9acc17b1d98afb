"""The time-aware fair share on the worked example of fairpool.scheduler.usage_share: two
projects of quota 1 and weight 1 on 8 GPUs, half-life 1 h; project a held all 8 GPUs for the
last hour, b nothing. a's decayed usage is 8 × 3600 / ln 2 × (1 − ½) = 20,776 GPU-s, half of
the pool's potential (41,552), so a's over-quota weight is halved: of the 6 GPUs beyond the
quotas a gets 2 and b 4 (fair shares 3 and 5, not 4 and 4). As the hour ages, a's usage decays
and the shares go back toward 4 and 4."""

from __future__ import annotations

import math

import pytest

from fairpool.domain import Queue, QueueTree
from fairpool.scheduler import SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.usage_share import (
    decayed_gpu_s,
    potential_gpu_s,
    weight_factors,
)
from tests.helpers import G, job, nodes, project

H = 3600.0
QUEUES = (Queue("d"), project("a", quota=1), project("b", quota=1))
CFG = SchedulerConfig(usage_k=1.0, usage_half_life_s=H, usage_window_s=None)


def test_decayed_usage_and_the_potential() -> None:
    used = decayed_gpu_s([("a", 8.0, 0.0, H)], now=H, half_life_s=H, window_s=None)
    assert used["a"] == pytest.approx(8 * H / math.log(2) * 0.5)
    assert potential_gpu_s(8, H, None) == pytest.approx(8 * H / math.log(2))
    # an hour later the same hour counts half; a window of one hour leaves it out
    later = decayed_gpu_s([("a", 8.0, 0.0, H)], now=2 * H, half_life_s=H, window_s=None)
    assert later["a"] == pytest.approx(used["a"] / 2)
    assert decayed_gpu_s([("a", 8.0, 0.0, H)], now=2 * H, half_life_s=H, window_s=H) == {}
    # a window cuts a span; spans of nothing count nothing
    cut = decayed_gpu_s([("a", 8.0, 0.0, H), ("b", 0.0, 0.0, H)], now=H, half_life_s=H,
                        window_s=H / 2)
    assert cut == {"a": pytest.approx(8 * H / math.log(2) * (1 - 2 ** -0.5))}
    assert potential_gpu_s(8, H, H) == pytest.approx(8 * H / math.log(2) * 0.5)


def test_factors_halve_the_weight_of_the_queue_that_used_half_the_pool() -> None:
    tree = QueueTree.build(QUEUES)
    used = {"a": 8 * H / math.log(2) * 0.5}
    f = weight_factors(tree, used, potential_gpu_s(8, H, None), k=1.0)
    assert f["a"] == pytest.approx(0.5) and f["b"] == 1.0
    assert f["d"] == pytest.approx(2 ** -0.5)  # alone at the top: it does not matter
    assert weight_factors(tree, used, potential_gpu_s(8, H, None), k=0.0)["a"] == 1.0
    # equal usage, equal weight: equal factors (the split does not change)
    even = weight_factors(tree, {"a": 100.0, "b": 100.0}, 1000.0, k=1.0)
    assert even["a"] == even["b"]
    # down the tree, a queue is judged against its part of the pool: in a department that is
    # a tenth of the pool, a project (half of it) that used the department's whole tenth has
    # used twice its part, as a top-level queue of half the pool that used all of it
    depts = [Queue(f"d{i}") for i in range(10)]
    nested = QueueTree.build((*depts, project("a1", "d0"), project("a2", "d0")))
    f = weight_factors(nested, {"a1": 0.1 * 1000.0}, 1000.0, k=1.0)
    assert f["a1"] == pytest.approx(0.25) and f["a2"] == 1.0
    assert f["d0"] == pytest.approx(2 ** -1.0)  # d0 used all of its tenth: n/s = 0.1/0.1


def fair(now: float, config: SchedulerConfig = CFG) -> dict[str, float]:
    jobs = tuple(job(f"{p}{i}", p, t=float(i)) for p in "ab" for i in range(8))
    used = decayed_gpu_s([("a", 8.0, 0.0, H)], now=now, half_life_s=H, window_s=None)
    snap = Snapshot(nodes(1, 8), QUEUES, jobs, now=now, usage_gpu_s=used)
    plan = schedule(snap, config)
    return {p: plan.fair_shares[p].gpu / G for p in "ab"}


def test_the_fair_share_follows_and_forgets_the_past() -> None:
    assert fair(H) == {"a": 3.0, "b": 5.0}
    assert fair(H, SchedulerConfig()) == {"a": 4.0, "b": 4.0}  # off: usage does not count
    assert fair(5 * H) == {"a": 4.0, "b": 4.0}  # four half-lives later: factor 0.96
    # quotas hold whatever the past: a project that used everything keeps its guarantee
    heavy = decayed_gpu_s([("a", 8.0, 0.0, 10 * H)], now=10 * H, half_life_s=H, window_s=None)
    jobs = tuple(job(f"{p}{i}", p, t=float(i)) for p in "ab" for i in range(8))
    plan = schedule(Snapshot(nodes(1, 8), QUEUES, jobs, now=10 * H, usage_gpu_s=heavy), CFG)
    assert plan.fair_shares["a"].gpu >= 1 * G
