"""The simulator's fair shares are the core's: every sample's reference shares equal
fairpool.scheduler.fair_share.fair_shares on the trace's department → project tree for that
sample's demand, whether the engine took them from the cycle's plan (policies on that tree) or
computed them (single-queue policies, instants without a cycle)."""

from __future__ import annotations

import pytest

from fairpool.domain import GPU_UNIT, Resources
from fairpool.scheduler.fair_share import fair_shares
from fairpool.simulate.engine import ClusterSpec, Simulation
from fairpool.simulate.policies import POLICIES
from tests.simulate.conftest import SAMPLE, needs_traces


@needs_traces
@pytest.mark.parametrize("policy", list(POLICIES))
def test_every_sample_has_the_cores_fair_shares(policy: str) -> None:
    from fairpool.simulate.traces import load_trace

    t = load_trace(SAMPLE, gpus=24)
    sim = Simulation(t, POLICIES[policy], ClusterSpec(24, 8), checkpoint_s=600)
    result = sim.run()
    assert result.samples
    for s in result.samples:
        milli = {p: round(g * GPU_UNIT) for p, g in s.demand.items() if round(g * GPU_UNIT)}
        core = fair_shares(sim.project_tree, sim.capacity,
                           {p: Resources(gpu=m) for p, m in milli.items()})
        assert s.fair_share == {p: core[p].gpu / GPU_UNIT for p in milli}, s.t
