"""Gang placement: all workers of a job or none, on whole GPUs, GPU fractions or GPU memory.

Placement reads the domain indexes of :mod:`fairpool.scheduler.cluster_state`: bin-pack takes the
node (or partly used device) with the least free capacity that still fits, spread the one with the
most. With ``Strategy.FRAGMENTATION`` a fractional worker goes to the candidate device whose
placement fragments its node least for the cycle's workload mix (:mod:`.fragmentation`; ties:
bin-pack's choice); whole GPUs are bin-packed as ever. A gang is placed inside a statement; if
any worker finds no room, everything rolls back and a typed :class:`PlacementFailure` says why,
in words. A cheap capacity count rejects gangs that cannot fit before any search, and failures
are cached until capacity is released.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from fairpool.domain.job import WorkerPlacement, WorkerRequest
from fairpool.domain.resources import CPU_UNIT, GPU_UNIT, format_gpus
from fairpool.domain.words import plural
from fairpool.scheduler.cluster_state import ClusterState, Domain
from fairpool.scheduler.codes import Action, PlacementCode
from fairpool.scheduler.fit import Inventory, misfit
from fairpool.scheduler.fragmentation import PARTIAL, Fragmentation
from fairpool.scheduler.session import JobView, Session, Slot
from fairpool.scheduler.snapshot import Strategy
from fairpool.scheduler.statement import Statement

WorkerSlot = tuple[int, tuple[int, ...], int, int]  # node, device positions, share, gpu memory


@dataclass(frozen=True, slots=True)
class PlacementFailure:
    code: PlacementCode
    message: str


def _device_need(req: WorkerRequest, device_memory: int) -> tuple[int, int]:
    """(milli-GPUs, MiB) one fractional worker takes on a device of ``device_memory`` MiB."""
    if req.gpu_fraction is not None:
        milli = req.fraction_milli
        return milli, milli * device_memory // GPU_UNIT
    assert req.gpu_memory_mib is not None
    mem = req.gpu_memory_mib
    return -(-mem * GPU_UNIT // max(device_memory, 1)), mem


def _min_milli(req: WorkerRequest, dom: Domain) -> int:
    if req.gpu_fraction is not None:
        return req.fraction_milli
    return _device_need(req, dom.max_device_memory)[0]


def _partial_slot(cs: ClusterState, dom: Domain, k: int, exclude: Collection[int],
                  req: WorkerRequest) -> WorkerSlot | None:
    """The first device of the domain with ``k`` milli-GPUs free that holds the fraction."""
    for n, d in dom.partial[k]:
        if n in exclude or not _host_fits(cs, n, req):
            continue
        milli, mem = _device_need(req, cs.dev_mem_total[n][d])
        if k >= milli and cs.dev_mem_free[n][d] >= mem:
            return (n, (d,), milli, mem)
    return None


def _host_fits(cs: ClusterState, n: int, req: WorkerRequest) -> bool:
    return cs.cpu_free[n] >= req.cpu and cs.mem_free[n] >= req.memory


def _whole_slot(cs: ClusterState, n: int, g: int) -> WorkerSlot:
    """``g`` fully free devices of node ``n``; each is held whole, with all its memory."""
    free = cs.dev_free[n]
    devs = tuple([d for d in range(len(free)) if free[d] == GPU_UNIT][:g])
    return (n, devs, GPU_UNIT, min(cs.dev_mem_total[n][d] for d in devs))


def _frac_on_node(cs: ClusterState, n: int, req: WorkerRequest, spread: bool) -> WorkerSlot | None:
    best: WorkerSlot | None = None
    best_free = -1
    for d, free in enumerate(cs.dev_free[n]):
        milli, mem = _device_need(req, cs.dev_mem_total[n][d])
        if free < milli or cs.dev_mem_free[n][d] < mem:
            continue
        # bin-pack: least free device that fits; spread: most free
        better = best is None or (free > best_free if spread else free < best_free)
        if better:
            best, best_free = (n, (d,), milli, mem), free
    return best


def _slot_on_node(cs: ClusterState, n: int, req: WorkerRequest, spread: bool) -> WorkerSlot | None:
    if not _host_fits(cs, n, req):
        return None
    if req.gpus:
        if cs.whole_free[n] < req.gpus:
            return None
        return _whole_slot(cs, n, req.gpus)
    if req.fractional:
        return _frac_on_node(cs, n, req, spread)
    return (n, (), 0, 0)


def _frac_by_fragmentation(
    cs: ClusterState,
    dom: Domain,
    req: WorkerRequest,
    frag: Fragmentation,
    only: Collection[int] | None,
    exclude: Collection[int],
) -> WorkerSlot | None:
    """A fractional worker's slot: among the devices bin-pack would try, the one whose score
    (the rise of its node's fragmentation) is lowest; on equal scores, bin-pack's choice."""
    if only is not None:  # the given nodes, every device that fits (bin-pack's key: its free)
        best: WorkerSlot | None = None
        best_key = (0, 0)
        for n in only:
            if n in exclude or n not in dom.nodes or not _host_fits(cs, n, req):
                continue
            whole = cs.whole_free[n]
            for d, free in enumerate(cs.dev_free[n]):
                milli, mem = _device_need(req, cs.dev_mem_total[n][d])
                if free < milli or cs.dev_mem_free[n][d] < mem:
                    continue
                key = (frag.device(free, whole, milli), free)
                if best is None or key < best_key:
                    best, best_key = (n, (d,), milli, mem), key
        return best
    lo = _min_milli(req, dom)  # (the share the buckets are scored with)
    keys = sorted(f for f in dom.partial if f >= lo)
    whole_ks = [k for k in range(1, len(dom.by_whole)) if dom.by_whole[k]]
    for kind, k in frag.order(keys, whole_ks, lo):
        if kind == PARTIAL:
            found = _partial_slot(cs, dom, k, exclude, req)
            if found is not None:
                return found
            continue
        for n in dom.by_whole[k]:  # a fully free device of a node with k of them
            if n in exclude or not _host_fits(cs, n, req):
                continue
            for d, free in enumerate(cs.dev_free[n]):
                milli, mem = _device_need(req, cs.dev_mem_total[n][d])
                if free == GPU_UNIT and cs.dev_mem_free[n][d] >= mem:
                    return (n, (d,), milli, mem)
    return None


def _find_slot(
    cs: ClusterState,
    dom: Domain,
    req: WorkerRequest,
    spread: bool,
    only: Collection[int] | None,
    exclude: Collection[int],
    frag: Fragmentation | None = None,
) -> WorkerSlot | None:
    """One worker's slot: the best node/device by strategy, or None."""
    if frag is not None and req.fractional:
        return _frac_by_fragmentation(cs, dom, req, frag, only, exclude)
    if only is not None:
        best: WorkerSlot | None = None
        best_key = 0.0
        for n in only:
            if n in exclude or n not in dom.nodes:
                continue
            slot = _slot_on_node(cs, n, req, spread)
            if slot is None:
                continue
            key = float(cs.whole_free[n]) if req.gpus else (
                cs.dev_free[n][slot[1][0]] if slot[1] else cs.cpu_free[n])
            if best is None or (key > best_key if spread else key < best_key):
                best, best_key = slot, key
        return best
    if req.gpus:
        g = req.gpus
        ks = range(len(dom.by_whole) - 1, g - 1, -1) if spread else range(g, len(dom.by_whole))
        for k in ks:
            for n in dom.by_whole[k]:
                if n not in exclude and _host_fits(cs, n, req):
                    return _whole_slot(cs, n, g)
        return None
    if req.fractional:
        lo = _min_milli(req, dom)
        keys = sorted((f for f in dom.partial if f >= lo), reverse=spread)
        whole_ks = range(len(dom.by_whole) - 1, 0, -1) if spread else range(1, len(dom.by_whole))
        order = (("w", whole_ks), ("p", keys)) if spread else (("p", keys), ("w", whole_ks))
        for kind, seq in order:
            for k in seq:
                if kind == "p":
                    found = _partial_slot(cs, dom, k, exclude, req)
                    if found is not None:
                        return found
                else:
                    for n in dom.by_whole[k]:
                        if n in exclude:
                            continue
                        slot = _slot_on_node(cs, n, req, spread)
                        if slot is not None:
                            return slot
        return None
    for n in sorted(dom.nodes, key=lambda n: cs.cpu_free[n], reverse=spread):
        if n not in exclude and _host_fits(cs, n, req):
            return (n, (), 0, 0)
    return None


def could_fit(dom: Domain, req: WorkerRequest, workers: int, same_node: bool) -> bool:
    """Necessary condition from free GPU counts only (no CPU/memory, no exclusions)."""
    if req.gpus:
        g = req.gpus
        if same_node:
            return any(dom.by_whole[k] for k in range(g * workers, len(dom.by_whole)))
        room = 0
        for k in range(g, len(dom.by_whole)):
            room += len(dom.by_whole[k]) * (k // g)
            if room >= workers:
                return True
        return False
    if req.fractional:
        m = _min_milli(req, dom)
        if m > GPU_UNIT:
            return False
        room = sum(len(s) * (f // m) for f, s in dom.partial.items() if f >= m)
        room += dom.free_whole() * (GPU_UNIT // m)
        return room >= workers
    return bool(dom.nodes)


def _inventory(cs: ClusterState, dom: Domain, where: str) -> Inventory:
    """The domain's nodes as if empty (GPU maxima from its index; whole gangs unchecked)."""
    nodes = [cs.nodes[n] for n in dom.nodes]
    return Inventory(len(nodes), dom.max_devices, dom.max_device_memory,
                     max((x.cpu for x in nodes), default=0),
                     max((x.memory for x in nodes), default=0), None, where)


def explain_failure(cs: ClusterState, dom: Domain, view: JobView) -> PlacementFailure:
    job = view.job
    req = job.request
    n = job.workers
    where = dom.describe()
    never = misfit(_inventory(cs, dom, where), req, n, same_node=job.same_node)
    if never is not None:  # NO_NODES or TOO_LARGE: it would not fit even on empty nodes
        return PlacementFailure(never.code, never.message)
    if not could_fit(dom, req, n, job.same_node):
        free = dom.free_whole()
        block = dom.largest_block()
        if req.gpus:
            each = plural(req.gpus, "GPU")
            shape = each if n == 1 else f"{n} workers × {each}"
            if job.same_node and n > 1:
                shape += " on one node"
            return PlacementFailure(
                PlacementCode.NO_CAPACITY,
                f"needs {shape}; {plural(free, 'GPU')} free in {where}, largest free block on "
                f"one node is {block}",
            )
        frac = format_gpus(_min_milli(req, dom))
        return PlacementFailure(
            PlacementCode.NO_CAPACITY,
            f"needs {n} × {frac} of a GPU; {plural(free, 'whole GPU')} free in {where} and no "
            f"partly used GPU has that much left",
        )
    return PlacementFailure(
        PlacementCode.NODE_RESOURCES,
        f"GPUs are free in {where} but no node with them also has "
        f"{plural(req.cpu / CPU_UNIT, 'CPU')} and {req.memory} MiB memory free per worker",
    )


def place_gang(
    session: Session,
    view: JobView,
    *,
    only: Collection[int] | None = None,
    exclude: Collection[int] = (),
) -> tuple[tuple[Slot, ...], tuple[WorkerPlacement, ...]] | None:
    """Occupy room for every worker (logged); None, with nothing occupied, if the gang does not
    fit. The caller wraps this in a statement and records the bind."""
    cs = session.cluster
    job = view.job
    req = job.request
    dom = cs.domain(job.selector)
    spread = job.spread or session.config.strategy == Strategy.SPREAD
    frag = None if spread else session.fragmentation  # (None unless Strategy.FRAGMENTATION)
    if only is None and not exclude and not could_fit(dom, req, job.workers, job.same_node):
        return None
    if job.same_node and job.workers > 1:
        candidates = only if only is not None else _same_node_candidates(cs, dom, view)
        for n in candidates:
            if n in exclude:
                continue
            with Statement(session.log) as st:
                got = _place_workers(session, view, dom, spread, (n,), (), frag)
                if got is not None:
                    st.commit()
                    return got
        return None
    with Statement(session.log) as st:
        got = _place_workers(session, view, dom, spread, only, exclude, frag)
        if got is not None:
            st.commit()
        return got


def _same_node_candidates(cs: ClusterState, dom: Domain, view: JobView) -> list[int]:
    req = view.job.request
    if req.gpus:
        need = req.gpus * view.job.workers
        return [n for k in range(need, len(dom.by_whole)) for n in dom.by_whole[k]]
    return sorted(dom.nodes)


def _place_workers(
    session: Session,
    view: JobView,
    dom: Domain,
    spread: bool,
    only: Collection[int] | None,
    exclude: Collection[int],
    frag: Fragmentation | None,
) -> tuple[tuple[Slot, ...], tuple[WorkerPlacement, ...]] | None:
    cs = session.cluster
    req = view.job.request
    slots: list[Slot] = []
    placements: list[WorkerPlacement] = []
    for w in range(view.job.workers):
        slot = _find_slot(cs, dom, req, spread, only, exclude, frag)
        if slot is None:
            return None
        n, devs, share, gmem = slot
        cs.occupy(n, devs, share, gmem, req.cpu, req.memory)
        slots.append((n, devs))
        placements.append(
            WorkerPlacement(
                w, cs.nodes[n].name, tuple(cs.device_index(n, d) for d in devs), share, gmem
            )
        )
    return tuple(slots), tuple(placements)


def try_place(
    session: Session,
    view: JobView,
    action: Action,
    *,
    only: Collection[int] | None = None,
    exclude: Collection[int] = (),
    waits_for: tuple[str, ...] = (),
) -> bool:
    """Place and bind the whole gang, or change nothing."""
    got = place_gang(session, view, only=only, exclude=exclude)
    if got is None:
        return False
    session.bind(view, got[0], got[1], action, waits_for)
    return True
