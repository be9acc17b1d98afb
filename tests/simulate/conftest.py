"""Where the shared cluster traces are: ``FAIRPOOL_TRACES`` if set, else ``shared/traces`` beside
the checkout, else the workplace's copy at /work/shared/traces. Tests that need them skip with
the reason when none exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def traces_dir() -> Path:
    candidates = [Path(p) for p in (os.environ.get("FAIRPOOL_TRACES"),) if p]
    candidates += [Path(__file__).resolve().parents[3] / "shared" / "traces",
                   Path("/work/shared/traces")]
    return next((c for c in candidates if (c / "philly.csv").is_file()), candidates[-1])


TRACES = traces_dir()
SAMPLE = TRACES / "sample_generic.csv"
needs_traces = pytest.mark.skipif(not (TRACES / "philly.csv").is_file(),
                                  reason=f"the shared traces are not at {TRACES}")
