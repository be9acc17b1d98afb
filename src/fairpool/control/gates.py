"""What holds a waiting job back before the scheduler sees it: its dependencies, its array's
cap, and a backoff (``not_before``).

* :func:`admissible`: the jobs of the loop's view the scheduler may consider now. A job whose
  dependencies are not met (``deps_waiting``) is left out; of an array with a cap
  (``max_running``), only as many waiting tasks (lowest index first) as the cap leaves room for
  beside the tasks that hold resources; a job held back until ``not_before`` is left out until
  then.
* :class:`Dependencies`: reads the parents of jobs that wait for dependencies (when a job has
  finished since the last look) and decides, with :func:`fairpool.domain.dependencies.decide`,
  which are released, which can never be met (cancelled with that reason) and which still wait
  (their reason kept current).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fairpool.domain import Job
from fairpool.domain.dependencies import Need, Verdict, decide
from fairpool.domain.states import HOLDING_VALUES, PENDING_VALUES
from fairpool.store.db import Store
from fairpool.store.models import JobRow
from fairpool.store.parents import parent_states


def admissible(jobs: Iterable[Job], live: Mapping[str, JobRow], now: float
               ) -> tuple[list[Job], bool]:
    """The jobs the scheduler may see, and whether one was left out only for its time (a
    snapshot without it must not be reused once that time comes)."""
    out: list[Job] = []
    timed = False
    capped: dict[str, list[tuple[int, Job]]] = {}
    holding: dict[str, int] = {}
    for job in jobs:
        row = live[job.id]
        if row.array_cap is not None:
            if row.state in HOLDING_VALUES:
                holding[row.array_id or ""] = holding.get(row.array_id or "", 0) + 1
            elif not row.deps_waiting and (row.not_before or 0) <= now:
                capped.setdefault(row.array_id or "", []).append((row.array_index or 0, job))
                continue
        if job.pending:
            if row.deps_waiting:
                continue
            if (row.not_before or 0) > now:
                timed = True
                continue
        out.append(job)
    for array_id, waiting in capped.items():
        cap = live[waiting[0][1].id].array_cap or 0
        room = max(0, cap - holding.get(array_id, 0))
        if room:
            waiting.sort(key=lambda item: item[0])
            out.extend(job for _, job in waiting[:room])
    return out, timed


@dataclass(frozen=True, slots=True)
class Unmet:
    """A waiting job whose dependencies can never be met: it is cancelled with ``message``."""

    job_id: str
    message: str


@dataclass(slots=True)
class Verdicts:
    released: list[str] = field(default_factory=list)
    unmet: list[Unmet] = field(default_factory=list)
    reasons: list[dict[str, object]] = field(default_factory=list)


class Dependencies:
    """Looks at the parents of waiting dependents when something has finished since the last
    look (``due``), not on every iteration."""

    def __init__(self) -> None:
        self.due = True  # at start: parents may have finished while the server was down

    def check(self, store: Store, live: Iterable[JobRow]) -> Verdicts:
        out = Verdicts()
        if not self.due:
            return out
        self.due = False
        waiting = [r for r in live if r.deps_waiting and r.state in PENDING_VALUES]
        if not waiting:
            return out
        needs = {r.id: [Need.of(d) for d in r.depends or ()] for r in waiting}
        with store.session() as s:
            states = parent_states(s, (n for each in needs.values() for n in each))
        for row in waiting:
            decision = decide(needs[row.id], states)
            if decision.verdict == Verdict.MET:
                out.released.append(row.id)
            elif decision.verdict == Verdict.NEVER:
                out.unmet.append(Unmet(row.id, decision.text))
            elif decision.text != row.reason:
                row.reason = decision.text
                out.reasons.append({"id": row.id, "reason": decision.text,
                                    "reason_code": row.reason_code})
        return out
