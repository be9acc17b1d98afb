"""The dashboard colours every job state the state table has, and only those."""

from __future__ import annotations

from fairpool.api.dashboard.render import FINAL, state_class
from fairpool.domain.states import FINISHED_STATES, HOLDING_STATES, JobState


def test_every_state_but_cancelled_has_its_own_colour() -> None:
    colours = {s.value: state_class(s.value) for s in JobState}
    assert colours["stopping"] == "warn"
    assert colours["cancelled"] == "muted"  # the colour of anything unknown, too
    assert all(c != "muted" for s, c in colours.items() if s != "cancelled"), colours
    assert state_class("preempted") == state_class("lost") == "muted"  # no such states now


def test_the_job_page_treats_only_finished_states_as_final() -> None:
    assert "stopping" not in FINAL and all(s.value not in FINAL for s in HOLDING_STATES)
    assert {s.value for s in FINISHED_STATES} <= FINAL
