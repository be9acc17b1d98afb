"""Connecting to a Ray cluster, with errors a person can act on.

``ray.init`` against a wrong address retries for minutes and a wrong token shows up as a vague
"failed to connect"; so before it, :func:`connect` checks that the address answers (TCP, a few
seconds) and, for a GCS address, that the cluster accepts our credentials (one GCS call), and
turns each failure into one :class:`RayConnectError` line.

Security settings are Ray's own and are read from the environment, so a secured cluster needs
nothing fairpool-specific: token authentication (``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) and TLS (``RAY_USE_TLS=1``,
``RAY_TLS_SERVER_CERT``, ``RAY_TLS_SERVER_KEY``, ``RAY_TLS_CA_CERT``). ``token_file`` is a
shortcut that sets the first two. Ray reads them when it is imported, so this module imports
Ray only inside :func:`connect`, after applying them.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAMESPACE = "fairpool"


class RayConnectError(Exception):
    """fairpool cannot use the Ray cluster it was given; the message says why."""


@dataclass(frozen=True, slots=True)
class RaySettings:
    address: str  # "auto", "host:port" (the GCS) or "ray://host:port" (Ray Client)
    token_file: Path | None = None
    gpu_resource: str = "GPU"
    connect_timeout_s: float = 10.0


def apply_security(settings: RaySettings) -> None:
    """Put the token file into Ray's environment (before Ray is imported)."""
    if settings.token_file is None:
        return
    path = settings.token_file.expanduser()
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise RayConnectError(f"cannot read the Ray token file {path}: "
                              f"{exc.strerror or exc}") from None
    if not token:
        raise RayConnectError(f"the Ray token file {path} is empty")
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path.resolve())
    os.environ.pop("RAY_AUTH_TOKEN", None)  # the file wins over an inherited token


def _split(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RayConnectError(f"invalid Ray address {address!r}: use auto, host:port (the head "
                              f"node's GCS, port 6379 by default) or ray://host:port")
    return host.strip("[]"), int(port)


def resolve(address: str) -> str:
    """``auto`` becomes the address of the cluster on this machine (``RAY_ADDRESS``, else the
    one ``ray start`` recorded); other addresses are checked for form only."""
    if address == "auto":
        from ray._private import services

        try:
            return str(services.canonicalize_bootstrap_address_or_die("auto"))
        except (ConnectionError, ValueError) as exc:
            raise RayConnectError(f"--ray-address auto found no Ray cluster on this machine "
                                  f"({exc}); start one with 'ray start --head' or give its "
                                  f"address") from None
    target = address.removeprefix("ray://")
    _split(target)
    return address


def check_reachable(address: str, timeout_s: float) -> None:
    host, port = _split(address.removeprefix("ray://"))
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {timeout_s:g} s"
        raise RayConnectError(f"cannot reach Ray at {address}: {reason}; is the head node "
                              f"running, and is this its address?") from None


def check_credentials(address: str, timeout_s: float) -> None:
    """One call to the cluster's GCS: fails fast and clearly on a wrong or missing token."""
    from ray.exceptions import AuthenticationError

    raylet: Any = importlib.import_module("ray._raylet")
    try:
        with _quiet_stderr():  # Ray's C++ client logs each failed call; we explain it instead
            raylet.GcsClient(address=address).get_all_node_info(timeout=timeout_s)
    except AuthenticationError:
        raise RayConnectError(
            f"Ray at {address} rejected fairpool's credentials: the cluster uses token "
            f"authentication and the token is missing or wrong; pass --ray-token-file or set "
            f"RAY_AUTH_TOKEN (see 'Running on a Ray cluster' in the README)") from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayConnectError(f"Ray at {address} does not answer as a Ray cluster: "
                              f"{reason}") from None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null meanwhile (C++ code writes there directly)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def connect(settings: RaySettings) -> str:
    """Connect this process to the cluster as a driver; returns the address used."""
    apply_security(settings)
    address = resolve(settings.address)
    check_reachable(address, settings.connect_timeout_s)
    if not address.startswith("ray://"):
        check_credentials(address, settings.connect_timeout_s)
    import ray

    kwargs: dict[str, Any] = {"namespace": NAMESPACE, "logging_level": "ERROR",
                              "log_to_driver": False}
    try:
        ray.init(address=address, **kwargs)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayConnectError(f"cannot connect to Ray at {address}: {reason}") from None
    return address


def disconnect() -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
