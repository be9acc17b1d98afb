"""Fair share, including KAI-Scheduler's reference results."""

from fairpool.domain import Queue, QueueTree, Resources
from fairpool.scheduler.fair_share import Claimant, divide, fair_shares, water_fill
from tests.helpers import G, gpus, project


def shares(queues, capacity, demand):
    tree = QueueTree.build(queues)
    got = fair_shares(tree, gpus(capacity), {k: gpus(v) for k, v in demand.items()})
    return {k: v.gpu / G for k, v in got.items() if k}


def test_kai_reference_priority_and_weights():
    # 5 GPUs; A/B/C quota 1/1/0, priority 2/1/1, weight 1/2/1, demand 1/3/2 → A=1, B=3, C=1
    qs = [Queue("d", quota=gpus(5)),
          project("A", quota=1, priority=2, weight=1),
          project("B", quota=1, priority=1, weight=2),
          project("C", quota=0, priority=1, weight=1)]
    got = shares(qs, 5, {"A": 1, "B": 3, "C": 2})
    assert (got["A"], got["B"], got["C"]) == (1, 3, 1)


def test_kai_reference_weights_70_30():
    qs = [Queue("d"), project("A", quota=10, weight=3), project("B", quota=10, weight=1)]
    got = shares(qs, 100, {"A": 100, "B": 100})
    assert (got["A"], got["B"]) == (70, 30)


def test_demand_capped_by_limit_and_surplus_redistributed():
    qs = [Queue("d"), project("A", quota=2, limit=4), project("B", quota=2)]
    got = shares(qs, 10, {"A": 10, "B": 10})
    assert got["A"] == 4 and got["B"] == 6


def test_never_above_demand():
    qs = [Queue("d"), project("A", quota=8), project("B", quota=0)]
    got = shares(qs, 10, {"A": 1, "B": 2})
    assert got == {"d": 3, "A": 1, "B": 2}


def test_whole_units_floored_and_leftover_by_largest_remainder():
    qs = [Queue("d"), project("A"), project("B"), project("C")]
    got = shares(qs, 10, {"A": 10, "B": 10, "C": 10})
    assert sorted(got[k] for k in "ABC") == [3, 3, 4]
    assert got["A"] + got["B"] + got["C"] == 10


def test_hierarchy_departments_then_projects():
    qs = [Queue("eng", quota=gpus(6)), Queue("res", quota=gpus(2)),
          project("e1", "eng", quota=3), project("e2", "eng", quota=3),
          project("r1", "res", quota=2)]
    got = shares(qs, 16, {"e1": 10, "e2": 1, "r1": 10})
    assert got["eng"] == 10 and got["res"] == 6  # quotas 6/2, then surplus 8 split 4/4
    assert got["e1"] == 9 and got["e2"] == 1  # e2 wants only 1; e1 takes the rest of eng's 10
    assert got["r1"] == 6


def test_oversubscribed_quota_goes_by_priority_then_quota():
    got = divide(4 * G, [Claimant(4 * G, 4 * G, 1, 1), Claimant(4 * G, 4 * G, 1, 0)], G)
    assert got == [4 * G, 0]
    got = divide(6 * G, [Claimant(4 * G, 4 * G, 1, 0), Claimant(8 * G, 8 * G, 1, 0)], G)
    assert got == [2 * G, 4 * G]


def test_zero_weight_gets_no_surplus():
    got = divide(10 * G, [Claimant(0, 10 * G, 0, 0), Claimant(0, 10 * G, 1, 0)], G)
    assert got == [0, 10 * G]


def test_water_fill_conserves_and_respects_wants():
    wants = [5, 100, 7, 0]
    got = water_fill(50, wants, [1, 1, 1, 1], 1)
    assert got[0] == 5 and got[2] == 7 and got[3] == 0 and sum(got) == 50


def test_fractional_capacity_leftover_in_base_units():
    got = divide(2500, [Claimant(0, 5000, 1, 0), Claimant(0, 5000, 1, 0)], G)
    assert sum(got) == 2500 and sorted(got) == [1000, 1500]


def test_cpu_and_memory_shares_computed_too():
    tree = QueueTree.build([Queue("d"), project("A"), project("B")])
    cap = Resources.of(gpus=4, cpus=10, memory_mib=100)
    got = fair_shares(tree, cap, {"A": Resources.of(cpus=8, memory_mib=30),
                                  "B": Resources.of(cpus=8, memory_mib=90)})
    assert got["A"].cpu == 5000 and got["B"].cpu == 5000
    assert got["A"].memory == 30 and got["B"].memory == 70
