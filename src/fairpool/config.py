"""Configuration: one typed settings object for the server (read once, from flags and
``FAIRPOOL_*`` environment variables), and the client's small config file.

The client config (``$XDG_CONFIG_HOME/fairpool/client.json``, mode 0600) holds the server URL,
the bearer token and the CA certificate to trust; ``fairpool up`` writes them for the CLI on the
same machine (the first start's admin token), ``fairpool login`` for anyone else.
``FAIRPOOL_URL``, ``FAIRPOOL_TOKEN`` and ``FAIRPOOL_CA_BUNDLE`` override them.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from fairpool.domain.queue import InQueueOrder
from fairpool.scheduler.snapshot import Strategy

RunAsMode = Literal["auto", "dynamic", "user", "project", "server"]


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fairpool"


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
    job_order: InQueueOrder = Field(
        InQueueOrder.PRIORITY, description="order of waiting jobs in projects that set none: "
                                           "fifo, priority or attained")
    usage_k: float = Field(
        0.0, ge=0, le=100, description="time-aware fair share: how much recent usage lowers a "
                                       "queue's share of idle GPUs (0: off; 1: using half the "
                                       "pool more than a sibling halves its weight)")
    usage_half_life_s: float = Field(86400.0, gt=0, le=365 * 86400,
                                     description="usage this old counts half")
    usage_window_s: float | None = Field(7 * 86400.0, gt=0, le=3650 * 86400,
                                         description="usage older than this does not count")
    write_client_config: bool = True
    ray_address: str | None = Field(
        None, description="run workers on this Ray cluster: auto, host:port or ray://host:port")
    ray_gpu_resource: str = Field("GPU", min_length=1, description="Ray resource counted as GPUs")
    ray_token_file: Path | None = Field(None, description="Ray authentication token file")
    ray_connect_timeout_s: float = Field(10.0, gt=0, le=600)
    tls_cert: Path | None = Field(None, description="serve HTTPS with this certificate (PEM)")
    tls_key: Path | None = Field(None, description="the certificate's private key (PEM)")
    secret_key: str | None = Field(
        None, description="Fernet key encrypting project secrets; default: secret_key_file")
    secret_key_file: Path | None = Field(
        None, description="file holding the secret key, created at first start "
                          "[default: DATA_DIR/secret.key]")
    admin_user: str = Field("admin", pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}$")
    oidc_issuer: str | None = Field(None, description="accept JWTs from this OIDC issuer")
    oidc_audience: str | None = Field(None, description="the audience JWTs must be for")
    oidc_jwks_url: str | None = Field(None, description="default: from the issuer's discovery")
    oidc_username_claim: str = "sub"
    oidc_groups_claim: str = "groups"
    oidc_user_prefix: str = Field(
        "oidc:", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}:$",
        description="put before the identity provider's user names (role bindings name "
                    "oidc:alice), so none is ever taken for a local user such as admin")
    submit_rate: float = Field(20.0, ge=0, le=1e6,
                               description="submits/s per user, all its tokens together; 0: off")
    submit_burst: int = Field(500, ge=1, le=1_000_000)
    project_submit_rate: float | None = Field(
        None, ge=0, le=1e6, description="submits/s of all a project's members together "
                                        "[default: 5 × submit_rate]; 0: off")
    project_submit_burst: int | None = Field(
        None, ge=1, le=10_000_000, description="[default: 5 × submit_burst]")
    max_tokens_per_user: int = Field(20, ge=1, le=100_000,
                                     description="live (unexpired, unrevoked) tokens a user may "
                                                 "hold, whoever created them")
    max_token_lifetime_s: float = Field(
        90 * 86400, gt=0, le=5 * 365 * 86400,
        description="the longest a token created by a non-admin lives (longer or none asked: "
                    "this)")
    oidc_token_lifetime_s: float = Field(
        86400, gt=0, le=5 * 365 * 86400,
        description="the longest a token created with an OIDC login lives (non-admins), and "
                    "never past that login's own expiry")
    audit_refusals_per_s: float = Field(
        1.0, gt=0, le=1e6, description="refused requests of one caller recorded in the audit "
                                       "log a second; the rest are counted in its next record")
    audit_refusals_burst: int = Field(20, ge=1, le=1_000_000)
    max_pending_per_project: int = Field(10_000, ge=1, le=10_000_000)
    max_body_bytes: int = Field(1 << 20, ge=1024, le=1 << 30)
    log_max_mib: int = Field(1024, ge=1, le=1 << 20,
                             description="most MiB of output kept in each worker's log; the "
                                         "rest is discarded, with a line and an event saying so")
    breaker_failures: int = Field(3, ge=1, le=1000, description="failures of distinct jobs on a "
                                  "node within breaker_window_s that cordon it (see "
                                  "control/breaker.py for which failures count)")
    breaker_window_s: float = Field(60.0, gt=0, le=86400)
    breaker_cooldown_s: float = Field(300.0, gt=0, le=7 * 86400)
    retry_backoff_s: float = Field(5.0, ge=0, le=3600,
                                   description="wait before a first retry; doubles each time")
    sample_every_s: float = Field(10.0, ge=0.1, le=3600,
                                  description="how often GPU utilisation is read")
    run_as: RunAsMode = Field(
        "auto", description="Unix account of jobs: auto (dynamic when the server is root, "
                            "else server), dynamic (a transient uid per job), user (the "
                            "submitter's account, or `fairpool user map`), project (account "
                            "project_account), server (this server's own account)")
    project_account: str = Field("fp-{project}", min_length=1, max_length=64,
                                 description="run_as=project: the account of a project's jobs")
    dynamic_uids: str = Field("61184-65519", pattern=r"^\d+-\d+$",
                              description="run_as=dynamic: the range of transient uids")
    env_passthrough: list[str] = Field(
        default_factory=list, max_length=256,
        description="variables of the server's environment passed on to jobs (names)")
    cgroups: bool = Field(True, description="confine each worker in its own cgroup (root)")
    namespaces: bool = Field(True, description="run each worker in its own PID and mount "
                                               "namespace with bubblewrap (root)")
    pids_limit: int = Field(4096, ge=16, le=4_194_304,
                            description="most processes and threads per worker")
    allowed_mount_roots: list[Path] = Field(
        default_factory=list, max_length=256,
        description="host directories under which jobs may --mount (none: no mounts)")
    image_pull: Literal["missing", "never", "always"] = Field(
        "missing", description="when podman pulls a job's image")
    webhook_timeout_s: float = Field(5.0, gt=0, le=120, description="how long a webhook "
                                     "delivery waits to connect and for each read of the answer")
    webhook_max_attempts: int = Field(6, ge=1, le=100, description="attempts of a webhook "
                                      "delivery before it is marked failed")
    webhook_retry_base_s: float = Field(10.0, ge=0, le=3600, description="wait before a "
                                        "webhook delivery's second attempt; doubles each time")
    webhook_retry_cap_s: float = Field(600.0, ge=0, le=86400,
                                       description="the longest wait between attempts")
    webhook_allow_private: bool = Field(
        True, description="deliver webhooks to loopback, private and link-local addresses "
                          "(off: public addresses only, checked at creation and each attempt)")

    @field_validator("db")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("use a sqlite:///… or postgresql+psycopg://… database URL")
        return url

    @field_validator("env_passthrough")
    @classmethod
    def _variable_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or not (name[0].isalpha() or name[0] == "_") or not all(
                    c.isalnum() or c == "_" for c in name) or not name.isascii():
                raise ValueError(f"{name!r} is not an environment variable name")
        return names

    @field_validator("allowed_mount_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        out = []
        for root in roots:
            root = root.expanduser()
            if not root.is_absolute():
                raise ValueError(f"allowed mount root {root} must be an absolute path")
            if root == Path("/"):
                raise ValueError("allowed mount root / would allow every host path; name the "
                                 "directories that hold datasets")
            out.append(Path(os.path.normpath(root)))
        return out

    @field_validator("data_dir", "nodes_file", "ray_token_file", "tls_cert", "tls_key",
                     "secret_key_file")
    @classmethod
    def _expand_user(cls, path: Path | None) -> Path | None:
        return None if path is None else path.expanduser()

    @model_validator(mode="after")
    def _one_inventory(self) -> ServerSettings:
        if self.ray_address is not None and (self.simulate_gpus is not None
                                             or self.nodes_file is not None):
            raise ValueError("--ray-address takes the nodes from Ray: drop --simulate-gpus and "
                             "--nodes-file (give Ray nodes a GPU resource to simulate GPUs)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both --tls-cert and --tls-key (make a pair for testing with "
                             "`fairpool tls self-signed`)")
        for path in (self.tls_cert, self.tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"{path}: file not found")
        if (self.oidc_issuer is None) != (self.oidc_audience is None):
            raise ValueError("OIDC needs both oidc_issuer and oidc_audience")
        if self.oidc_user_prefix == "group:":
            raise ValueError("oidc_user_prefix group: would make users of the identity "
                             "provider into groups; pick another, e.g. oidc:")
        return self

    def project_submit(self) -> tuple[float, int]:
        """The rate and burst of a project's submit bucket."""
        rate, burst = self.project_submit_rate, self.project_submit_burst
        return (5 * self.submit_rate if rate is None else rate,
                5 * self.submit_burst if burst is None else burst)

    def key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"

    def database_url(self) -> str:
        return self.db or f"sqlite:///{self.data_dir / 'fairpool.db'}"

    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        scheme = "https" if self.tls_cert is not None else "http"
        if scheme == "https" and host == "127.0.0.1":
            host = "localhost"  # the name a certificate for this machine carries
        return f"{scheme}://{host}:{self.port}"


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
