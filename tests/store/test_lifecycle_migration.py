"""Migration 0007 on SQLite and PostgreSQL: jobs that were being stopped (running or starting
with a stop reason) become ``stopping``, eviction events get their cause, and queues gain the
published allocation."""

from __future__ import annotations

from sqlalchemy import select, text

from fairpool.api.metrics import StoreCollector
from fairpool.store.db import Store, migrate
from fairpool.store.models import Base, JobEventRow, JobRow, QueueRow


def test_upgrade_turns_stop_reasons_into_the_stopping_state(store: Store) -> None:
    with store.engine.begin() as conn:  # back to the schema before the upgrade
        Base.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    migrate(store.engine, "0006")
    jobs = [("j-stop", "running", "preempt"), ("j-cancel", "starting", "cancel"),
            ("j-run", "running", None), ("j-done", "succeeded", None)]
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO queues (name, kind, quota_gpu, quota_cpu, quota_memory, "
                          "over_quota_weight, priority, created_at, idle_action, "
                          "idle_threshold, idle_after_s) VALUES ('p', 'project', 0, 0, 0, 1, "
                          "0, 0, 'none', 0.05, 1800)"))
        for job_id, state, stop in jobs:
            conn.execute(text(
                "INSERT INTO jobs (id, project, name, command, env, workers, gpus, cpu, memory,"
                " priority_class, priority, preemptible, labels, same_node, min_runtime_s, "
                "state, attempt, submitted_at, stop_reason, request_hash, util_simulated, "
                "idle_flagged, max_retries, retries, seq) VALUES (:id, 'p', '', '[]', '{}', 1,"
                " 1, 0, 0, 'train', 50, true, '{}', false, 0, :state, 0, 0, :stop, 'h', false,"
                " false, 0, 0, 0)"), {"id": job_id, "state": state, "stop": stop})
        for job_id, kind, message in (("j-stop", "evicted", "reclaim: over its fair share"),
                                      ("j-run", "evicted", "drain: node a is being drained"),
                                      ("j-run", "running", "running on a")):
            conn.execute(text("INSERT INTO job_events (job_id, at, kind, message) VALUES "
                              "(:j, 0, :k, :m)"), {"j": job_id, "k": kind, "m": message})
    migrate(store.engine)
    with store.session() as s:
        states = dict(s.execute(select(JobRow.id, JobRow.state)).all())
        causes = s.execute(select(JobEventRow.kind, JobEventRow.cause)
                           .order_by(JobEventRow.id)).all()
        queue = s.get(QueueRow, "p")
    assert states == {"j-stop": "stopping", "j-cancel": "stopping", "j-run": "running",
                      "j-done": "succeeded"}
    assert [tuple(c) for c in causes] == [("evicted", "reclaim"), ("evicted", "drain"),
                                          ("running", None)]
    assert queue is not None and queue.alloc_gpu is None
    family = StoreCollector(store, None)._evicted()
    assert {s.labels["reason"]: s.value for s in family.samples} == {"reclaim": 1, "drain": 1}
