"""Could a job ever fit on an inventory of nodes, and if not, why (with the numbers).

The one "can this ever fit" check, for the three places that ask it: the submit-time check
(``fairpool.services.jobs``), placement's TOO_LARGE branch
(:func:`fairpool.scheduler.placement.explain_failure`) and the simulator (jobs it never runs).

An :class:`Inventory` describes some nodes as if they were empty: how many there are, the most
GPUs, GPU memory (of one GPU), CPU and memory any one of them has, and the GPUs of each GPU node.
:func:`misfit` says why ``workers`` workers of a :class:`WorkerRequest` can never be placed on
it, or returns None when they might be. It checks, in this order:

1. ``NO_NODES``: there is a node at all;
2. ``GPUS``: a worker's whole GPUs (with ``same_node``, all workers' together) on one node;
3. ``NO_GPUS``: a GPU share (fraction or GPU memory) needs a node with GPUs;
4. ``GPU_MEMORY``: a GPU-memory request on one GPU;
5. ``CPU``, ``MEMORY``: a worker's CPU and memory (with ``same_node``, all workers') on one node;
6. ``GANG``, only with ``whole_gang=True``: every worker at once, on all the nodes together.

Each check is necessary, not sufficient (the node with the most GPUs need not be the one with
the most CPU): a job that passes may still never fit, and placement then says what is missing.
The whole-gang check suits a fixed cluster (the simulator's); the server accepts such a job and
lets it wait, since nodes may join.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from fairpool.domain.job import WorkerRequest
from fairpool.domain.node import Node
from fairpool.domain.resources import CPU_UNIT, GPU_UNIT
from fairpool.domain.words import plural
from fairpool.scheduler.codes import PlacementCode


class Shortfall(StrEnum):
    """What a job asks for more of than the inventory could ever give."""

    NO_NODES = "no-nodes"
    GPUS = "gpus"
    NO_GPUS = "no-gpus"
    GPU_MEMORY = "gpu-memory"
    CPU = "cpu"
    MEMORY = "memory"
    GANG = "gang"


@dataclass(frozen=True, slots=True)
class Inventory:
    """Nodes as if they were empty. ``node_gpus`` lists the GPUs of every node that has any
    (None: not known, and :func:`misfit` cannot check a whole gang); ``where`` names the nodes
    in messages (a selector's description)."""

    nodes: int = 0
    max_gpus: int = 0
    max_gpu_memory: int = 0  # MiB, of one GPU
    max_cpu: int = 0  # millicores
    max_memory: int = 0  # MiB
    node_gpus: tuple[int, ...] | None = ()
    where: str = "any node"

    @staticmethod
    def of(nodes: Iterable[Node], where: str = "any node") -> Inventory:
        """The inventory of these nodes (all of them: the caller picks which count)."""
        count = max_gpus = max_gpu_memory = max_cpu = max_memory = 0
        gpus: list[int] = []
        for node in nodes:
            count += 1
            max_cpu = max(max_cpu, node.cpu)
            max_memory = max(max_memory, node.memory)
            if node.devices:
                gpus.append(len(node.devices))
                max_gpus = max(max_gpus, len(node.devices))
                max_gpu_memory = max(max_gpu_memory, *(d.memory_mib for d in node.devices))
        return Inventory(count, max_gpus, max_gpu_memory, max_cpu, max_memory, tuple(gpus), where)


@dataclass(frozen=True, slots=True)
class Misfit:
    """Why a job can never fit: ``need`` against ``largest``, in the shortfall's unit (GPUs for
    GPUS; MiB for GPU_MEMORY and MEMORY; millicores for CPU; workers for GANG, ``largest``
    being how many such workers all the nodes together hold; 0 against 0 for NO_NODES and
    NO_GPUS). With ``same_node``, GPUS, CPU and MEMORY count all workers together."""

    shortfall: Shortfall
    need: int
    largest: int
    message: str

    @property
    def code(self) -> PlacementCode:
        """The scheduler's code: NO_NODES, or TOO_LARGE for everything else."""
        if self.shortfall == Shortfall.NO_NODES:
            return PlacementCode.NO_NODES
        return PlacementCode.TOO_LARGE


def misfit(inv: Inventory, request: WorkerRequest, workers: int = 1, *,
           same_node: bool = False, whole_gang: bool = False) -> Misfit | None:
    """Why ``workers`` workers of ``request`` can never be placed on ``inv``, even empty, or
    None if they might be (checks 1–6 of the module doc; 6 only with ``whole_gang``)."""
    where = inv.where
    if inv.nodes == 0:
        return Misfit(Shortfall.NO_NODES, 0, 0, f"no ready, uncordoned node matches {where}")
    together = workers if same_node else 1
    all_on_one = same_node and workers > 1
    if request.gpus and request.gpus * together > inv.max_gpus:
        need = request.gpus * together
        what = (f"all {workers} workers on one node need {plural(need, 'GPU')}" if all_on_one
                else f"each worker needs {plural(request.gpus, 'GPU')} on one node")
        return Misfit(Shortfall.GPUS, need, inv.max_gpus,
                      f"{what}, but the largest node in {where} has {inv.max_gpus}")
    if request.fractional and inv.max_gpus == 0:
        return Misfit(Shortfall.NO_GPUS, 0, 0,
                      f"each worker needs a share of a GPU, but no node in {where} has GPUs")
    mem = request.gpu_memory_mib
    if mem is not None and mem > inv.max_gpu_memory:
        return Misfit(Shortfall.GPU_MEMORY, mem, inv.max_gpu_memory,
                      f"each worker needs {mem} MiB on one GPU, but the largest GPU in {where} "
                      f"has {inv.max_gpu_memory} MiB")
    whose = f"all {workers} workers on one node need" if all_on_one else "each worker needs"
    if request.cpu * together > inv.max_cpu:
        need = request.cpu * together
        return Misfit(Shortfall.CPU, need, inv.max_cpu,
                      f"{whose} {plural(need / CPU_UNIT, 'CPU')}, but the largest node in "
                      f"{where} has {inv.max_cpu / CPU_UNIT:g}")
    if request.memory * together > inv.max_memory:
        need = request.memory * together
        return Misfit(Shortfall.MEMORY, need, inv.max_memory,
                      f"{whose} {need} MiB memory, but the largest node in {where} has "
                      f"{inv.max_memory} MiB")
    if whole_gang and not same_node and workers > 1:
        room = gang_room(inv, request)
        if room is not None and room < workers:
            return Misfit(Shortfall.GANG, workers, room,
                          f"all {workers} workers must run at once, but the nodes in {where} "
                          f"together hold {room} such workers")
    return None


def gang_room(inv: Inventory, request: WorkerRequest) -> int | None:
    """At most how many workers of ``request`` the empty nodes hold at once, counting GPUs only
    (None for a request without GPUs). Whole GPUs: every node's ⌊GPUs / GPUs per worker⌋; a
    fraction: every GPU holds ⌊1 / fraction⌋; GPU memory: no GPU holds more than the largest
    GPU's memory divided by the request (an upper bound, so a job it rejects never fits)."""
    if inv.node_gpus is None:
        raise ValueError("this inventory does not list its nodes' GPUs: no whole-gang check")
    if request.gpus:
        return sum(size // request.gpus for size in inv.node_gpus)
    if request.gpu_fraction is not None:
        return sum(inv.node_gpus) * (GPU_UNIT // request.fraction_milli)
    if request.gpu_memory_mib is not None:
        return sum(inv.node_gpus) * (inv.max_gpu_memory // request.gpu_memory_mib)
    return None
