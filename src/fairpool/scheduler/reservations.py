"""Reservations and backfill for large gangs (as Slurm's backfill scheduler, Volcano's reserve).

Without them a large gang waits for ever behind a stream of small jobs: whenever a few GPUs come
free, a small job takes them before enough are free together for the gang.

Nomenclature:

- *gang*: a waiting job of whole-GPU workers with several workers, or asking for at least
  ``SchedulerConfig.reserve_min_gpus`` GPUs;
- *run time* of a job: its ``max_runtime_s``, else its project's expected run time from history
  (``Snapshot.runtime_estimates``), else unknown;
- *expected end* of a job holding resources: when it started (now, if not yet) plus its run
  time; a job past it, or stopping, ends now; unknown: never, for planning;
- *reservation*: for a gang that has waited ``reserve_after_s`` (since it was queued), the
  devices it will get, chosen where it could start earliest given the expected ends, and that
  ``start`` time. Among devices free by then it takes those that come free latest (held by
  running jobs rather than idle now), on the nodes with the most room;
- *hold*: the reserved devices that are free now are occupied in the cycle's cluster state, so
  that no action places another job on them. They are released for the gang itself, and for a
  *backfill* job: one whose own expected end (now + its run time) is no later than the start.

Reservations are recomputed from the snapshot in every allocate pass (nothing is stored between
cycles): the same snapshot gives the same choice, and a backfill job never moves a start, since
it ends before it. At most ``max_reservations`` are made per cycle, for the first gangs in fair
order that may hold them: admitted by their queues, and within their fair share once placed (a
gang above it would be reclaimed soon after it started). Every change goes through the session's
undo log, so a statement around allocate rolls reservations back too.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from fairpool.domain.job import Job
from fairpool.domain.resources import GPU_UNIT
from fairpool.domain.words import duration
from fairpool.scheduler.admission import admission_block
from fairpool.scheduler.codes import Action, PendingCode
from fairpool.scheduler.groups import Group
from fairpool.scheduler.ordering import JobOrder
from fairpool.scheduler.placement import place_gang
from fairpool.scheduler.plan import PendingReason
from fairpool.scheduler.session import JobView, Session
from fairpool.scheduler.snapshot import Snapshot
from fairpool.scheduler.statement import Statement

#: gangs looked at per reservation to make before giving up (each costs a sort of the devices)
EXAMINED_PER_RESERVATION = 8
INF = math.inf
Hold = tuple[int, int, int, int]  # node, device position, milli-GPUs held, MiB held
_SCRATCH = "reservations"


def run_time(snapshot: Snapshot, job: Job) -> tuple[float | None, bool]:
    """(seconds, whether from the project's estimate); (None, False) when unknown. The start-time
    forecast (:mod:`fairpool.scheduler.forecast`) uses the same."""
    if job.max_runtime_s is not None:
        return job.max_runtime_s, False
    est = snapshot.runtime_estimates.get(job.project)
    return (est, True) if est is not None else (None, False)


def is_gang(session: Session, job: Job) -> bool:
    req = job.request
    return req.gpus > 0 and (job.workers > 1
                             or req.gpus * job.workers >= session.config.reserve_min_gpus)


def waiting_since(job: Job) -> float:
    return job.queued_at if job.queued_at is not None else job.submit_time


@dataclass(slots=True)
class Reservation:
    gang: JobView
    start: float
    devices: tuple[tuple[int, int], ...]  # (node, device position), every device it will get
    held: tuple[Hold, ...]  # the part of them free now, occupied for it in this cycle
    waits_for: tuple[str, ...]  # the jobs whose end it waits for
    by_estimate: bool  # some of those ends come from a project's estimate

    def where(self, session: Session) -> str:
        return _where(session, self.devices)

    def gang_text(self, session: Session) -> str:
        job = self.gang.job
        waited = session.now - waiting_since(job)
        return (f"a {job.request.gpus * job.workers}-GPU gang waiting for {duration(waited)}, "
                f"expected to start in about {duration(self.start - session.now)}")


def _where(session: Session, devices: Iterable[tuple[int, int]]) -> str:
    """``n3, n4 (GPUs 2, 3)``: node names, with the device indexes unless it is all of them."""
    cs = session.cluster
    per_node: dict[int, list[int]] = {}
    for n, d in devices:
        per_node.setdefault(n, []).append(d)
    parts = []
    for n in sorted(per_node):
        devs = sorted(per_node[n])
        name = cs.nodes[n].name
        if len(devs) == len(cs.dev_free[n]):
            parts.append(name)
        else:
            idx = ", ".join(str(cs.device_index(n, d)) for d in devs)
            parts.append(f"{name} ({'GPU' if len(devs) == 1 else 'GPUs'} {idx})")
    return ", ".join(parts)


class _Timeline:
    """When each device and each node's CPU/memory come free, from the expected ends of the
    jobs holding them (built once per allocate pass; reservations add their own)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        now = session.now
        cs = session.cluster
        self.dev_end: list[list[float]] = [[now] * len(f) for f in cs.dev_free]
        self.dev_by: list[list[list[tuple[str, bool]]]] = [[[] for _ in f] for f in cs.dev_free]
        self.host: list[list[tuple[float, int, int]]] = [[] for _ in cs.dev_free]
        self.ends: list[tuple[JobView, float]] = []
        for view in session.holders():
            end, estimated = self.expected_end(view)
            self.ends.append((view, end))
            req = view.job.request
            for n, devs in view.slots:
                self.host[n].append((end, req.cpu, req.memory))
                for d in devs:
                    self.dev_end[n][d] = max(self.dev_end[n][d], end)
                    self.dev_by[n][d].append((view.job.id, estimated))

    def expected_end(self, view: JobView) -> tuple[float, bool]:
        now = self.session.now
        job = view.job
        if job.stopping:
            return now, False
        runtime, estimated = run_time(self.session.snapshot, job)
        if runtime is None:
            return INF, False
        placed_now = view.idx in self.session.binds or job.started_at is None
        started = now if placed_now else job.started_at
        assert started is not None
        return max(now, started + runtime), estimated

    def earliest(self, view: JobView) -> tuple[float, list[tuple[int, int]]] | None:
        """The earliest time the gang could start and the devices it would take then; None if
        that is never (unknown ends) or it does not fit on its nodes even empty."""
        session = self.session
        cs = session.cluster
        job = view.job
        req = job.request
        g, workers = req.gpus, job.workers
        dom = cs.domain(job.selector)
        nodes = sorted(dom.nodes)
        events: list[tuple[float, int, int]] = []  # (time, node, device or -1 for host)
        elig = {n: 0 for n in nodes}
        cpu = {n: cs.cpu_free[n] for n in nodes}
        mem = {n: cs.mem_free[n] for n in nodes}
        for n in nodes:
            for d, end in enumerate(self.dev_end[n]):
                if end < INF:
                    events.append((end, n, d))
            for i, (end, _, _) in enumerate(self.host[n]):
                if end < INF:
                    events.append((end, n, -1 - i))
        events.sort()

        def fit(n: int) -> int:
            k = elig[n] // g
            if req.cpu:
                k = min(k, cpu[n] // req.cpu)
            if req.memory:
                k = min(k, mem[n] // req.memory)
            return max(0, k)

        total = 0
        fits = {n: 0 for n in nodes}
        i = 0
        while i < len(events):
            t = events[i][0]
            changed = set()
            while i < len(events) and events[i][0] == t:
                _, n, d = events[i]
                if d >= 0:
                    elig[n] += 1
                else:
                    _, c, m = self.host[n][-1 - d]
                    cpu[n] += c
                    mem[n] += m
                changed.add(n)
                i += 1
            for n in changed:
                f = fit(n)
                total += min(f, workers) - min(fits[n], workers)
                fits[n] = f
            ready = (any(fits[n] >= workers for n in changed) if job.same_node and workers > 1
                     else total >= workers)
            if ready:
                return t, self._choose(view, t, fits)
        return None

    def _choose(self, view: JobView, t: float, fits: dict[int, int]) -> list[tuple[int, int]]:
        job = view.job
        g, workers = job.request.gpus, job.workers
        now = self.session.now

        def picks(n: int, k: int) -> list[tuple[int, int]]:
            ends = self.dev_end[n]
            ok = sorted((d for d in range(len(ends)) if ends[d] <= t),
                        key=lambda d: (-ends[d], d))  # latest free first: least idle held
            return [(n, d) for d in ok[:k * g]]

        def idle(n: int, k: int) -> int:
            return sum(1 for m, d in picks(n, k) if self.dev_end[m][d] <= now)

        if job.same_node and workers > 1:
            best = min((n for n, f in fits.items() if f >= workers),
                       key=lambda n: (fits[n], idle(n, workers), n))
            return picks(best, workers)
        chosen: list[tuple[int, int]] = []
        left = workers
        for n in sorted((n for n, f in fits.items() if f > 0),
                        key=lambda n: (-min(fits[n], workers), idle(n, min(fits[n], left)), n)):
            k = min(fits[n], left)
            chosen.extend(picks(n, k))
            left -= k
            if not left:
                break
        return chosen

    def within_share(self, view: JobView, start: float) -> bool:
        """Whether the gang keeps its queues within their fair share once it starts, counting
        out what their jobs that end by then hold."""
        session = self.session
        req = session.request_total(view)
        freed: dict[int, list[int]] = {q: [0, 0, 0, 0] for q in view.path}
        for holder, end in self.ends:
            if end <= start:
                for q in holder.path:
                    f = freed.get(q)
                    if f is not None:
                        for r in range(4):
                            f[r] += holder.acct[r]
        for q in view.path:
            a, fs, f = session.q_alloc[q], session.q_fs[q], freed[q]
            if any(req[r] and a[r] - f[r] + req[r] > fs[r] for r in session.contended):
                return False
        return True

    def reserve(self, r: Reservation) -> None:
        """Later gangs see the reserved devices busy until this gang's expected end."""
        runtime, estimated = run_time(self.session.snapshot, r.gang.job)
        end = INF if runtime is None else r.start + runtime
        for n, d in r.devices:
            self.dev_end[n][d] = end
            self.dev_by[n][d] = [(r.gang.job.id, estimated)]


class Book:
    """This allocate pass's reservations, their holds, and the backfill caches."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.reservations: list[Reservation] = []
        self.by_gang: dict[int, Reservation] = {}
        self.reasons: dict[int, PendingReason] = {}  # own reasons set here (cleared next pass)
        self.due = INF  # the next time a waiting gang passes the bound or a start is reached
        #: (shape, reservations it may use) → (epoch, reservations that block it, or None if
        #: it does not fit even with every hold released)
        self._tried: dict[Hashable, tuple[int, tuple[Reservation, ...] | None]] = {}

    # -- holds (logged) ----------------------------------------------------------------------
    def _set_held(self, r: Reservation, held: tuple[Hold, ...]) -> None:
        old = r.held
        r.held = held
        self.session.log.push(setattr, r, "held", old)

    def release(self, rs: Iterable[Reservation]) -> None:
        cs = self.session.cluster
        for r in rs:
            for n, d, share, gmem in r.held:
                cs.release(n, (d,), share, gmem, 0, 0)

    def rehold(self, rs: Iterable[Reservation]) -> None:
        """Occupy again what is still free of the devices each reservation held (a backfill job
        may have taken some, or part of one)."""
        cs = self.session.cluster
        for r in rs:
            held = []
            for n, d, _, _ in r.held:
                share, gmem = cs.dev_free[n][d], cs.dev_mem_free[n][d]
                if share > 0:
                    cs.occupy(n, (d,), share, gmem, 0, 0)
                    held.append((n, d, share, gmem))
            self._set_held(r, tuple(held))

    @property
    def holding(self) -> bool:
        return any(r.held for r in self.reservations)

    def note(self, view: JobView, reason: PendingReason) -> None:
        self.session.set_reason(view, reason)
        self.reasons[view.idx] = reason

    # -- the gang itself ---------------------------------------------------------------------
    def place_own(self, r: Reservation) -> bool:
        """Place the gang with its own holds released; the leftovers are free for all then."""
        session = self.session
        view = r.gang
        with Statement(session.log) as st:
            self.release((r,))
            got = place_gang(session, view)
            if got is None:
                return False
            session.bind(view, got[0], got[1], Action.ALLOCATE)
            self._set_held(r, ())
            st.commit()
        session.epoch += 1  # capacity was released: "cannot fit" caches are stale
        return True

    def own_reason(self, r: Reservation) -> PendingReason:
        now = self.session.now
        text = (f"reserved {r.where(self.session)} for this job; expected to start in about "
                f"{duration(r.start - now)}")
        w = r.waits_for
        if w:
            names = ", ".join(w[:5]) + (f" and {len(w) - 5} more" if len(w) > 5 else "")
            one = len(w) == 1
            basis = ("its project's expected run time" if one else "their projects' estimates"
                     ) if r.by_estimate else ("its max runtime" if one else "their max runtime")
            text += f" when {'job' if one else 'jobs'} {names} {'ends' if one else 'end'} " \
                    f"(by {basis})"
        return PendingReason(PendingCode.NO_CAPACITY, text)

    # -- backfill ----------------------------------------------------------------------------
    def backfill(self, view: JobView) -> bool | PendingReason | None:
        """For a job that does not fit on the capacity no reservation holds: True if it was
        placed as a backfill job; a ``RESERVED`` reason if it would fit on reserved devices but
        ends after their start; None if it does not fit even there (nothing to say)."""
        session = self.session
        runtime, estimated = run_time(session.snapshot, view.job)
        end = INF if runtime is None else session.now + runtime
        live = [r for r in self.reservations if r.held]
        allowed = tuple(r for r in live if end <= r.start)
        key = (session.shape(view), tuple(id(r) for r in allowed))
        cached = self._tried.get(key)
        if cached is not None and cached[0] == session.epoch:
            blockers = cached[1]
        else:
            if allowed and self._try(view, allowed):
                return True
            blockers = self._blockers(view, live, allowed) if len(allowed) < len(live) else None
            self._tried[key] = (session.epoch, blockers)
        if blockers is None:
            return None
        return self._refusal(view, blockers, runtime, estimated)

    def _try(self, view: JobView, allowed: tuple[Reservation, ...]) -> bool:
        session = self.session
        with Statement(session.log) as st:
            self.release(allowed)
            got = place_gang(session, view)
            if got is None:
                return False
            session.bind(view, got[0], got[1], Action.ALLOCATE)
            st.commit()
        self.rehold(allowed)
        return True

    def _blockers(self, view: JobView, live: list[Reservation],
                  allowed: tuple[Reservation, ...]) -> tuple[Reservation, ...] | None:
        """The reservations whose holds the job would take if it might take all (None: it does
        not fit even then). Tried and rolled back."""
        session = self.session
        with Statement(session.log):
            self.release(live)
            got = place_gang(session, view)
        if got is None:
            return None
        used = {(n, d) for n, devs in got[0] for d in devs}
        blocked = [r for r in live if r not in allowed]
        hit = tuple(r for r in blocked if any((n, d) in used for n, d, _, _ in r.held))
        return hit or None  # (none: it would fit without them, so allocate placed it)

    def _refusal(self, view: JobView, blockers: tuple[Reservation, ...],
                 runtime: float | None, estimated: bool) -> PendingReason:
        session = self.session
        first = min(blockers, key=lambda r: r.start)
        window = max(0.0, first.start - session.now)
        held = [(n, d) for r in blockers for n, d, _, _ in r.held]
        names = ", ".join(r.gang.job.id for r in blockers)
        whose = "; ".join(r.gang_text(session) for r in blockers)
        if runtime is None:
            own = (f"this job declares no max runtime and project {view.job.project} has no "
                   "expected run time")
        else:
            what = (f"project {view.job.project}'s expected run time" if estimated
                    else "this job's max runtime")
            own = f"{what} ({duration(runtime)}) ends after that"
        return PendingReason(
            PendingCode.RESERVED,
            f"waiting: GPUs on {_where(session, held)} are reserved for "
            f"{'job' if len(blockers) == 1 else 'jobs'} {names} ({whose}); {own}: a job with "
            f"max runtime under {duration(window)} could run now",
        )


def _candidates(session: Session) -> Iterable[JobView]:
    """Waiting gangs that have waited long enough, in fair order at the start of the pass."""
    bound = session.config.reserve_after_s
    assert bound is not None
    now = session.now

    def include(group: Group) -> bool:
        return bool(group.jobs) and is_gang(session, group.jobs[0].job)

    order = JobOrder(session, include)
    for view in order:
        job = view.job
        if not is_gang(session, job):  # (the global orders do not filter by group)
            continue
        if now - waiting_since(job) >= bound:
            yield view


def _next_due(session: Session, book: Book) -> float:
    bound = session.config.reserve_after_s
    assert bound is not None
    now = session.now
    due = min((r.start for r in book.reservations if r.start > now), default=INF)
    if bound > 0:
        for view in session.waiting():
            t = waiting_since(view.job) + bound
            if now < t < due and is_gang(session, view.job):
                due = t
    return due


def prepare(session: Session) -> Book | None:
    """The pass's reservations, made and held (those of an earlier pass of this cycle are
    released first, with the reasons they gave); None when reservations are off."""
    cfg = session.config
    if cfg.reserve_after_s is None or cfg.max_reservations <= 0:
        return None
    old: Book | None = session.scratch.get(_SCRATCH)
    if old is not None:
        old.release(old.reservations)
        for r in old.reservations:
            old._set_held(r, ())
        for idx, reason in old.reasons.items():
            if session.reasons.get(idx) is reason:
                session.clear_reason(session.jobs[idx])
    book = Book(session)
    session.scratch[_SCRATCH] = book
    session.log.push(session.scratch.__setitem__, _SCRATCH, old)
    timeline: _Timeline | None = None
    examined = 0
    limit = EXAMINED_PER_RESERVATION * cfg.max_reservations
    cs = session.cluster
    for view in _candidates(session):
        if len(book.reservations) >= cfg.max_reservations or examined >= limit:
            break
        if admission_block(session, view) is not None:
            continue
        examined += 1
        if timeline is None:
            timeline = _Timeline(session)
        found = timeline.earliest(view)
        if found is None:
            continue  # never, for planning: the jobs in its way have no known end
        start, devices = found
        if start <= session.now and all(cs.dev_free[n][d] == GPU_UNIT for n, d in devices):
            continue  # it fits now: allocate places it
        if not timeline.within_share(view, start):
            continue
        waits: dict[str, float] = {}
        estimated = False
        held: list[Hold] = []
        for n, d in devices:
            for job_id, est in timeline.dev_by[n][d]:
                if timeline.dev_end[n][d] > session.now:
                    waits[job_id] = min(waits.get(job_id, INF), timeline.dev_end[n][d])
                    estimated |= est
            if cs.dev_free[n][d] == GPU_UNIT:
                held.append((n, d, GPU_UNIT, cs.dev_mem_free[n][d]))
        r = Reservation(view, start, tuple(devices), (),
                        tuple(sorted(waits, key=lambda j: (waits[j], j))), estimated)
        book.reservations.append(r)
        book.by_gang[view.idx] = r
        for n, d, share, gmem in held:
            cs.occupy(n, (d,), share, gmem, 0, 0)
        book._set_held(r, tuple(held))
        timeline.reserve(r)
    book.due = _next_due(session, book)
    return book


def next_change(session: Session) -> float:
    """When the cycle's reservations may change with no event (a waiting gang passes the bound,
    or a start is reached): a plan is valid until then."""
    book: Book | None = session.scratch.get(_SCRATCH)
    return INF if book is None else book.due
