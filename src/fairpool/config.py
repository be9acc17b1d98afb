"""Configuration: one typed settings object for the server (read once, from flags and
``FAIRPOOL_*`` environment variables), and the client's small config file.

The client config (``$XDG_CONFIG_HOME/fairpool/client.json``, mode 0600) holds the server URL
that ``fairpool up`` wrote, so the CLI on the same machine just works; ``FAIRPOOL_URL``
overrides it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fairpool.scheduler.snapshot import Strategy


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fairpool"


def client_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fairpool" / "client.json"


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAIRPOOL_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    db: str | None = Field(None, description="database URL; default: SQLite in data_dir")
    simulate_gpus: int | None = Field(None, ge=0, le=1024)
    nodes_file: Path | None = None
    grace_s: float = Field(10.0, ge=0, le=3600)
    strategy: Strategy = Strategy.BINPACK
    write_client_config: bool = True

    @field_validator("db")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("use a sqlite:///… or postgresql+psycopg://… database URL")
        return url

    def database_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'fairpool.db'}"

    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def write_client_config(url: str, path: Path | None = None) -> Path:
    target = path or client_config_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, str] = {}
    if target.exists():
        try:
            data = json.loads(target.read_text())
        except (OSError, ValueError):
            data = {}
    data["url"] = url
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.chmod(target, 0o600)
    return target


def client_url() -> str:
    env = os.environ.get("FAIRPOOL_URL")
    if env:
        return env.rstrip("/")
    path = client_config_path()
    if path.exists():
        try:
            url = json.loads(path.read_text()).get("url")
        except (OSError, ValueError):
            url = None
        if isinstance(url, str) and url:
            return url.rstrip("/")
    return "http://127.0.0.1:8765"
