"""Time-aware fair share: past usage, decayed, lowers the over-quota share of queues that used
more than theirs (as KAI-Scheduler's time-aware fairness and Slurm's fair-share factor).

*Decayed usage* of a queue at time ``now``: every GPU-second it held in the last ``window_s``
seconds, weighted ``0.5 ** (age / half_life_s)`` (a GPU-hour used one half-life ago counts half).
A span of ``g`` GPUs held from ``a`` to ``b`` contributes ``g * h / ln 2 * (2^-(now-b)/h -
2^-(now-a)/h)`` after clipping to the window. A department's is the sum of its projects'.

*Normalised usage* ``n``: the decayed usage divided by what the whole pool could have delivered
in the same weighting (its GPUs for the whole window), so a little use of an idle pool weighs
little: ``n`` is between 0 and 1 and the pool's queues add up to at most 1.

*Effect*: among siblings, a queue's over-quota weight ``w`` is multiplied by ``2 ** (-k * n /
s)``, where ``s`` is its part of the pool by weight: ``w / (sum of the siblings' weights)``
times its parent's part (1 for the pool), as Slurm's fair-share factor does down the tree, and
``k`` (``SchedulerConfig.usage_k``, KAI's kValue) how much the past counts. Two queues of equal
weight that used the same get the same factor (their split does not change); one that used half
the pool more than a sibling of equal weight gets ``2 ** -1``: half the weight, for ``k = 1``.
Quotas are not touched (a guarantee does not depend on the past), nor queue priorities.

Worked example: two projects of quota 1 and weight 1 in a pool of 8 GPUs, half-life 1 h, no
window limit. Project a held 8 GPUs for the last hour, b nothing. a's decayed usage is ``8 *
3600 / ln 2 * (1 - 0.5) = 20,776`` GPU-s; the potential is ``8 * 3600 / ln 2 = 41,552``; ``n_a =
0.5``, ``s_a = 0.5``, factor ``2 ** -1 = 0.5``; b's factor is 1. With both wanting all 8, the 6
GPUs beyond the quotas go 2 to a and 4 to b (weights 0.5 : 1): fair shares 3 and 5, where they
were 4 and 4. Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from fairpool.domain.queue import ROOT, QueueTree
from fairpool.scheduler.snapshot import SchedulerConfig

#: a factor never goes below this, so that a queue's weight never drops to 0 (it would get no
#: over-quota share at all, however idle the pool)
MIN_FACTOR = 1e-3
#: over-quota weights are integers: the adjusted weight is ``round(weight * factor * SCALE)``
SCALE = 1000

Span = tuple[str, float, float, float]  # project, GPUs, start, end


def decayed_gpu_s(spans: Iterable[Span], now: float, half_life_s: float,
                  window_s: float | None) -> dict[str, float]:
    """Decayed GPU-seconds per project of spans of usage (see the module doc); a span that is
    still open ends at ``now``."""
    rate = math.log(2) / half_life_s
    start_of_window = -math.inf if window_s is None else now - window_s
    out: dict[str, float] = {}
    for project, gpus, start, end in spans:
        a, b = max(start, start_of_window), min(end, now)
        if b <= a or gpus <= 0:
            continue
        got = gpus * (math.exp(-rate * (now - b)) - math.exp(-rate * (now - a))) / rate
        out[project] = out.get(project, 0.0) + got
    return out


def potential_gpu_s(gpus: float, half_life_s: float, window_s: float | None) -> float:
    """Decayed GPU-seconds a pool of ``gpus`` GPUs delivers if busy for the whole window."""
    rate = math.log(2) / half_life_s
    full = 1.0 if window_s is None else 1.0 - math.exp(-rate * window_s)
    return gpus * full / rate


def weight_factors(tree: QueueTree, leaf_usage: Mapping[str, float], potential: float,
                   k: float) -> dict[str, float]:
    """The factor of every queue's over-quota weight (1 for a queue whose siblings have no
    weight, and everywhere when ``k`` is 0 or nothing was used)."""
    usage: dict[str, float] = {}

    def visit(name: str) -> float:
        kids = tree.children[name]
        total = sum(visit(c) for c in kids) if kids else leaf_usage.get(name, 0.0)
        usage[name] = total
        return total

    visit(ROOT)
    factors = dict.fromkeys(tree.queues, 1.0)
    if k <= 0 or potential <= 0 or usage[ROOT] <= 0:
        return factors
    part = {ROOT: 1.0}  # each queue's part of the pool: its weight's part, down the path
    stack = [ROOT]
    while stack:
        parent = stack.pop()
        kids = tree.children[parent]
        weights = {c: tree.queues[c].over_quota_weight for c in kids}
        total = sum(weights.values())
        for c in kids:
            part[c] = part[parent] * (weights[c] / total if total > 0 else 0.0)
            stack.append(c)
            if part[c] > 0:
                factors[c] = max(MIN_FACTOR, 2.0 ** (-k * (usage[c] / potential) / part[c]))
    return factors


def factors_for(tree: QueueTree, cfg: SchedulerConfig, leaf_usage: Mapping[str, float],
                gpus: float) -> dict[str, float] | None:
    """The weight factors a cycle uses, or None when the time-aware fair share is off (no
    ``usage_k``) or there is no usage."""
    if cfg.usage_k <= 0 or not leaf_usage:
        return None
    potential = potential_gpu_s(gpus, cfg.usage_half_life_s, cfg.usage_window_s)
    return weight_factors(tree, leaf_usage, potential, cfg.usage_k)


def adjusted_weight(weight: int, factor: float) -> int:
    """The integer over-quota weight the fair share divides by (0 stays 0)."""
    if weight <= 0:
        return 0
    return max(1, round(weight * factor * SCALE))
