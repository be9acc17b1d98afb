"""Command lines that start a worker in its sandbox.

A process worker: ``sh`` puts itself into the worker's cgroup, then ``exec``s bubblewrap (new
PID, IPC and mount namespaces: the host's file system with the data directory hidden, a fresh
``/proc`` and a minimal ``/dev`` holding only the worker's GPUs, its job directory at
``/run/fairpool/job`` and a private ``/tmp``), which runs ``setpriv``: the worker's uid and gid,
no supplementary groups but the account's, no capabilities and ``no_new_privs``; then, as the
account, a shell takes the job's environment from stdin and runs the command. Each part is left
out where the machine or the settings do not offer it; everything before the last step runs
with a fixed environment of fairpool's.

A container worker: ``podman run`` of the job's image, with the worker's uid, its GPUs as
devices, its job directory, working directory and allowed mounts, the host's network (so
``torch.distributed`` rendezvous works across workers and nodes), no capabilities and
``no-new-privileges`` (a setuid program in the image gains nothing), mounts without setuid or
devices, podman's cgroup under the worker's (whose limits then hold for the container), and the
output handed straight to the log (``passthrough``), so it keeps flowing if podman's client
dies.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .devices import Device
from .identity import Account
from .jobfiles import INSIDE

#: joins the cgroups named before ``--``, then runs the rest (``$$`` of a new shell is its pid)
CGJOIN = ('for f do if [ "$f" = -- ]; then shift; break; fi; echo $$ > "$f" || exit 125; '
          'shift; done; exec "$@"')
#: the same, ignoring SIGTERM: bubblewrap's own processes must outlive the SIGTERM a stop sends
#: to the worker's process group (the command gets it back with ``env --default-signal``)
CGJOIN_KEEP = "trap '' TERM; " + CGJOIN
PODMAN_CONF = """[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things are: the paths the sandbox hides and the worker's own."""

    hide: tuple[str, ...]  # host directories the worker must not see (the data directory)
    job_dir: str  # the job directory on the host
    workdir: str | None
    devices: tuple[Device, ...] = ()
    mounts: tuple[Mount, ...] = field(default_factory=tuple)


def cgroup_join(procs_files: Sequence[str], keep_term: bool = False) -> list[str]:
    if not procs_files and not keep_term:
        return []
    return ["/bin/sh", "-c", CGJOIN_KEEP if keep_term else CGJOIN, "fairpool-cgjoin",
            *procs_files, "--"]


def default_term(env_path: str) -> list[str]:
    """Give the command the default SIGTERM back (ignored by the processes before it)."""
    return [env_path, "--default-signal=TERM"]


def setpriv(path: str, account: Account) -> list[str]:
    groups = ["--init-groups"] if account.init_groups else ["--clear-groups"]
    return [path, f"--reuid={account.uid}", f"--regid={account.gid}", *groups,
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]


def bubblewrap(path: str, layout: Layout, hide_stand_ins: str | None,
               read_only: bool = False) -> list[str]:
    """bubblewrap's command line. ``read_only``: the host's file system is read-only but for
    the working directory (a transient uid must leave nothing behind where the next holder of
    the uid would find it). ``/tmp`` is a fresh tmpfs (charged to the worker's memory), never
    a directory the job could have filled with links; a working directory under it is bound
    back. What is hidden is mounted last, over whatever the binds before it brought back."""
    argv = [path, "--die-with-parent", "--unshare-pid", "--unshare-ipc",
            "--unshare-cgroup-try", "--ro-bind" if read_only else "--bind", "/", "/",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm",
            "--bind", layout.job_dir, INSIDE, "--perms", "1777", "--tmpfs", "/tmp"]
    for device in layout.devices:
        argv += ["--dev-bind", device.host, device.inside]
    workdir = layout.workdir
    if workdir is not None:
        if workdir == "/tmp" or workdir.startswith("/tmp/"):
            parts = workdir.split("/")[2:-1]  # the directories between /tmp and it
            for i in range(len(parts)):
                argv += ["--perms", "0755", "--dir", "/tmp/" + "/".join(parts[:i + 1])]
            argv += ["--bind", workdir, workdir]  # back from under the private /tmp
        elif read_only:
            argv += ["--bind", workdir, workdir]
    for hidden in (*layout.hide, *([hide_stand_ins] if hide_stand_ins else [])):
        argv += ["--perms", "0700", "--tmpfs", hidden]
    if workdir is not None:
        argv += ["--chdir", workdir]
    return [*argv, "--"]


#: the last step before the command, run as the job's account: take the job's environment
#: from stdin (a file only root could open, written by the executor), give the command
#: /dev/null as stdin. Nothing that runs as root before it ever sees the job's variables:
#: LD_PRELOAD and its kind in a job's --env act on the job alone.
ENV_STEP = 'eval "$(cat)" && exec "$@" </dev/null'
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_step() -> list[str]:
    return ["/bin/sh", "-c", ENV_STEP, "fairpool-env"]


def env_script(env: Mapping[str, str]) -> str:
    """The environment as ``export NAME='value'`` lines for :data:`ENV_STEP`."""
    bad = [k for k in env if not NAME.fullmatch(k)]
    if bad:
        raise ValueError(f"not environment variable names: {', '.join(map(repr, bad))}")
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())


def container_name(worker_id: str) -> str:
    return "fairpool-" + re.sub(r"[^A-Za-z0-9_.-]", "-", worker_id)


def podman_run(podman: str, *, worker_id: str, image: str, command: Sequence[str],
               env: Mapping[str, str], env_file: str, account: Account | None, layout: Layout,
               cgroup_parent: str | None, pull: str, pids_limit: int) -> list[str]:
    """``podman run`` of one worker; its environment is read from ``env_file`` (root only), so
    neither secrets nor a job's variables reach podman's own command line or environment."""
    argv = [podman, "run", "--rm", "--name", container_name(worker_id), f"--pull={pull}",
            "--network=host", "--log-driver=passthrough", "--init=false",
            "--cap-drop=all", "--security-opt=no-new-privileges",
            f"--pids-limit={pids_limit}", f"--env-file={env_file}",
            "-v", f"{layout.job_dir}:{INSIDE}:rw,nosuid,nodev"]
    if account is not None:  # without one (run_as=server, Ray nodes): the image's own user
        argv += [f"--user={account.uid}:{account.gid}"]
    if cgroup_parent is not None:
        argv += [f"--cgroup-parent={cgroup_parent}"]
    for device in layout.devices:
        argv += [f"--device={device.host}:{device.inside}:rwm"]
    if layout.workdir is not None:
        argv += ["-v", f"{layout.workdir}:{layout.workdir}:rw,nosuid,nodev", "-w",
                 layout.workdir]
    for m in layout.mounts:
        argv += ["-v", f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'},nosuid,nodev"]
    return [*argv, "--", image, *command]


def env_file_text(env: Mapping[str, str]) -> str:
    """podman's ``--env-file`` format: one NAME=value a line (values are single-line; a value
    with a newline is refused before, by the caller)."""
    return "".join(f"{k}={v}\n" for k, v in env.items())
