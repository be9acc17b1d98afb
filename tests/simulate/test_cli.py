"""``fairpool simulate`` as a user runs it: JSON keyed by policy, plots, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.simulate.conftest import SAMPLE, needs_traces

pytestmark = needs_traces
BIN = Path(sys.executable).with_name("fairpool")
KEYS = {"avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_queue_s", "makespan_s", "utilisation",
        "evictions", "guarantee_violation_s", "jain_index"}


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), "simulate", *args], capture_output=True, text=True,
                          timeout=300)


def test_json_and_plots_for_every_policy(tmp_path: Path) -> None:
    out = sim(str(SAMPLE), "--gpus", "32", "--policy", "all", "--json", "--plot",
              str(tmp_path / "plots"))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    from fairpool.simulate.policies import POLICIES

    assert list(data) == list(POLICIES)
    for name, metrics in data.items():
        assert set(metrics) >= KEYS, name
        assert metrics["jobs"] == 200 and 0 < metrics["utilisation"] <= 1
    assert data["sjf"]["avg_jct_s"] < data["fifo"]["avg_jct_s"]  # the oracle helps
    assert data["fifo"]["evictions"] == data["sjf"]["evictions"] == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == sorted(["jct_cdf.png", "utilisation.png", *(f"allocation_{n}.png"
                                                               for n in data)])
    for name in pngs:
        content = (tmp_path / "plots" / name).read_bytes()
        assert content.startswith(b"\x89PNG") and len(content) > 10_000


def test_table_for_people() -> None:
    out = sim(str(SAMPLE), "--gpus", "32", "--policy", "fifo,fairpool", "--limit", "50")
    assert out.returncode == 0, out.stderr
    assert "avg JCT" in out.stdout and "fairpool" in out.stdout and "50 jobs" in out.stdout


@pytest.mark.parametrize(("args", "words"), [
    (("--policy", "fifo,bogus"), "unknown policy bogus"),
    (("--quotas", "/nonexistent.yaml"), "nonexistent.yaml"),
])
def test_bad_options(args: tuple[str, ...], words: str) -> None:
    out = sim(str(SAMPLE), "--gpus", "32", *args)
    assert out.returncode != 0 and words in out.stderr and "Traceback" not in out.stderr


def test_bad_trace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    out = sim(str(bad))
    assert out.returncode != 0 and "job_id" in out.stderr and "Traceback" not in out.stderr
    out = sim(str(tmp_path / "missing.csv"))
    assert out.returncode != 0 and "missing.csv" in out.stderr and "Traceback" not in out.stderr


def test_unreadable_csv_is_one_line(tmp_path: Path) -> None:
    huge = tmp_path / "huge.csv"
    huge.write_text("job_id,submit_time,duration,num_gpus,project\n1,0,10,1," + "x" * 200_000
                    + "\n")
    out = sim(str(huge))
    assert out.returncode != 0 and "not a readable CSV" in out.stderr
    assert "Traceback" not in out.stderr
