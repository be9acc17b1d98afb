"""Reclaim: a queue below its fair share takes back resources lent to queues above theirs.

Only preemptible jobs past their minimum runtime are victims; a victim's queues (each level below
the point where the two paths meet) must stay at or above their fair share after the eviction, and
the reclaimer's must stay at or below theirs after the bind, on every contended resource the job
asks for. Together the two rules rule out ping-pong: after a reclaim neither side may reclaim back.

The search is bounded: a cheap count of what over-share queues hold rejects hopeless attempts,
candidates are ordered once per placement domain, each attempt looks at a bounded number of them,
and each cycle makes at most ``max_reclaim_attempts`` attempts.
"""

from __future__ import annotations

from collections.abc import Hashable

from fairpool.domain.resources import GPU_UNIT
from fairpool.scheduler.admission import admission_block, below_fair_share, reclaim_block
from fairpool.scheduler.codes import Action
from fairpool.scheduler.groups import Group
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.placement import try_place
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import JobView, Session
from fairpool.scheduler.victims import evict_to_fit, group_by_node, victims_by_leaf

#: Candidates one attempt may look at before giving up (they are ordered best node first):
#: a base, plus a few per GPU asked for, since a large gang may need one victim per GPU.
CANDIDATES_BASE = 64
CANDIDATES_PER_GPU = 4


