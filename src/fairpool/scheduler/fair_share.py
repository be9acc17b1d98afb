"""Fair share per resource, top-down the queue tree, by water-filling.

At every level the parent's share is divided among its children, per resource:
1. each child first gets ``min(quota, demand)`` (its demand already capped by its limit); if the
   quotas alone exceed what the parent has, they are themselves water-filled, higher priority
   first, in proportion to quota;
2. the remainder goes to higher priorities first, then in rounds proportional to
   ``over_quota_weight`` among the children still wanting more, never above demand or limit;
3. whole units (one GPU, one CPU) are floored and the leftovers go by largest remainder.
With time-aware fair share, past usage scales the over-quota weights of step 2
(:mod:`fairpool.scheduler.usage_share`). This reproduces KAI-Scheduler's reference results
(see tests/unit/test_fair_share.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fairpool.domain.queue import ROOT, QueueTree
from fairpool.domain.resources import CPU_UNIT, GPU_UNIT, Resources
from fairpool.scheduler.usage_share import adjusted_weight

#: Granularity of surplus rounds per resource (gpu, gpu_memory, cpu, memory).
UNITS = (GPU_UNIT, 1, CPU_UNIT, 1)


@dataclass(frozen=True, slots=True)
class Claimant:
    """One child competing for its parent's share of a single resource."""

    quota: int
    demand: int  # already capped by the child's limit
    weight: int
    priority: int


def water_fill(total: int, wants: Sequence[int], weights: Sequence[int], unit: int) -> list[int]:
    """Split ``total`` in proportion to ``weights``, never giving anyone more than it wants.

    Children whose want is below their proportional slice are satisfied and leave the round; the
    rest is split proportionally, floored to ``unit``, leftovers by largest remainder (then by
    weight, then by position) one unit at a time, and finally in base units."""
    n = len(wants)
    given = [0] * n
    active = [i for i in range(n) if wants[i] > 0 and weights[i] > 0]
    remaining = total
    while remaining > 0 and active:
        weight_sum = sum(weights[i] for i in active)
        capped = [i for i in active if wants[i] - given[i] <= remaining * weights[i] / weight_sum]
        if capped:
            for i in capped:
                remaining -= wants[i] - given[i]
                given[i] = wants[i]
            active = [i for i in active if given[i] < wants[i]]
            continue
        # nobody is capped: proportional split of everything that remains
        slices = {}
        for i in active:
            exact_num = remaining * weights[i]
            slices[i] = (exact_num // (weight_sum * unit)) * unit
        left = remaining - sum(slices.values())
        order = sorted(
            active,
            key=lambda i: (-(remaining * weights[i] - slices[i] * weight_sum), -weights[i], i),
        )
        progressed = True
        while left >= unit and progressed:  # whole units, one each, largest remainder first
            progressed = False
            for i in order:
                room = wants[i] - given[i] - slices[i]
                if left < unit or room <= 0:
                    continue
                extra = min(unit, room)
                slices[i] += extra
                left -= extra
                progressed = True
        for i in order:  # what is left is less than a unit: largest remainder takes it
            room = wants[i] - given[i] - slices[i]
            if left <= 0:
                break
            extra = min(left, room)
            if extra > 0:
                slices[i] += extra
                left -= extra
        for i, amount in slices.items():
            given[i] += amount
        remaining = left
        active = [i for i in active if given[i] < wants[i]] if left > 0 else []
    return given


def _by_priority(
    total: int, wants: Sequence[int], weights: Sequence[int], prios: Sequence[int], unit: int
) -> list[int]:
    """Water-fill ``total`` group by group, highest priority first."""
    given = [0] * len(wants)
    remaining = total
    for prio in sorted(set(prios), reverse=True):
        group = [i for i in range(len(wants)) if prios[i] == prio]
        got = water_fill(remaining, [wants[i] for i in group], [weights[i] for i in group], unit)
        for i, amount in zip(group, got, strict=True):
            given[i] += amount
            remaining -= amount
        if remaining <= 0:
            break
    return given


def divide(total: int, claimants: Sequence[Claimant], unit: int) -> list[int]:
    """Divide one resource of a parent among its children (steps 1–3 of the module doc)."""
    base = [min(c.quota, c.demand) for c in claimants]
    prios = [c.priority for c in claimants]
    if sum(base) > total:
        return _by_priority(total, base, base, prios, unit)
    surplus_wants = [c.demand - b for c, b in zip(claimants, base, strict=True)]
    extra = _by_priority(
        total - sum(base), surplus_wants, [c.weight for c in claimants], prios, unit
    )
    return [b + e for b, e in zip(base, extra, strict=True)]


def capped_demands(tree: QueueTree, leaf_demand: Mapping[str, Resources]) -> dict[str, Resources]:
    """Demand of every queue: leaves as given, parents the sum of their children; each capped by
    its own limit."""
    out: dict[str, Resources] = {}

    def visit(name: str) -> Resources:
        kids = tree.children[name]
        if kids:
            total = Resources.ZERO
            for child in kids:
                total = total + visit(child)
        else:
            total = leaf_demand.get(name, Resources.ZERO)
        if name != ROOT:
            total = total.min(tree.queues[name].limit)
        out[name] = total
        return total

    visit(ROOT)
    return out


def fair_shares(
    tree: QueueTree, capacity: Resources, leaf_demand: Mapping[str, Resources],
    weight_factor: Mapping[str, float] | None = None,
) -> dict[str, Resources]:
    """Fair share of every queue (and of the root, ``""``) for the given cluster capacity and
    per-leaf demand (allocated plus pending). ``weight_factor``: what past usage makes of each
    queue's over-quota weight (:mod:`fairpool.scheduler.usage_share`; none: the weights)."""
    demand = capped_demands(tree, leaf_demand)
    weights = {n: q.over_quota_weight if weight_factor is None
               else adjusted_weight(q.over_quota_weight, weight_factor.get(n, 1.0))
               for n, q in tree.queues.items()}
    shares: dict[str, Resources] = {ROOT: capacity.min(demand[ROOT])}
    stack = [ROOT]
    while stack:
        parent = stack.pop()
        kids = tree.children[parent]
        if not kids:
            continue
        parent_share = shares[parent].as_tuple()
        per_resource: list[list[int]] = []
        for r, unit in enumerate(UNITS):
            claimants = [
                Claimant(
                    quota=tree.queues[k].quota.as_tuple()[r],
                    demand=demand[k].as_tuple()[r],
                    weight=weights[k],
                    priority=tree.queues[k].priority,
                )
                for k in kids
            ]
            per_resource.append(divide(parent_share[r], claimants, unit))
        for idx, kid in enumerate(kids):
            shares[kid] = Resources(*(per_resource[r][idx] for r in range(4)))
            stack.append(kid)
    return shares
