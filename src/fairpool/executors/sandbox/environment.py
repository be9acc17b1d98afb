"""A worker's environment, built from nothing: it never inherits the server's.

Layers, each overriding the one before: a small base of the run-as account (``PATH``, ``HOME``,
``USER``, ``LOGNAME``, ``SHELL``, and the machine's ``LANG``/``LC_ALL``/``TZ``), the variables an
admin passes through (``env_passthrough``), the project's secrets, the job's own ``env``, and
last fairpool's variables (devices, rendezvous, job files), which always win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: the search path of an account other than the server's own
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
#: the machine's settings a job may rely on whatever account runs it
LOCALE = ("LANG", "LC_ALL", "TZ")


def base_env(server_env: Mapping[str, str], *, name: str | None, home: str | None,
             shell: str = "/bin/sh", own_account: bool = False) -> dict[str, str]:
    """The base of a worker running as ``name`` (None: the server's own account, whose
    ``PATH``, ``HOME`` and ``USER`` are kept)."""
    env = {k: server_env[k] for k in LOCALE if k in server_env}
    if own_account or name is None:
        for key in ("PATH", "HOME", "USER", "LOGNAME", "SHELL"):
            if key in server_env:
                env[key] = server_env[key]
        env.setdefault("PATH", SYSTEM_PATH)
        return env
    env.update(PATH=SYSTEM_PATH, USER=name, LOGNAME=name, SHELL=shell)
    if home is not None:
        env["HOME"] = home
    return env


def layered(base: Mapping[str, str], server_env: Mapping[str, str], passthrough: Iterable[str],
            secrets: Mapping[str, str], job: Mapping[str, str], fairpool: Mapping[str, str]
            ) -> dict[str, str]:
    """The whole environment, in the order of the module's docs."""
    env = dict(base)
    env.update({k: server_env[k] for k in passthrough if k in server_env})
    env.update(secrets)
    env.update(job)
    env.update(fairpool)
    return env
