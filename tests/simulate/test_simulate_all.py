"""``benchmarks/simulate_all.py`` as the lead runs it: one small row in quick mode prints the
JSON it promises, a cache makes the rerun skip the work, and a bad row name is a one-line
error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.simulate.conftest import TRACES, needs_traces

pytestmark = needs_traces
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "simulate_all.py"
ROW = "gen-fraction-heavy"
METRICS = {"avg_jct_s", "p99_jct_s", "avg_queue_s", "guarantee_violation_s", "jain_index",
           "evictions", "lost_gpu_hours", "unfinished"}
CHECK = {"within_5pct_of_best_jct", "least_below_quota", "pass", "best_avg_jct_policy"}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--traces", str(TRACES), *args],
                          capture_output=True, text=True, timeout=300)


def test_quick_row_prints_metrics_and_check(tmp_path: Path) -> None:
    args = ("--quick", "--only", ROW, "--cache", str(tmp_path / "cache"), "--markdown",
            str(tmp_path / "table.md"))
    first = bench(*args)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert list(data["rows"]) == [ROW] and data["quick"] is True
    row = data["rows"][ROW]
    assert row["gpus"] == row["documented_gpus"] == 64 and row["jobs"] == 200
    from fairpool.simulate.policies import POLICIES

    assert list(row["policies"]) == data["policies"] == list(POLICIES)
    for name, metrics in row["policies"].items():
        assert set(metrics) >= METRICS, name
    assert set(row["check"]) >= CHECK
    est = row["estimate"]  # the start-time estimate replayed in the default policy's run
    assert est["sampled"] == 100 and est["every"] == 2
    assert {"median_abs_error_s", "p90_abs_error_s", "waited_median_abs_error_s"} <= set(est)
    assert set(data["overall"]) >= {"pass", "failing_rows"}
    assert "strict-quota" not in data["lenders"] and "fairpool" in data["lenders"]
    assert f"## {ROW}" in (tmp_path / "table.md").read_text()

    again = bench(*args)
    assert again.returncode == 0, again.stderr
    assert f"{len(POLICIES)} cached, 0 to run" in again.stderr
    assert json.loads(again.stdout)["rows"] == data["rows"]


def test_unknown_row_is_one_line_error() -> None:
    out = bench("--quick", "--only", "no-such-row")
    assert out.returncode != 0 and "no row matches 'no-such-row'" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
