"""Isolation tests: a root-run ``fairpool up`` with its default settings (jobs as transient
uids, cgroups, namespaces) and with parts of the isolation switched off.

The pools live in a directory under /tmp that others may search, with the jobs' scripts in it:
a job's own account must be able to reach its working directory and what it runs (the system's
python3; pytest's own temporary directories are private to root)."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PYTHON = "/usr/bin/python3"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs a root server")
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing")
needs_python = pytest.mark.skipif(not os.access(PYTHON, os.X_OK),
                                  reason="the system's python3 is missing")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory under /tmp that every account may search, with the test scripts in it."""
    path = Path(tempfile.mkdtemp(prefix="fairpool-iso-", dir="/tmp"))
    os.chmod(path, 0o755)
    for name in ("hostile.py", "victim.py"):
        shutil.copy(HERE / name, path / name)
        os.chmod(path / name, 0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def job_pids(job_id: str) -> list[int]:
    """Pids of the processes that carry ``job_id`` in their environment (read as root)."""
    out = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(path, "rb") as f:
                if f"FAIRPOOL_JOB_ID={job_id}\0".encode() in f.read():
                    out.append(int(path.split("/")[2]))
        except OSError:
            continue
    return out

