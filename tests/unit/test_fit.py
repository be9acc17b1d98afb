"""The one "could this job ever fit" check (fairpool.scheduler.fit): its numbers, and its three
callers: placement's TOO_LARGE branch, the simulator's never-fits and the submit-time check,
whose messages are unchanged."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from fairpool.domain import Job, Node, Queue, WorkerRequest
from fairpool.domain.resources import CPU_UNIT
from fairpool.scheduler import Snapshot, schedule
from fairpool.scheduler.codes import PlacementCode
from fairpool.scheduler.fit import Inventory, Shortfall, gang_room, misfit
from tests.helpers import job, nodes, project

MIB = 81920
CLUSTER = (Node.with_gpus("big", 8, cpus=32, memory_mib=1000),
           Node.with_gpus("small", 2, gpu_memory_mib=40000, cpus=64, memory_mib=4000),
           Node("cpu-only", cpu=128 * CPU_UNIT, memory=500))
INV = Inventory.of(CLUSTER, "pool=x")


def test_the_inventory_counts_each_largest_separately() -> None:
    assert (INV.nodes, INV.max_gpus, INV.max_gpu_memory) == (3, 8, MIB)
    assert (INV.max_cpu, INV.max_memory, INV.node_gpus) == (128 * CPU_UNIT, 4000, (8, 2))
    assert Inventory.of(()) == Inventory(node_gpus=())


@pytest.mark.parametrize(("request_", "workers", "same_node", "expected"), [
    (WorkerRequest(gpus=9), 1, False, (Shortfall.GPUS, 9, 8)),
    (WorkerRequest(gpus=3), 3, True, (Shortfall.GPUS, 9, 8)),
    (WorkerRequest(gpus=3), 3, False, None),
    (WorkerRequest(gpu_memory_mib=MIB + 1), 1, False, (Shortfall.GPU_MEMORY, MIB + 1, MIB)),
    (WorkerRequest(gpu_memory_mib=MIB), 1, False, None),
    (WorkerRequest(cpu=129 * CPU_UNIT), 1, False, (Shortfall.CPU, 129 * CPU_UNIT, 128_000)),
    (WorkerRequest(cpu=64 * CPU_UNIT), 3, True, (Shortfall.CPU, 192 * CPU_UNIT, 128_000)),
    (WorkerRequest(memory=4001), 1, False, (Shortfall.MEMORY, 4001, 4000)),
    (WorkerRequest(memory=2000), 2, True, None),
])
def test_misfit_says_what_is_short_with_the_numbers(
        request_: WorkerRequest, workers: int, same_node: bool,
        expected: tuple[Shortfall, int, int] | None) -> None:
    why = misfit(INV, request_, workers, same_node=same_node)
    assert (None if why is None else (why.shortfall, why.need, why.largest)) == expected
    if why is not None:
        assert why.code == PlacementCode.TOO_LARGE and "pool=x" in why.message


def test_no_nodes_and_shares_without_gpus() -> None:
    empty = misfit(Inventory(where="pool=v100"), WorkerRequest(gpus=1))
    assert empty is not None and empty.code == PlacementCode.NO_NODES
    assert empty.message == "no ready, uncordoned node matches pool=v100"
    cpu_only = Inventory.of([CLUSTER[2]])
    for share in (WorkerRequest(gpu_fraction=0.5), WorkerRequest(gpu_memory_mib=10)):
        why = misfit(cpu_only, share)
        assert why is not None and why.shortfall == Shortfall.NO_GPUS
    assert misfit(cpu_only, WorkerRequest(cpu=1000)) is None


def test_the_whole_gang_is_checked_only_when_asked() -> None:
    eight = WorkerRequest(gpus=8)
    assert misfit(INV, eight, 2) is None  # the server lets it wait: nodes may join
    why = misfit(INV, eight, 2, whole_gang=True)
    assert why is not None and (why.shortfall, why.need, why.largest) == (Shortfall.GANG, 2, 1)
    assert misfit(INV, WorkerRequest(gpus=2), 5, whole_gang=True) is None  # 4 + 1
    assert gang_room(INV, WorkerRequest(gpus=2)) == 5
    assert gang_room(INV, WorkerRequest(gpu_fraction=0.3)) == 30  # 10 GPUs × 3
    assert gang_room(INV, WorkerRequest(gpu_memory_mib=30000)) == 20  # at most 2 a GPU
    assert gang_room(INV, WorkerRequest(cpu=1)) is None
    with pytest.raises(ValueError, match="whole-gang"):
        misfit(replace(INV, node_gpus=None), eight, 2, whole_gang=True)


# -- placement: TOO_LARGE comes from misfit -----------------------------------------------------
def _pending(ns: tuple[Node, ...], j: Job) -> tuple[str, str]:
    reason = schedule(Snapshot(ns, (Queue("d"), project("p")), (j,))).pending[j.id]
    return reason.code, reason.message


def test_placement_reports_what_misfit_says() -> None:
    ns = nodes(2, 4)
    for j in (job("g", "p", g=16), job("s", "p", g=2, workers=3, same_node=True),
              Job("m", "p", WorkerRequest(gpus=1, cpu=65 * CPU_UNIT)),
              Job("f", "p", WorkerRequest(gpu_memory_mib=MIB * 2))):
        expected = misfit(Inventory.of(ns), j.request, j.workers, same_node=j.same_node)
        assert expected is not None
        code, message = _pending(ns, j)  # (the reason may go on about reclaim)
        assert code == "TOO_LARGE" and message.startswith(expected.message)
    assert _pending(ns, job("g", "p", g=16))[1].startswith(
        "each worker needs 16 GPUs on one node, but the largest node in any node has 4")
    assert _pending(ns, Job("m", "p", WorkerRequest(gpus=1, cpu=65 * CPU_UNIT)))[1].startswith(
        "each worker needs 65 CPUs, but the largest node in any node has 64")
    # what only the free capacity decides is not TOO_LARGE
    assert _pending(ns, job("g", "p", g=4, workers=3))[0] == "NO_CAPACITY"


# -- the submit-time check: same messages as before --------------------------------------------
class _Store:
    def __init__(self, rows: list[Any]) -> None:
        self.cache: dict[str, Any] = {"nodes": (time.monotonic(), rows)}


def _row(name: str, gpus: int, *, memory_mib: int = MIB, pool: str = "default", cpus: int = 64,
         memory: int = 512 * 1024, ready: bool = True) -> Any:
    from fairpool.store.models import NodeRow

    return NodeRow(name=name, pool=pool, labels={}, cpu=cpus * CPU_UNIT, memory=memory,
                   simulated=True, ready=ready, cordoned=False, updated_at=0.0,
                   devices=[{"index": i, "memory_mib": memory_mib, "model": "sim",
                             "uuid": f"{name}-{i}"} for i in range(gpus)])


ROWS = [_row("a", 4, pool="a100", cpus=16, memory=1000), _row("b", 2, pool="h100", cpus=8),
        _row("c", 8, pool="a100", ready=False)]


@pytest.mark.parametrize(("fields", "message"), [
    ({"gpus": 8}, "the job needs 8 GPUs on one node but the largest node in the pool has 4"),
    ({"gpus": 3, "node_pool": "h100"},
     "the job needs 3 GPUs on one node but the largest node in pool h100 has 2"),
    ({"gpus": 2, "workers": 3, "same_node": True},
     "the job needs 6 GPUs on one node but the largest node in the pool has 4"),
    ({"gpu_memory_mib": MIB + 1},
     f"the job needs {MIB + 1} MiB on one GPU but the largest GPU has {MIB} MiB"),
    ({"cpus": 16.5}, "the job needs 16.5 CPUs per worker but the largest node has 16"),
    ({"cpus": 6, "workers": 2, "same_node": True, "node_pool": "h100"},
     "the job needs 6 CPUs per worker but the largest node has 8"),
    ({"memory_mib": 512 * 1024 + 1},
     "the job needs 524289 MiB memory per worker but the largest node has 524288 MiB"),
    ({"gpus": 1, "node_pool": "v100"}, "no node is in pool v100"),
    ({"gpus": 1, "node_pool": "h100", "workers": 64}, None),  # the whole gang: left to wait
    ({"gpus": 4, "node_pool": "a100"}, None),
    ({"gpu_fraction": 0.5}, None),
])
def test_submit_time_messages_are_unchanged(fields: dict[str, Any], message: str | None) -> None:
    from fairpool.schemas.jobs import JobSubmit
    from fairpool.services.errors import Invalid
    from fairpool.services.submission import check_fits

    spec = JobSubmit(project="p", command=["true"], **fields)
    store = _Store(ROWS)
    if message is None:
        check_fits(store, None, spec)  # type: ignore[arg-type]
        return
    with pytest.raises(Invalid) as info:
        check_fits(store, None, spec)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_submit_time_share_without_gpus_and_no_nodes_at_all() -> None:
    from fairpool.schemas.jobs import JobSubmit
    from fairpool.services.errors import Invalid
    from fairpool.services.submission import check_fits

    share = JobSubmit(project="p", command=["true"], gpu_fraction=0.5)
    with pytest.raises(Invalid, match=r"^the job asks for a GPU share but no node has GPUs$"):
        check_fits(_Store([_row("c", 0)]), None, share)  # type: ignore[arg-type]
    check_fits(_Store([]), None, share)  # type: ignore[arg-type]  # pool starting
    store = _Store(ROWS)  # the inventory is kept with the rows it was made of
    check_fits(store, None, share)  # type: ignore[arg-type]
    first = store.cache["fit-inventories"]
    check_fits(store, None, share)  # type: ignore[arg-type]
    assert store.cache["fit-inventories"] is first
    store.cache["nodes"] = (time.monotonic(), [_row("z", 0)])  # re-read: a new inventory
    with pytest.raises(Invalid):
        check_fits(store, None, share)  # type: ignore[arg-type]