def candidate_bound(session: Session, view: JobView) -> int:
    return CANDIDATES_BASE + CANDIDATES_PER_GPU * -(-session.request_total(view)[0] // GPU_UNIT)


def _diverging(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    return i


def reclaim_allowed(session: Session, reclaimer: JobView, victim: JobView) -> bool:
    """The two fair-share rules for one reclaimer/victim pair, at the current accounting."""
    req = session.request_total(reclaimer)
    i = _diverging(reclaimer.path, victim.path)
    if below_fair_share(session, reclaimer, reclaimer.path[i:]) is not None:
        return False
    acct = victim.acct
    for q in victim.path[i:]:
        a = session.q_alloc[q]
        fs = session.q_fs[q]
        for r in session.contended:
            if req[r] and acct[r] and a[r] - acct[r] < fs[r]:
                return False
    return True


def _excess(session: Session, leaf: int) -> int:
    """GPU a leaf holds above its fair share (what reclaim could take from it at most)."""
    return max(0, session.q_alloc[leaf][0] - session.q_fs[leaf][0])


def _size_key(view: JobView) -> tuple[Hashable, tuple[int, int]]:
    """(what must match, (size per worker, workers)): a gang at least as large in both, of the
    same kind, on the same nodes, for the same project, is at least as hard to reclaim for
    (another project could take the first one's jobs, so the project is part of the match)."""
    job = view.job
    r = job.request
    per_worker = r.gpus * GPU_UNIT if r.gpus else (
        r.fraction_milli if r.gpu_fraction is not None else r.gpu_memory_mib or 0)
    kind = "whole" if r.gpus else ("fraction" if r.gpu_fraction is not None else "memory")
    match = (view.leaf, kind, job.same_node, job.selector.key(), r.cpu, r.memory)
    return match, (per_worker, job.workers)


def _dominated(hopeless: dict[Hashable, list[tuple[int, int]]], view: JobView) -> bool:
    match, (size, workers) = _size_key(view)
    return any(size >= s and workers >= w for s, w in hopeless.get(match, ()))


def _remember(hopeless: dict[Hashable, list[tuple[int, int]]], view: JobView) -> None:
    match, size = _size_key(view)
    hopeless.setdefault(match, []).append(size)


class _Notes:
    """Appends why reclaim did not help to pending reasons, sharing one object per text (through
    the session, so a rollback takes the note back)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.made: dict[tuple[int, str], PendingReason] = {}

    def add(self, group: Group | None, view: JobView, text: str) -> None:
        """Note it on the group (its waiting jobs share the reason) or on the lone job."""
        base = group.reason if group is not None else self.session.reasons.get(view.idx)
        if base is None or base.message.endswith(text):
            return
        key = (id(base), text)
        note = self.made.get(key)
        if note is None:
            note = self.made[key] = PendingReason(base.code, f"{base.message}; {text}")
        if group is not None:
            self.session.set_group_reason(group, note)
        else:
            self.session.set_reason(view, note)


def reclaim(session: Session) -> None:
    if not session.contended:
        return
    by_leaf = victims_by_leaf(session)
    notes = _Notes(session)
    # kept across the rounds of a cycle: what found no victims keeps finding none until a
    # reclaim succeeds (which clears it)
    hopeless: dict[Hashable, list[tuple[int, int]]] = session.scratch.setdefault("hopeless", {})
    excess: dict[int, int] | None = None
    total_excess = 0
    shares: dict[tuple[int, tuple[int, ...]], str] = {}
    ordered: dict[Hashable, list[JobView]] = {}
    order = JobOrder(session)
    for view in order:
        if session.search_budget <= 0:
            break
        if admission_block(session, view) is not None:
            order.fail_group()
            continue
        over = below_fair_share(session, view, view.path[-1:])
        if over is not None:
            # allocations do not change while a queue is over its share; the text depends on
            # the job's size only through whether it alone is larger than the share
            key = (over, session.request_total(view))
            text = shares.get(key)
            if text is None:
                text = shares[key] = reclaim_block(session, view, over)
            notes.add(order.fail_group(), view, text)
            continue
        need = session.request_total(view)[0]
        if excess is None:  # only evictions change it; recomputed after each success
            excess = {q: e for q in by_leaf if (e := _excess(session, q)) > 0}
            total_excess = sum(excess.values())
        lendable = total_excess - excess.get(view.leaf, 0)
        if lendable + session.free_gpu(view) < need:
            notes.add(order.fail_group(), view,
                      "projects above their fair share do not hold enough to reclaim")
            continue
        # a gang that found no victims finds none for a larger gang of the same project either:
        # a reclaim only ever lowers what lenders hold above their share
        if try_place(session, view, Action.RECLAIM):  # room left over by earlier reclaims
            order.placed()
            continue
        if _dominated(hopeless, view):
            order.fail_group()
            continue
        r = view.job.request
        dom_key = (view.job.selector.key(), r.gpus, r.gpu_fraction, r.gpu_memory_mib)
        candidates = ordered.get(dom_key)
        if candidates is None:
            lenders = sorted(excess, key=lambda q: -session.share_ratio(q))
            # a job larger than its project's excess can never be taken without dropping the
            # project below its fair share (and excess only shrinks during reclaim)
            candidates = group_by_node(session, view, [
                v for q in lenders for v in by_leaf[q] if v.acct[0] <= excess[q]
            ])
            ordered[dom_key] = candidates
        session.search_budget -= 1
        project = session.queue_names[view.leaf]

        def remove(victim: JobView, reclaimer: JobView = view, project: str = project) -> bool:
            leaf = victim.leaf
            if (leaf == reclaimer.leaf  # quick test of the leaf-level rule first
                    or session.q_alloc[leaf][0] - victim.acct[0] < session.q_fs[leaf][0]
                    or not reclaim_allowed(session, reclaimer, victim)):
                return False
            session.evict(
                victim,
                Action.RECLAIM,
                f"reclaimed by project {project} (below its fair share) for job "
                f"{reclaimer.job.id}",
                reclaimer.job.id,
            )
            return True

        if evict_to_fit(session, view, Action.RECLAIM, candidates, remove,
                        max_candidates=candidate_bound(session, view)):
            order.placed()
            excess = None
            hopeless.clear()
        else:
            _remember(hopeless, view)
            notes.add(order.fail_group(), view, "reclaiming from projects above their "
                      "fair share would not free a large enough block")
