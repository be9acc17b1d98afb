"""What the control loop reads of the past, on real databases: each project's decayed usage
from the usage table (a closed stretch, an open one that lasts until now, one outside the
window), each project's expected run time from its succeeded jobs, the loop's History that
rereads them on time, and the metric fairpool_queue_usage_decayed_gpu_hours (departments sum
their projects)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import generate_latest

from fairpool.api import metrics
from fairpool.control.history import History
from fairpool.scheduler import SchedulerConfig
from fairpool.services import usage
from fairpool.store.db import Store
from fairpool.store.models import JobRow, QueueRow, UsageRow

H = 3600.0
NOW = 100 * H


def fill(store: Store) -> None:
    with store.writing() as s:
        s.add(QueueRow(name="d", kind="department", created_at=0.0))
        for p in ("a", "b"):
            s.add(QueueRow(name=p, kind="project", parent="d", created_at=0.0))
        s.flush()
        # a: 2 GPUs for the hour before now (closed); b: 1 GPU since an hour ago, still open
        # (its end was last written half an hour ago); a: 4 GPUs long ago, outside the window
        for job_id, project, gpus, start, end, is_open in (
                ("j1", "a", 2.0, NOW - H, NOW, False), ("j2", "b", 1.0, NOW - H, NOW - H / 2,
                                                        True),
                ("j0", "a", 4.0, 0.0, H, False)):
            s.add(UsageRow(job_id=job_id, project=project, department="d", attempt=0,
                           gpus=gpus, util=None, simulated=True, start=start, end=end,
                           open=is_open))
        for i, (project, ran) in enumerate((("a", 100.0), ("a", 300.0), ("a", 200.0),
                                            ("b", 50.0))):
            s.add(JobRow(id=f"s{i}", project=project, name="", command=["x"], env={},
                         workers=1, gpus=1, cpu=0, memory=0, state="succeeded", attempt=0,
                         submitted_at=0.0, request_hash="h", labels={}, retries=0,
                         max_retries=0, seq=i, started_at=NOW - 2 * H,
                         finished_at=NOW - 2 * H + ran))
        s.add(JobRow(id="f0", project="b", name="", command=["x"], env={}, workers=1, gpus=1,
                     cpu=0, memory=0, state="failed", attempt=0, submitted_at=0.0,
                     request_hash="h", labels={}, retries=0, max_retries=0, seq=9,
                     started_at=NOW - H, finished_at=NOW - 1.0))  # failures say nothing


def test_decayed_usage_and_expected_runtimes(store: Store) -> None:
    fill(store)
    got = usage.decayed(store, NOW, H, 10 * H)
    full_hour = H / math.log(2) * 0.5  # one GPU for the last hour, half-life one hour
    assert got == {"a": pytest.approx(2 * full_hour), "b": pytest.approx(full_hour)}
    slow = 1000 * H  # (with a long half-life, the old stretch still weighs)
    assert usage.decayed(store, NOW, slow, None)["a"] > usage.decayed(store, NOW, slow,
                                                                      10 * H)["a"]
    assert usage.expected_runtimes(store, NOW, 10 * H) == {"a": 200.0, "b": 50.0}
    assert usage.expected_runtimes(store, NOW, H) == {}  # they all ended earlier


def test_history_rereads_on_time(store: Store) -> None:
    fill(store)
    off = History(store, SchedulerConfig(usage_window_s=10 * H))
    assert off.refresh(NOW) and off.usage_gpu_s == {} and off.runtimes["a"] == 200.0
    on = History(store, SchedulerConfig(usage_k=1.0, usage_half_life_s=H,
                                        usage_window_s=10 * H), every_s=60.0)
    assert on.refresh(NOW) and set(on.usage_gpu_s) == {"a", "b"}
    assert not on.refresh(NOW + 30)  # not yet time
    assert on.refresh(NOW + 61)  # time: b's open stretch grew, a's decayed


def test_the_decayed_usage_metric(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store)
    monkeypatch.setattr(metrics.time, "time", lambda: NOW)
    reg = metrics.registry(store, None, SchedulerConfig(usage_half_life_s=H,
                                                        usage_window_s=10 * H))
    text = generate_latest(reg).decode()
    hour = 1 / math.log(2) * 0.5  # GPU-hours of one GPU for the last hour, decayed
    values = {}
    for line in text.splitlines():
        if line.startswith("fairpool_queue_usage_decayed_gpu_hours{"):
            name = line.split('queue="')[1].split('"')[0]
            values[name] = float(line.rsplit(" ", 1)[1])
    assert values == {"a": pytest.approx(2 * hour), "b": pytest.approx(hour),
                      "d": pytest.approx(3 * hour)}
    assert "# HELP fairpool_queue_usage_decayed_gpu_hours" in text
