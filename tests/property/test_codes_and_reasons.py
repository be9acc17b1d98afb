"""Property tests for the scheduler's codes and its pending reasons: every code a cycle emits is
an enum member (with the stored string value), and rolling back a statement in which actions ran
restores every pending reason exactly, alongside the rest of the session."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairpool.scheduler import Action, PendingCode, QueueOrder, SchedulerConfig, Snapshot, schedule
from fairpool.scheduler.actions.allocate import allocate
from fairpool.scheduler.actions.consolidate import consolidate
from fairpool.scheduler.actions.preempt import preempt
from fairpool.scheduler.actions.reclaim import reclaim
from fairpool.scheduler.apply import apply_plan
from fairpool.scheduler.plan import Plan
from fairpool.scheduler.session import Session
from fairpool.scheduler.statement import Statement
from tests.property.strategies import scenarios

#: derandomized like test_invariants.py: the same examples on every run
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

configs = st.builds(
    SchedulerConfig,
    order=st.sampled_from(list(QueueOrder)),
    lend_idle=st.booleans(),
)


def assert_typed(plan: Plan) -> None:
    for b in plan.binds:
        assert type(b.action) is Action, b
    for e in plan.evictions:
        assert type(e.action) is Action and e.action is not Action.ALLOCATE, e
    for job_id, reason in plan.pending.items():
        assert type(reason.code) is PendingCode, (job_id, reason)


@FAST
@given(scenarios(), configs)
def test_every_code_a_cycle_emits_is_an_enum_member(snap: Snapshot,
                                                    config: SchedulerConfig) -> None:
    plan = schedule(snap, config)
    assert_typed(plan)
    assert_typed(schedule(apply_plan(snap, plan), config))  # the next cycle too


def state(session: Session) -> object:
    groups = {k: g.reason for k, g in session.groups.items() if g.reason is not None}
    return (dict(session.reasons), groups, dict(session.to_plan().pending),
            session.cluster.fingerprint(), [list(a) for a in session.q_alloc],
            [list(a) for a in session.q_alloc_np],
            [(v.status, v.placements, v.acct) for v in session.jobs],
            dict(session.binds), dict(session.evictions), [set(s) for s in session.node_jobs])


@FAST
@given(scenarios(), configs)
def test_rollback_of_actions_restores_pending_reasons(snap: Snapshot,
                                                      config: SchedulerConfig) -> None:
    assert_actions_roll_back(snap, config)


def assert_actions_roll_back(snap: Snapshot, config: SchedulerConfig) -> None:
    """After a committed allocate, every action run in a statement that is rolled back leaves
    the session exactly as it was (reasons, reservations and all)."""
    session = Session(snap, config)
    for v in session.jobs:  # domain indexes are built lazily; build them before comparing
        session.cluster.domain(v.job.selector)
    allocate(session)  # committed: the jobs that did not fit have their reasons now
    before = state(session)
    with Statement(session.log):
        consolidate(session)
        reclaim(session)
        preempt(session)
        allocate(session)
    assert state(session) == before
