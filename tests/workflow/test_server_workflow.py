"""Arrays, sweeps, dependencies, bulk cancel, references and dry runs, through the REST API of
a real server whose tasks are real subprocesses (the CLI and SDK over them are tested in
tests/e2e)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Pool, research_pool

PY = sys.executable


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    yield from research_pool(tmp_path_factory.mktemp("workflow"))


def api(pool: Pool, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, pool.url + "/api/v1" + path, headers=pool.auth, timeout=30,
                         **kw)


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code < 300, resp.text
    return resp.json()


def until_array(pool: Pool, array_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = ok(api(pool, "GET", f"/arrays/{array_id}"))
        if out["state"] in ("succeeded", "failed", "cancelled"):
            return out  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"array {array_id} did not finish: {out}")


MARK = ("import os, sys, time, pathlib\n"
        "d = pathlib.Path(sys.argv[1]); i = os.environ['FAIRPOOL_ARRAY_INDEX']\n"
        "(d / f'{i}.start').write_text(repr(time.time()))\n"
        "time.sleep(0.6)\n"
        "(d / f'{i}.end').write_text(repr(time.time()))\n")


def test_a_capped_array_never_runs_more_tasks_than_its_cap(pool: Pool, tmp_path: Path) -> None:
    out = ok(api(pool, "POST", "/arrays", json={
        "project": "vision", "command": [PY, "-c", MARK, str(tmp_path)], "cpus": 0.1,
        "indices": "0-10:2", "max_running": 2, "name": "capped"}))
    assert out["size"] == 6 and out["max_running"] == 2 and out["indices"] == "0-10:2"
    done = until_array(pool, out["id"])
    assert done["state"] == "succeeded" and done["counts"] == {"succeeded": 6}
    spans = [(float((tmp_path / f"{i}.start").read_text()),
              float((tmp_path / f"{i}.end").read_text())) for i in range(0, 11, 2)]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2  # the cap was used, and never passed (the pool has room for all 6)
    tasks = ok(api(pool, "GET", f"/arrays/{out['id']}/tasks"))
    assert [t["array_index"] for t in tasks] == [0, 2, 4, 6, 8, 10]
    assert tasks[1]["name"] == "capped[2]"
    listed = ok(api(pool, "GET", "/jobs", params={"tasks": "false", "limit": 1000}))
    assert not any(j["array_id"] == out["id"] for j in listed)


#: a task that runs until the file it is given exists
HOLD = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"


def test_a_large_array_starts_lowest_indices_first_and_says_why_the_rest_wait(
        pool: Pool, tmp_path: Path) -> None:
    """The scheduler sees an array's waiting tasks lowest index first, one more than the pool
    could hold (here 4 + 1); those it does not see yet say so, and all run in the end."""
    trigger = tmp_path / "go"
    out = ok(api(pool, "POST", "/arrays", json={
        "project": "vision", "command": [PY, "-c", HOLD, str(trigger)], "gpus": 1,
        "cpus": 0.1, "indices": "0-39", "name": "wide"}))
    deadline = time.time() + 30
    while ok(api(pool, "GET", f"/arrays/{out['id']}"))["counts"].get("running", 0) < 4:
        assert time.time() < deadline, "4 tasks did not start"
        time.sleep(0.1)
    tasks = {t["array_index"]: t for t in ok(api(pool, "GET", f"/arrays/{out['id']}/tasks"))}
    assert {i for i, t in tasks.items() if t["state"] == "running"} == {0, 1, 2, 3}
    last = ok(api(pool, "GET", f"/jobs/{tasks[39]['id']}/explain"))
    assert last["code"] == "array-order", last
    assert f"waiting for earlier tasks of array {out['id']} to start" in last["reason"], last
    deadline = time.time() + 30
    while (ok(api(pool, "GET", f"/jobs/{tasks[4]['id']}"))["reason_code"] or "") in (
            "", "array-order"):  # the next one is seen: the scheduler says why it waits
        assert time.time() < deadline, tasks[4]
        time.sleep(0.1)
    trigger.write_text("")
    assert until_array(pool, out["id"], timeout=120)["counts"] == {"succeeded": 40}
    started = {t["array_index"]: t["started_at"]
               for t in ok(api(pool, "GET", f"/arrays/{out['id']}/tasks"))}
    for j in range(40):  # when task j started, at most 4 lower ones still waited
        later = [i for i in range(j) if started[i] > started[j]]
        assert len(later) <= 4, (j, later)


def test_a_sweep_gives_each_task_its_parameters(pool: Pool) -> None:
    grid = [{"LR": lr, "BS": bs} for lr in ("1e-3", "1e-4") for bs in ("32", "64")]
    out = ok(api(pool, "POST", "/arrays", json={
        "project": "nlp", "command": ["sh", "-c", "echo $FAIRPOOL_ARRAY_ID $FAIRPOOL_ARRAY_"
                                      "INDEX lr=$LR bs=$BS"], "params": grid}))
    assert until_array(pool, out["id"])["state"] == "succeeded"
    for task in ok(api(pool, "GET", f"/arrays/{out['id']}/tasks")):
        log = api(pool, "GET", f"/jobs/{task['id']}/logs").text.split()
        want = grid[task["array_index"]]
        assert log == [out["id"], str(task["array_index"]), f"lr={want['LR']}",
                       f"bs={want['BS']}"]
        assert task["params"] == want


def test_an_array_counts_against_the_pending_limit_as_its_tasks(pool: Pool) -> None:
    resp = api(pool, "POST", "/arrays", json={
        "project": "vision", "command": ["true"], "indices": "0-10000"})
    assert resp.status_code == 422 or resp.status_code == 429, resp.text
    bad = api(pool, "POST", "/arrays", json={"project": "vision", "command": ["true"],
                                            "indices": "5-1"})
    assert bad.status_code == 422 and "ends before it starts" in bad.text


def test_afterok_chain_runs_in_order_and_a_failed_parent_cancels_its_dependents(
        pool: Pool) -> None:
    first = ok(api(pool, "POST", "/jobs", json={
        "project": "vision", "command": ["sleep", "0.5"], "name": "first"}))
    second = ok(api(pool, "POST", "/jobs", json={
        "project": "vision", "command": ["true"], "after": [first["id"]]}))
    assert second["deps_waiting"] and second["depends"] == [
        {"id": first["id"], "array": False, "on": "ok"}]
    why = ok(api(pool, "GET", f"/jobs/{second['id']}/explain"))
    assert why["reason"] == f"waiting for job {first['id']} to succeed"
    assert pool.wait(second["id"], {"succeeded", "failed", "cancelled"}) == "succeeded"
    assert pool.client.job(first["id"]).finished_at <= pool.client.job(  # type: ignore[operator]
        second["id"]).started_at

    failing = ok(api(pool, "POST", "/jobs", json={
        "project": "vision", "command": ["sh", "-c", "sleep 0.3; exit 3"]}))
    child = ok(api(pool, "POST", "/jobs", json={
        "project": "vision", "command": ["true"], "after": [failing["id"]]}))
    cleanup = ok(api(pool, "POST", "/jobs", json={
        "project": "vision", "command": ["true"], "after_failed": [failing["id"]]}))
    anyway = ok(api(pool, "POST", "/jobs", json={
        "project": "vision", "command": ["true"], "after_any": [child["id"]]}))
    assert pool.wait(child["id"], {"cancelled", "succeeded", "failed"}) == "cancelled"
    why = ok(api(pool, "GET", f"/jobs/{child['id']}/explain"))["reason"]
    assert f"job {failing['id']} failed; it had to succeed" in why
    assert pool.wait(cleanup["id"], {"cancelled", "succeeded", "failed"}) == "succeeded"
    assert pool.wait(anyway["id"], {"cancelled", "succeeded", "failed"}) == "succeeded"
    # already unmeetable, or no such job: refused at submit
    late = api(pool, "POST", "/jobs", json={"project": "vision", "command": ["true"],
                                            "after": [failing["id"]]})
    assert late.status_code == 409 and "can never be met" in late.text
    ghost = api(pool, "POST", "/jobs", json={"project": "vision", "command": ["true"],
                                             "after": ["0123456789ab"]})
    assert ghost.status_code == 404 and "0123456789ab" in ghost.text


def test_a_job_can_wait_for_a_whole_array(pool: Pool) -> None:
    arr = ok(api(pool, "POST", "/arrays", json={
        "project": "nlp", "command": ["sleep", "0.3"], "indices": "0-3"}))
    after = ok(api(pool, "POST", "/jobs", json={
        "project": "nlp", "command": ["true"], "after": [arr["id"]]}))
    assert after["depends"][0]["array"] is True
    assert pool.wait(after["id"], {"succeeded", "cancelled", "failed"}) == "succeeded"
    tasks = ok(api(pool, "GET", f"/arrays/{arr['id']}/tasks"))
    assert max(t["finished_at"] for t in tasks) <= pool.client.job(after["id"]).started_at  # type: ignore[operator]


def test_bulk_cancel_by_filter_and_by_ids(pool: Pool) -> None:
    arr = ok(api(pool, "POST", "/arrays", json={
        "project": "vision", "command": ["sleep", "60"], "indices": "0-7", "max_running": 1}))
    dry = ok(api(pool, "POST", "/jobs/cancel", json={"array": arr["id"], "state": "queued",
                                                     "dry_run": True}))
    assert dry["dry_run"] and len(dry["cancelled"]) >= 6
    assert ok(api(pool, "GET", f"/arrays/{arr['id']}"))["counts"].get("cancelled") is None
    out = ok(api(pool, "POST", "/jobs/cancel", json={"array": arr["id"]}))
    assert len(out["cancelled"]) == 8 and out["refused"] == []
    pool.until(lambda: ok(api(pool, "GET", f"/arrays/{arr['id']}"))["state"] == "cancelled",
               what="array cancelled")
    single = ok(api(pool, "POST", "/jobs", json={"project": "nlp", "command": ["sleep", "60"]}))
    out = ok(api(pool, "POST", "/jobs/cancel", json={"ids": [single["id"], "0123456789ab"]}))
    assert out["cancelled"] == [single["id"]] and out["refused"] == ["0123456789ab"]
    refused = api(pool, "POST", "/jobs/cancel", json={"state": "queued"})
    assert refused.status_code == 422 and "a state alone" in refused.text


def test_references_resolve_prefixes_names_and_array_tasks(pool: Pool) -> None:
    job = ok(api(pool, "POST", "/jobs", json={"project": "nlp", "command": ["true"],
                                              "name": "unique-name-1"}))
    got = ok(api(pool, "GET", "/resolve", params={"ref": job["id"][:6]}))
    assert got == {"kind": "job", "id": job["id"], "project": "nlp", "name": "unique-name-1"}
    assert ok(api(pool, "GET", "/resolve", params={"ref": "unique-name-1"}))["id"] == job["id"]
    arr = ok(api(pool, "POST", "/arrays", json={"project": "nlp", "command": ["true"],
                                                "indices": "3-5", "name": "arr-name"}))
    task = ok(api(pool, "GET", "/resolve", params={"ref": f"{arr['id'][:5]}:4"}))
    assert task["kind"] == "job" and task["name"] == "arr-name[4]"
    assert ok(api(pool, "GET", "/resolve", params={"ref": "arr-name"}))["kind"] == "array"
    assert ok(api(pool, "GET", "/resolve", params={"ref": "arr-name[5]"}))["kind"] == "job"
    for name in ("twin", "twin"):
        ok(api(pool, "POST", "/jobs", json={"project": "nlp", "command": ["true"],
                                            "name": name}))
    twin = api(pool, "GET", "/resolve", params={"ref": "twin"})
    assert twin.status_code == 409 and twin.text.count("job ") >= 2
    missing = api(pool, "GET", "/resolve", params={"ref": f"{arr['id']}:9"})
    assert missing.status_code == 404 and "has no task 9" in missing.text
    # one hex character matches many: a prefix needs 3
    assert api(pool, "GET", "/resolve", params={"ref": "a"}).status_code == 404


def test_a_dry_run_says_where_a_job_would_start_and_writes_nothing(pool: Pool) -> None:
    before = len(ok(api(pool, "GET", "/jobs", params={"limit": 10000})))
    out = ok(api(pool, "POST", "/jobs/dry-run", json={"project": "vision", "command": ["x"],
                                                      "gpus": 1}))
    assert out["fits"] and out["nodes"] and out["message"].startswith("would start now on")
    assert out["request"]["priority"] == "train" and out["request"]["preemptible"] is True
    too_big = ok(api(pool, "POST", "/jobs/dry-run", json={
        "project": "vision", "command": ["x"], "gpus": 64}))
    assert not too_big["fits"] and "would be refused" in too_big["message"]
    arr = ok(api(pool, "POST", "/jobs/dry-run", json={
        "project": "vision", "command": ["x"], "indices": "0-9"}))
    assert arr["tasks"] == 10
    bad = api(pool, "POST", "/jobs/dry-run", json={"project": "vision", "command": []})
    assert bad.status_code == 422 and "command" in bad.text
    dept = api(pool, "POST", "/jobs", json={"project": "research", "command": ["x"]})
    assert dept.status_code in (403, 404, 422)
    assert len(ok(api(pool, "GET", "/jobs", params={"limit": 10000}))) == before
    json.dumps(out)
