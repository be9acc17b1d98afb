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


IMAGE = "localhost/fairpool-test-busybox:1"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "echo", "id", "ls", "sleep", "env", "true", "false", "seq", "head")


def podman_env(conf_dir: Path) -> dict[str, str]:
    from fairpool.executors.sandbox.commands import PODMAN_CONF

    conf = conf_dir / "containers.conf"
    conf.write_text(PODMAN_CONF)
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"), "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small OCI image built here (no registry is reachable): Debian's static busybox."""
    import subprocess

    if shutil.which("podman") is None or not os.path.exists(BUSYBOX):
        pytest.skip("podman or busybox-static missing")
    work = tmp_path_factory.mktemp("image")
    root = work / "rootfs"
    (root / "bin").mkdir(parents=True)
    for name in ("etc", "tmp", "proc", "sys", "dev", "data"):
        (root / name).mkdir()
    os.chmod(root / "tmp", 0o1777)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    env = podman_env(work)
    subprocess.run(["tar", "-C", str(root), "-cf", str(work / "rootfs.tar"), "."], check=True)
    subprocess.run(["podman", "import", "--change", "ENV PATH=/bin", "--change",
                    'CMD ["/bin/sh"]', str(work / "rootfs.tar"), IMAGE], check=True, env=env,
                   capture_output=True)
    yield IMAGE
    subprocess.run(["podman", "rmi", "-f", IMAGE], env=env, capture_output=True)


def containers(prefix: str, conf_dir: Path) -> list[str]:
    import subprocess

    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], check=True,
                         capture_output=True, text=True, env=podman_env(conf_dir)).stdout
    return [n for n in out.split() if n.startswith(prefix)]
