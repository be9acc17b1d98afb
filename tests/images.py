"""A small OCI image built on this machine (no registry is reachable): Debian's static busybox,
imported with podman; and a look at podman's containers."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

IMAGE = "localhost/fairpool-test-busybox:1"
BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "cat", "echo", "id", "ls", "sleep", "env", "true", "false", "seq", "head")


def podman_env(conf_dir: Path) -> dict[str, str]:
    from fairpool.executors.sandbox.commands import PODMAN_CONF

    conf = conf_dir / "containers.conf"
    conf.write_text(PODMAN_CONF)
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", "/root"), "CONTAINERS_CONF": str(conf)}


def build_busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image, removed afterwards (the session fixture ``busybox_image``)."""
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
    """Names of podman's containers that start with ``prefix``."""
    out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], check=True,
                         capture_output=True, text=True, env=podman_env(conf_dir)).stdout
    return [n for n in out.split() if n.startswith(prefix)]
