"""Running workers on a Ray cluster: connect (:mod:`.connect`), inventory (:mod:`.inventory`),
the worker host actor (:mod:`.host`) and the executor (:mod:`.executor`). Importing this package
does not import Ray; the executor does when it is created."""

from fairpool.executors.ray.connect import RayConnectError, RaySettings, connect, disconnect

__all__ = ["RayConnectError", "RaySettings", "connect", "disconnect"]
