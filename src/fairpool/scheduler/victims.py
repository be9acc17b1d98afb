"""Evict-to-fit: the search shared by reclaim, preempt and consolidate.

Given a pending gang and candidate victims (already filtered and ordered by the calling action),
victims are taken by priority tier, node by node — nodes where the gang would find the most room
first — each one re-checked against the action's rule at the moment it would be evicted, until the
gang fits. A second pass then keeps only the victims on the devices the gang actually uses, so no
job is evicted that did not make room. Everything happens in one statement: if the gang cannot be
completed, the cluster is exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from fairpool.domain.queue import InQueueOrder
from fairpool.domain.resources import GPU_UNIT
from fairpool.scheduler import service_levels as levels
from fairpool.scheduler.codes import Action
from fairpool.scheduler.placement import could_fit, place_gang
from fairpool.scheduler.session import BOUND, PENDING, RUNNING, JobView, Session
from fairpool.scheduler.statement import Statement

#: takes a victim out of the way; returns False (having changed nothing) if it may not
Remove = Callable[[JobView], bool]


def _held(v: JobView) -> set[tuple[int, int]]:
    """The (node, device) pairs a job holds; a worker without GPUs holds (node, -1)."""
    out = {(n, d) for n, devs in v.slots for d in devs}
    out |= {(n, -1) for n, devs in v.slots if not devs}
    return out


def protected(session: Session, view: JobView) -> bool:
    """True while a job is inside its minimum runtime (or cannot be evicted at all: not
    preemptible, or already stopping). A job
    placed earlier in this cycle would start now, so it is as protected as it will be then:
    the next cycle must not find victims this one could not."""
    job = view.job
    if not job.preemptible or job.stopping:  # a stopping job holds its place until it ends
        return True
    if job.min_runtime_s <= 0:
        return False
    if view.status == BOUND:
        return True
    started = job.started_at if job.started_at is not None else session.now
    return session.now < started + job.min_runtime_s


def group_by_node(session: Session, view: JobView, candidates: Sequence[JobView]) -> list[JobView]:
    """Order candidates by rank tier (priority, and level in the attained-service order), lowest
    first, and inside a tier node by node: nodes
    with the most free GPU first (fewest victims needed), then those where the candidates hold
    most; within a node the caller's order is kept. Taking whole tiers first means no evicted
    job ever outranks a job of its project that stayed, so it cannot preempt back. Candidates on
    no node of the gang's domain are dropped: evicting them would not help."""
    cs = session.cluster
    dom = cs.domain(view.job.selector)
    tiers: dict[int, dict[int, list[JobView]]] = {}
    room: dict[tuple[int, int], int] = {}
    chosen = {v.idx for v in candidates}
    hosts: dict[int, bool] = {}
    for v in candidates:
        if not session.evictable(v):
            continue
        for n, _ in v.slots:
            ok = hosts.get(n)
            if ok is None:
                ok = hosts[n] = n in dom.nodes and _could_host(session, n, chosen, view)
            if ok:
                prio = v.rank
                tiers.setdefault(prio, {}).setdefault(n, []).append(v)
                room[(prio, n)] = room.get((prio, n), 0) + v.acct[0]
                break
    # whole-GPU gangs want whole devices back: victims that hold whole devices free one with a
    # single eviction; fractional gangs are best served by evicting other fractions first
    whole_first = bool(view.job.request.gpus)

    def within_node(v: JobView) -> int:
        holds_whole = all(p.share >= GPU_UNIT for p in v.placements) and v.acct[0] > 0
        return 0 if holds_whole == whole_first else 1

    out: list[JobView] = []
    for prio in sorted(tiers):
        per_node = tiers[prio]
        ordered = sorted(per_node, key=lambda n: (-sum(cs.dev_free[n]), -room[(prio, n)]))
        for n in ordered:
            out.extend(sorted(per_node[n], key=within_node))  # stable: caller's order kept
    return out


def _kept(session: Session, n: int, leaving: set[int]) -> list[int]:
    """Milli-GPUs each device of node ``n`` would still hold if the jobs in ``leaving`` went."""
    held = [0] * len(session.cluster.dev_free[n])
    for j in session.node_jobs[n]:
        if j in leaving:
            continue
        other = session.jobs[j]
        for (m, devs), p in zip(other.slots, other.placements, strict=True):
            if m == n:
                for d in devs:
                    held[d] += p.share
    return held


