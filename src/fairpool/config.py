"""Configuration: one typed settings object for the server (read once, from flags and
``FAIRPOOL_*`` environment variables), and the client's small config file.

The client config (``$XDG_CONFIG_HOME/fairpool/client.json``, mode 0600) holds the server URL
that ``fairpool up`` wrote, so the CLI on the same machine just works; ``FAIRPOOL_URL``
overrides it.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
    ray_address: str | None = Field(
        None, description="run workers on this Ray cluster: auto, host:port or ray://host:port")
    ray_gpu_resource: str = Field("GPU", min_length=1, description="Ray resource counted as GPUs")
    ray_token_file: Path | None = Field(None, description="Ray authentication token file")
    ray_connect_timeout_s: float = Field(10.0, gt=0, le=600)

    @field_validator("db")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("use a sqlite:///… or postgresql+psycopg://… database URL")
        return url

    @field_validator("data_dir", "nodes_file", "ray_token_file")
    @classmethod
    def _expand_user(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser()

    @model_validator(mode="after")
    def _one_inventory(self) -> ServerSettings:
        if self.ray_address is not None and (self.simulate_gpus is not None
                                             or self.nodes_file is not None):
            raise ValueError("--ray-address takes the nodes from Ray: drop --simulate-gpus and "
                             "--nodes-file (give Ray nodes a GPU resource to simulate GPUs)")
        return self

    def database_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'fairpool.db'}"

    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def load_server_settings(values: dict[str, Any], config_file: Path | None = None
                         ) -> ServerSettings:
    """Settings from, in order of precedence, ``values`` (command-line flags), ``FAIRPOOL_*``
    environment variables and the TOML ``config_file`` (keys as the fields of
    :class:`ServerSettings`, e.g. ``ray_address = "10.0.0.5:6379"``)."""
    if config_file is None:
        return ServerSettings(**values)
    path = config_file.expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: config file not found")
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: invalid config file: {exc}") from None

    class FileSettings(ServerSettings):
        model_config = SettingsConfigDict(toml_file=path)

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    return FileSettings(**values)


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
