import pytest

from fairpool.domain import (
    GPU_UNIT,
    UNLIMITED,
    IllegalTransition,
    Job,
    JobState,
    Node,
    Queue,
    QueueTree,
    Resources,
    WorkerRequest,
)
from fairpool.domain.priority import DEFAULT_PRIORITY_CLASSES, resolve_priority_class
from fairpool.domain.states import TRANSITIONS, can_transition, transition


def test_resources_arithmetic_and_comparison():
    a = Resources.of(gpus=2, cpus=4, memory_mib=1024)
    b = Resources.of(gpus=0.5, cpus=1)
    assert (a + b).gpu == 2500
    assert (a - b).cpu == 3000
    assert (b * 2).gpu == GPU_UNIT
    assert b <= a and not a <= b
    assert b < a and a > b
    assert (a - a).is_zero()
    assert Resources.INFINITE + a == Resources.INFINITE  # unlimited stays unlimited
    assert a.min(b) == Resources(500, 0, 1000, 0)
    assert a.max(b) == a
    assert a.describe() == "2 GPUs, 4 CPUs, 1024 MiB memory"
    assert Resources.of(gpus=0.25).describe() == "0.25 GPUs"
    with pytest.raises(ValueError, match="negative"):
        Resources.of(gpus=-1)


def test_dominant_share():
    total = Resources.of(gpus=10, cpus=100)
    assert Resources.of(gpus=5, cpus=10).dominant_share(total) == 0.5
    assert Resources.of(cpus=80).dominant_share(total) == 0.8
    assert Resources(memory=1).dominant_share(total) == float("inf")


def test_worker_request_validation():
    with pytest.raises(ValueError, match="not several"):
        WorkerRequest(gpus=1, gpu_fraction=0.5)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        WorkerRequest(gpu_fraction=1.0)
    with pytest.raises(ValueError, match="positive"):
        WorkerRequest(gpu_memory_mib=0)
    with pytest.raises(ValueError, match="between 0 and"):
        WorkerRequest(gpus=-1)
    assert WorkerRequest(gpu_fraction=0.25).nominal(80000).gpu == 250
    assert WorkerRequest(gpu_memory_mib=20000).nominal(80000).gpu == 250


def test_job_validation():
    with pytest.raises(ValueError, match="workers"):
        Job("j", "p", WorkerRequest(gpus=1), workers=0)
    with pytest.raises(ValueError, match="one placement per worker"):
        Job("j", "p", WorkerRequest(gpus=1), state=JobState.RUNNING)


def test_node_validation():
    with pytest.raises(ValueError, match="name"):
        Node("")
    n = Node.with_gpus("a", 8, gpu_memory_mib=1000)
    assert n.capacity.gpu == 8 * GPU_UNIT and n.capacity.gpu_memory == 8000
    assert n.simulated and n.schedulable


def test_queue_tree_validation():
    with pytest.raises(ValueError, match="exceeds its limit"):
        Queue("a", quota=Resources.of(gpus=4), limit=Resources.of(gpus=2))
    with pytest.raises(ValueError, match="unknown parent"):
        QueueTree.build([Queue("a", parent="nope")])
    with pytest.raises(ValueError, match="duplicate"):
        QueueTree.build([Queue("a"), Queue("a")])
    with pytest.raises(ValueError, match="cycle"):
        QueueTree.build([Queue("a", parent="b"), Queue("b", parent="a")])
    tree = QueueTree.build([Queue("d"), Queue("p", parent="d")])
    assert tree.path("p") == ["d", "p"]
    assert tree.is_leaf("p") and not tree.is_leaf("d")
    assert Queue("x").limit.gpu == UNLIMITED


def test_priority_classes():
    assert DEFAULT_PRIORITY_CLASSES["train"].value == 50
    assert DEFAULT_PRIORITY_CLASSES["train"].preemptible
    assert DEFAULT_PRIORITY_CLASSES["build"].value == 100
    assert DEFAULT_PRIORITY_CLASSES["build"].in_quota_only
    assert DEFAULT_PRIORITY_CLASSES["inference"].value == 125
    assert not DEFAULT_PRIORITY_CLASSES["inference"].preemptible
    with pytest.raises(ValueError, match="known classes: build, inference, train"):
        resolve_priority_class("urgent")


def test_state_machine_one_table():
    S = JobState
    assert transition(S.QUEUED, S.ADMITTED) == S.ADMITTED
    assert can_transition(S.RUNNING, S.STOPPING)
    assert can_transition(S.STOPPING, S.REQUEUED)
    with pytest.raises(IllegalTransition, match="cannot go from succeeded to running"):
        transition(S.SUCCEEDED, S.RUNNING)
    with pytest.raises(IllegalTransition):
        transition(S.QUEUED, S.RUNNING)
    assert set(TRANSITIONS) == set(S)  # every state has a row
    for target in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        assert not TRANSITIONS[target]
