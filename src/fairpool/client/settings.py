"""Where the client finds its pool: the server's URL, a bearer token and a CA bundle, from the
environment (``FAIRPOOL_URL``, ``FAIRPOOL_TOKEN``, ``FAIRPOOL_CA_BUNDLE``) or the client config
file (``$XDG_CONFIG_HOME/fairpool/client.json``, mode 0600). Standard library only: a training
script that imports the SDK loads nothing of the server."""

from __future__ import annotations

import json
import os
from pathlib import Path


def client_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fairpool" / "client.json"


def read_client_config(path: Path | None = None) -> dict[str, str]:
    target = path or client_config_path()
    try:
        data = json.loads(target.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def write_client_config(url: str | None = None, path: Path | None = None, *,
                        token: str | None = None, ca: str | None = None) -> Path:
    """Update the client config (mode 0600: it may hold a token); None leaves a value as is,
    an empty string removes it."""
    target = path or client_config_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    data = read_client_config(target)
    for key, value in (("url", url), ("token", token), ("ca", ca)):
        if value == "":
            data.pop(key, None)
        elif value is not None:
            data[key] = value
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return target


def client_url() -> str:
    env = os.environ.get("FAIRPOOL_URL")
    if env:
        return env.rstrip("/")
    return read_client_config().get("url", "http://127.0.0.1:8765").rstrip("/")


def client_token() -> str | None:
    """The bearer token: ``FAIRPOOL_TOKEN``, else the client config's."""
    return os.environ.get("FAIRPOOL_TOKEN") or read_client_config().get("token") or None


def client_ca() -> str | None:
    """A CA bundle to trust besides the system's (``FAIRPOOL_CA_BUNDLE`` or the config's)."""
    return os.environ.get("FAIRPOOL_CA_BUNDLE") or read_client_config().get("ca") or None
