"""A limit on some resources leaves the others unlimited (issue 16, finding 7).

On a real server: ``PATCH /api/v1/queues/p1 {"limit": {"gpus": 4}}`` used to store a CPU and
memory limit of 0, and a job asking for one CPU then waited forever. Now the resources left
out are unlimited, shown as ``null`` (never ``-1``) in the API, the SDK, ``fairpool queues``
and the dashboard, and a 1-CPU job starts. The legitimate side: a CPU limit set explicitly is
still enforced (a job above it waits, saying so; one within it runs), and ``unlimited`` still
removes the limit.
"""

from __future__ import annotations

import json
import re

from fairpool.schemas.queues import LimitSpec, QueueUpdate
from tests.security.conftest import Org


def test_a_gpu_only_limit_leaves_cpu_and_memory_unlimited(org: Org) -> None:
    pool = org.pool
    with org.http("dora") as dora:  # p1's department admin sets its limit
        patched = dora.patch("/api/v1/queues/p1", json={"limit": {"gpus": 4}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["limit"] == {"gpus": 4, "cpus": None, "memory_mib": None}
        got = dora.get("/api/v1/queues/p1").json()
        assert got["limit"] == {"gpus": 4, "cpus": None, "memory_mib": None}
    rita = org.client("rita")
    job = rita.submit(project="p1", command=["true"], cpus=1, memory_mib=64)
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=30) == "succeeded"

    # the SDK reads and writes the same thing
    out = pool.client.update_queue("p1", QueueUpdate(limit=LimitSpec(gpus=3)))
    assert out.limit is not None
    assert (out.limit.gpus, out.limit.cpus, out.limit.memory_mib) == (3, None, None)
    # the CLI shows it sensibly, in its table and as JSON
    table = pool.cli("queues").stdout
    row = next(line for line in table.splitlines() if re.search(r"\bp1\b", line))
    assert "-1" not in row and "None" not in row and " 3 " in row, row
    listed = {q["name"]: q for q in json.loads(pool.cli("queues", "--json").stdout)}
    assert listed["p1"]["limit"] == {"gpus": 3.0, "cpus": None, "memory_mib": None}


def test_an_explicit_cpu_limit_is_still_enforced(org: Org) -> None:
    pool = org.pool
    with org.http("dora") as dora:
        patched = dora.patch("/api/v1/queues/p1b", json={"limit": {"cpus": 0.5}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["limit"] == {"gpus": None, "cpus": 0.5, "memory_mib": None}
    admin = org.client("admin")  # rita has no role on p1b
    over = admin.submit(project="p1b", command=["true"], cpus=1)
    pool.until(lambda: admin.explain(over.id).code == "QUEUE_LIMIT", what="the CPU limit")
    assert "p1b is at its limit" in admin.explain(over.id).reason
    within = admin.submit(project="p1b", command=["true"], cpus=0.5)
    assert pool.wait(within.id, {"succeeded", "failed"}, timeout=30) == "succeeded"
    assert admin.job(over.id).state == "queued"
    # the dashboard shows a queue without a GPU limit as having none (not -1, no error)
    page = org.http("admin").get("/ui/queues")
    assert page.status_code == 200, page.text
    cell = re.search(r'data-queue="p1b".*?data-field="limit">([^<]*)<', page.text, re.S)
    assert cell is not None and cell.group(1) == "—", cell
    # the CLI changing the GPU limit alone keeps the CPU limit as it was
    pool.cli("project", "set-quota", "p1b", "--limit-gpus", "2")
    kept = next(q for q in admin.queues() if q.name == "p1b").limit
    assert kept is not None and (kept.gpus, kept.cpus, kept.memory_mib) == (2, 0.5, None)
    assert admin.job(over.id).state == "queued"
    # removing the limit lets the waiting job run
    with org.http("dora") as dora:
        cleared = dora.patch("/api/v1/queues/p1b", json={"unlimited": True})
        assert cleared.status_code == 200 and cleared.json()["limit"] is None, cleared.text
    assert pool.wait(over.id, {"succeeded", "failed"}, timeout=30) == "succeeded"
