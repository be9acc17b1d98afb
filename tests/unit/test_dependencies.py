"""The dependency rules (fairpool.domain.dependencies) and the loop's gates
(fairpool.control.gates.admissible): what a job waits for, and which waiting jobs the scheduler
may see."""

from __future__ import annotations

from fairpool.control.gates import Gate, admissible
from fairpool.domain.dependencies import Need, On, Verdict, decide, verdict
from fairpool.store.models import JobRow
from tests.helpers import job


def test_a_job_dependency_for_each_outcome() -> None:
    ok, anyway, failed = (Need("a" * 12, on) for on in (On.OK, On.ANY, On.FAILED))
    assert [verdict(n, {"running": 1}) for n in (ok, anyway, failed)] == [Verdict.WAIT] * 3
    assert [verdict(n, {"succeeded": 1}) for n in (ok, anyway, failed)] == [
        Verdict.MET, Verdict.MET, Verdict.NEVER]
    for end in ("failed", "cancelled"):
        assert [verdict(n, {end: 1}) for n in (ok, anyway, failed)] == [
            Verdict.NEVER, Verdict.MET, Verdict.MET]
    assert verdict(ok, {}) == Verdict.NEVER  # gone


def test_an_array_dependency_needs_every_task() -> None:
    ok, failed = Need("b" * 12, On.OK, array=True), Need("b" * 12, On.FAILED, array=True)
    assert verdict(ok, {"succeeded": 3, "running": 1}) == Verdict.WAIT
    assert verdict(ok, {"succeeded": 3, "failed": 1, "running": 1}) == Verdict.NEVER
    assert verdict(failed, {"succeeded": 3, "failed": 1, "running": 1}) == Verdict.WAIT
    assert verdict(failed, {"succeeded": 4, "failed": 1}) == Verdict.MET
    assert verdict(failed, {"succeeded": 5}) == Verdict.NEVER


def test_decide_names_the_first_unmet_and_says_why_never() -> None:
    a, b = Need("a" * 12, On.OK), Need("b" * 12, On.ANY, array=True)
    states = {"a" * 12: {"running": 1}, "b" * 12: {"succeeded": 1, "queued": 3}}
    d = decide([a, b], states)
    assert d.verdict == Verdict.WAIT and d.text == f"waiting for job {'a' * 12} to succeed"
    d = decide([b], states)
    assert d.text == f"waiting for every task of array {'b' * 12} to finish: 1 of 4 finished"
    d = decide([a, b], {**states, "a" * 12: {"failed": 1}})
    assert d.verdict == Verdict.NEVER and "job aaaaaaaaaaaa failed; it had to succeed" in d.text
    assert decide([a], {"a" * 12: {"succeeded": 1}}).verdict == Verdict.MET


def _row(jid: str, state: str = "queued", **kw: object) -> JobRow:
    return JobRow(id=jid, state=state, deps_waiting=kw.pop("deps_waiting", False), **kw)


def test_gates_keep_dependents_and_tasks_past_the_cap_from_the_scheduler() -> None:
    jobs = [job(f"t{i}", "p") for i in range(5)] + [job("dep", "p"), job("free", "p"),
                                                   job("later", "p")]
    live = {f"t{i}": _row(f"t{i}", array_id="arr", array_index=i, array_cap=2)
            for i in range(5)}
    live["t4"] = _row("t4", "running", array_id="arr", array_index=4, array_cap=2)
    live["dep"] = _row("dep", deps_waiting=True)
    live["free"] = _row("free")
    live["later"] = _row("later", not_before=100.0)
    gated = {k: Gate.of(r) for k, r in live.items()}
    seen, timed = admissible(jobs, gated, now=50.0)
    # t4 holds one of the two places: only the lowest waiting index joins it
    assert sorted(j.id for j in seen) == ["free", "t0", "t4"]
    assert timed
    seen, timed = admissible(jobs, gated, now=150.0)
    assert sorted(j.id for j in seen) == ["free", "later", "t0", "t4"] and not timed