def _could_host(session: Session, n: int, chosen: set[int], view: JobView) -> bool:
    """Could one worker of ``view`` fit on node ``n`` if every chosen candidate left it? Devices
    held by anyone else stay held. Nodes that cannot are skipped: evicting there is waste."""
    cs = session.cluster
    held = _kept(session, n, chosen)
    req = view.job.request
    if req.gpus:
        return sum(1 for h in held if h == 0) >= req.gpus
    if req.gpu_fraction is not None:
        return any(GPU_UNIT - h >= req.fraction_milli for h in held)
    if req.gpu_memory_mib is not None:
        mem = req.gpu_memory_mib
        return any(
            GPU_UNIT - h >= -(-mem * GPU_UNIT // max(cs.dev_mem_total[n][d], 1))
            for d, h in enumerate(held)
        )
    return True


def _frees_a_device(session: Session, victim: JobView, chosen: set[int]) -> bool:
    """Could some device the victim holds end up fully free, if the other candidates that share
    it went too? (Devices it shares with anyone else stay busy.)"""
    # (checked device by device, stopping at the first holder: this runs for every candidate)
    jobs = session.jobs
    for n, devs in victim.slots:
        for d in devs:
            if not any(
                j != victim.idx and j not in chosen
                and any(m == n and d in ds for m, ds in jobs[j].slots)
                for j in session.node_jobs[n]
            ):
                return True
    return False


def victims_by_leaf(session: Session) -> dict[int, list[JobView]]:
    """Jobs that may be evicted now (holding resources, past their minimum runtime), per
    project, lowest rank (priority, then most service received in the attained-service order)
    then newest first: the order in which they give way."""
    by_leaf: dict[int, list[JobView]] = {}
    for v in session.holders():
        if not protected(session, v):
            by_leaf.setdefault(v.leaf, []).append(v)
    for jobs in by_leaf.values():
        jobs.sort(key=lambda v: (v.rank, -(v.job.started_at or 0.0), v.job.id))
    return by_leaf


def evict_to_fit(
    session: Session,
    view: JobView,
    action: Action,
    candidates: Sequence[JobView],
    remove: Remove,
    admits: Callable[[], bool] = lambda: True,
    max_candidates: int | None = None,
) -> bool:
    """Make room for ``view`` by removing candidates, bind it, and return True; or change nothing
    and return False. ``admits`` re-checks the queue rules once victims are gone;
    ``max_candidates`` bounds how many evictable candidates one attempt looks at."""
    job = view.job
    cs = session.cluster
    dom = cs.domain(job.selector)
    with Statement(session.log) as st:
        got = place_gang(session, view) if admits() else None
        if got is not None:  # room appeared earlier in this cycle: no victim needed
            session.bind(view, got[0], got[1], action)
            st.commit()
            return True
        taken: list[JobView] = []
        origin: dict[int, set[tuple[int, int]]] = {}  # victim → the nodes it held before removal
        got = None
        looked = 0
        chosen = {v.idx for v in candidates} if job.request.gpus else set()
        for v in candidates:
            if not session.evictable(v):
                continue
            if chosen and not _frees_a_device(session, v, chosen):
                continue  # a whole-GPU gang gains nothing from a share of a device kept busy
            looked += 1
            if max_candidates is not None and looked > max_candidates:
                break
            held = _held(v)  # before removal: a move changes the job's slots
            if not remove(v):
                continue
            taken.append(v)
            origin[v.idx] = held
            if not could_fit(dom, job.request, job.workers, job.same_node) or not admits():
                continue
            got = place_gang(session, view)
            if got is not None:
                break
        if got is None:
            return False
        used = {n for n, _ in got[0]}
        used_devices = {(n, d) for n, devs in got[0] for d in devs}
        used_devices |= {(n, -1) for n, devs in got[0] if not devs}
        needed = [v for v in taken if origin[v.idx] & used_devices]
        if len(needed) < len(taken):
            # second pass: only the victims on the devices the gang uses
            st.rollback()
            kept = [v for v in needed if remove(v)]
            if len(kept) == len(needed) and admits():
                got = place_gang(session, view, only=used)
            else:
                got = None
            if got is None:  # replay the first pass exactly
                st.rollback()
                for v in taken:
                    if not remove(v):
                        return False
                got = place_gang(session, view)
                if got is None or not admits():
                    return False
                needed = taken
            taken = needed
        waits = tuple(v.job.id for v in taken if v.idx in session.evictions)
        session.bind(view, got[0], got[1], action, waits)
        st.commit()
        return True


def protection_ends(session: Session) -> float:
    """Earliest future time a running job's minimum runtime ends, or the attained-service
    order may decide differently (a no-change cycle may decide differently from then on)."""
    now = session.now
    ends = (
        (v.job.started_at if v.job.started_at is not None else now) + v.job.min_runtime_s
        for v in session.jobs
        if v.status == RUNNING and v.job.preemptible and v.job.min_runtime_s > 0
    )
    future = min((t for t in ends if t > now), default=math.inf)
    return min(future, levels.next_change(
        ((v.job, v.status == RUNNING) for v in session.jobs if v.status in (RUNNING, PENDING)
         and session.q_order[v.leaf] == InQueueOrder.ATTAINED), now, session.config))
