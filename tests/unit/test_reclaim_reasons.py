"""What a waiting job is told when it may not reclaim: a job larger than its project's fair
share is told that, and what would let it run; one that merely does not fit beside what its
project holds is told what the project holds of its share."""

from __future__ import annotations

from fairpool.domain import JobState, Queue, WorkerPlacement
from fairpool.scheduler import Snapshot, schedule
from tests.helpers import job, nodes, project


def _running(jid: str, proj: str, device: int, t: float) -> object:
    return job(jid, proj, 1, t=t, state=JobState.RUNNING, started_at=t,
               placements=(WorkerPlacement(0, "n0", (device,)),))


def _pool(waiting_gpus: int) -> Snapshot:
    """4 GPUs, vision and nlp with quota 2 each; nlp borrows one (3 running), vision holds 1
    and waits with a job of ``waiting_gpus``."""
    jobs = [_running("v0", "vision", 0, 1.0), *(_running(f"n{i}", "nlp", i + 1, 2.0 + i)
                                                for i in range(3)),
            job("big", "vision", waiting_gpus, t=10.0)]
    return Snapshot(nodes(1, 4), (Queue("d"), project("vision", quota=2),
                                  project("nlp", quota=2)), tuple(jobs), now=20.0)  # type: ignore[arg-type]


def test_a_job_larger_than_its_projects_fair_share_is_told_so() -> None:
    plan = schedule(_pool(4))
    assert not plan.binds and not plan.evictions
    why = plan.pending["big"].message
    assert ("the job needs 4 GPUs, more than project vision's fair share of 2 GPUs, so it "
            "cannot reclaim") in why, why
    assert ("it starts only when 4 GPUs of idle capacity is left that no queue below its share "
            "wants; a job of "
            "at most 2 GPUs could reclaim, and a quota giving vision a fair share of 4 GPUs "
            "would let this one") in why, why
    assert "holds 1 GPU of its fair share" not in why, why


def test_a_job_that_fits_the_share_but_not_beside_what_it_holds_is_told_the_holding() -> None:
    plan = schedule(_pool(2))
    why = plan.pending["big"].message
    assert why.endswith("project vision holds 1 GPU of its fair share 2 GPUs, so it cannot "
                        "reclaim"), why
