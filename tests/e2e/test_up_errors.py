"""`fairpool up` with bad configuration fails at once with one line that says what to fix."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, free_port


def up(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "cfg"), XDG_DATA_HOME=str(tmp / "data"))
    return subprocess.run([str(BIN), "up", "--data-dir", str(tmp / "pool"), *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "words"), [
    (("--db", "mysql://localhost/x"), "sqlite:///… or postgresql+psycopg://"),
    (("--db", "postgresql+psycopg://postgres@127.0.0.1:1/nope"), "cannot use the database"),
    (("--simulate-gpus", "-2"), "simulate-gpus"),
    (("--nodes-file", "/nonexistent/nodes.toml"), "nodes file not found"),
    (("--run-as", "nobody"), "'auto', 'dynamic', 'user', 'project' or 'server'"),
])
def test_bad_configuration(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    out = up(tmp_path, "--port", str(free_port()), *args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("env", "words"), [
    ({"FAIRPOOL_DYNAMIC_UIDS": "5-10"}, "dynamic uid range '5-10'"),
    ({"FAIRPOOL_ENV_PASSTHROUGH": '["NOT A NAME"]'}, "is not an environment variable name"),
    ({"FAIRPOOL_ALLOWED_MOUNT_ROOTS": '["/"]'}, "would allow every host path"),
])
def test_bad_isolation_settings(tmp_path: Path, env: dict[str, str], words: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    out = up(tmp_path, "--port", str(free_port()))
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], out.stderr


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = up(tmp_path, "--port", str(busy.getsockname()[1]))
    assert out.returncode != 0
    assert "is not available" in out.stderr and "--port" in out.stderr
