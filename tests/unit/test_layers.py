"""The layer contracts hold (pyproject's ``[tool.importlinter]``, checked by ``lint-imports``):
the domain at the bottom, a pure scheduler and simulator, schemas and a client that import only
the domain, a store that does not reach up into services, an API that does not drive
executors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept() -> None:
    beside = Path(sys.executable).parent / "lint-imports"  # the venv's, when not activated
    tool = shutil.which("lint-imports") or (str(beside) if beside.exists() else None)
    if tool is None:
        pytest.fail("lint-imports is missing: install the dev extras (import-linter)")
    done = subprocess.run([tool], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
