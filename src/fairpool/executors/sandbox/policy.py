"""The sandbox of one machine: what it can enforce, and how each worker is started in it.

:class:`Sandbox` detects, once, what the node allows (root, bubblewrap, ``setpriv``, cgroups,
podman, stand-in GPU nodes), reports it as an isolation level (:meth:`Sandbox.report`), and for
each worker resolves its account, prepares its job directory, cgroup and devices, and returns
the command line and environment to start it with (:meth:`Sandbox.prepare`); what a worker left
(cgroup, container, transient uid) is released by :meth:`Sandbox.finish`. A worker that cannot
be started as asked raises :class:`SandboxError`: its attempt fails with that message, and is
not retried; nothing falls back to less isolation than the settings ask for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fairpool.domain.images import image_problem

from . import cgroups, commands, environment, identity, jobfiles
from .devices import Device, StandIns, real_gpus

PODMAN_ENV = ("PATH", "HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "CONTAINERS_STORAGE_CONF",
              "CONTAINERS_REGISTRIES_CONF", "REGISTRIES_CONFIG_PATH", "LANG", "TZ")
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(Exception):
    """The worker cannot be started as the settings ask; the message says why."""


class WorkerLike(Protocol):
    """What the sandbox reads of a worker spec (see ``fairpool.executors.base.WorkerSpec``)."""

    @property
    def worker_id(self) -> str: ...
    @property
    def job_id(self) -> str: ...
    @property
    def node(self) -> str: ...
    @property
    def devices(self) -> tuple[int, ...]: ...
    @property
    def command(self) -> tuple[str, ...]: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def workdir(self) -> str | None: ...
    @property
    def job_dir(self) -> str | None: ...
    @property
    def project(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def account(self) -> str | None: ...
    @property
    def image(self) -> str | None: ...
    @property
    def mounts(self) -> tuple[tuple[str, str, bool], ...]: ...
    @property
    def memory_mib(self) -> int: ...
    @property
    def cpu_millis(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    run_as: str = "server"  # auto, dynamic, user, project or server
    project_account: str = "fp-{project}"
    dynamic_uids: str = "61184-65519"
    env_passthrough: tuple[str, ...] = ()
    cgroups: bool = True
    namespaces: bool = True
    pids_limit: int = 4096
    image_pull: str = "missing"
    mount_roots: tuple[str, ...] = ()


@dataclass(slots=True)
class Launch:
    argv: list[str]
    env: dict[str, str]  # of the processes that start the worker (fairpool's own, fixed)
    cwd: str | None
    record: dict[str, Any] = field(default_factory=dict)  # kept with the worker for cleanup
    stdin: str | None = None  # the job's environment, for commands.ENV_STEP


#: the environment of everything that runs before the job's own account takes over
START_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _bubblewrap(path: str | None) -> tuple[str | None, str]:
    """bubblewrap's path if it can make namespaces here, and why not otherwise."""
    if path is None:
        return None, "bubblewrap is not installed (Debian package bubblewrap)"
    env_path = shutil.which("env") or "/usr/bin/env"
    try:
        subprocess.run([env_path, "--default-signal=TERM", "true"], check=True,
                       capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None, "env(1) cannot reset signals (coreutils 8.31 or newer is needed)"
    try:
        done = subprocess.run([path, "--bind", "/", "/", "--unshare-pid", "--proc", "/proc",
                               "--dev", "/dev", "--", "/bin/true"], capture_output=True,
                              timeout=10, env={"PATH": environment.SYSTEM_PATH})
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"bubblewrap does not run ({exc})"
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        return None, f"bubblewrap cannot make namespaces here ({why[-1] if why else 'failed'})"
    return path, ""


class Sandbox:
    def __init__(self, config: SandboxConfig, data_dir: Path, state_dir: Path,
                 simulated: Sequence[tuple[str, int]] = (),
                 server_env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.data_dir = data_dir
        self.state_dir = state_dir
        self.server_env = dict(os.environ if server_env is None else server_env)
        self.root = os.geteuid() == 0
        mode = config.run_as
        if mode == "auto":
            mode = "dynamic" if self.root else "server"
        if mode not in identity.MODES:
            raise ValueError(f"run_as={mode!r}: use one of auto, {', '.join(identity.MODES)}")
        if mode != "server" and not self.root:
            raise ValueError(f"run_as={mode} needs a server running as root (only root can "
                             f"start jobs as other accounts); use run_as=server")
        self.mode = mode
        self.setpriv = shutil.which("setpriv") if mode != "server" else None
        if mode != "server" and self.setpriv is None:
            raise ValueError(f"run_as={mode} needs setpriv (Debian package util-linux)")
        self.bwrap: str | None = None
        self.bwrap_missing = "off (namespaces = false)"
        if mode == "server":  # a job with the server's own rights would walk out of them
            self.bwrap_missing = "not used for jobs that run as the server's account"
        elif config.namespaces:
            self.bwrap, self.bwrap_missing = _bubblewrap(shutil.which("bwrap"))
        self.cgroups: cgroups.Support = cgroups.Support(None, missing=(
            "cgroups (off: cgroups = false)" if not config.cgroups else
            "cgroups (the server is not root)",))
        if config.cgroups and self.root:
            self.cgroups = cgroups.detect()
        self.env = shutil.which("env") or "/usr/bin/env"
        self.podman = shutil.which("podman")
        if self.root:  # the sandbox's mount point of job directories, and stand-in devices
            Path(jobfiles.INSIDE).mkdir(parents=True, exist_ok=True)
            for directory in (Path(jobfiles.INSIDE).parent, Path(jobfiles.INSIDE)):
                os.chmod(directory, 0o755)
        self.stand_ins = StandIns(str(data_dir), simulated) if simulated else None
        self.uids = (identity.DynamicUids(state_dir / "uids", *identity.parse_range(
            config.dynamic_uids)) if mode == "dynamic" else None)
        self.podman_conf = state_dir / "containers.conf"
        if self.podman is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            self.podman_conf.write_text(commands.PODMAN_CONF)
        self._images: set[str] = set()  # images seen present (podman image exists)
        self.reach_note = ""
        if mode != "server" and self.bwrap is None:
            # without a mount namespace a job reaches its folder through the data directory
            with contextlib.suppress(OSError):
                os.chmod(data_dir, 0o711)
            if not all(os.stat(p).st_mode & 0o001 for p in data_dir.parents):
                self.reach_note = (f"jobs cannot reach their folders: a directory above "
                                   f"{data_dir} is not searchable by others (choose a data "
                                   f"directory under one that is, or install bubblewrap)")

    # -- what the node offers -----------------------------------------------------------
    def report(self) -> dict[str, Any]:
        """The isolation level of this node: ``full``, ``partial`` (with what is missing) or
        ``none`` (jobs run as the server's account)."""
        missing: list[str] = []
        if self.mode == "server":
            missing.append("an account per job (run_as=server: jobs run as the server's own "
                           "account" + ("" if self.root else ", which is not root") +
                           ", not isolated from one another or from the server)")
        if self.bwrap is None:
            missing.append(f"PID and mount namespaces: {self.bwrap_missing}")
        if self.reach_note:
            missing.append(self.reach_note)
        missing.extend(self.cgroups.missing)
        if (self.cgroups.version is None or not self.cgroups.devices) and self.bwrap is None:
                missing.append("GPU device confinement (needs the v1 device cgroup or a mount "
                               "namespace)")
        level = "none" if self.mode == "server" else ("partial" if missing else "full")
        # v2 confines devices by the mount namespace: not missing when bubblewrap runs
        if (level == "partial" and self.bwrap is not None and self.cgroups.version == "v2"
                and all(m.startswith("device cgroup") for m in missing)):
            level = "full"
        return {"level": level, "run_as": self.mode, "missing": missing,
                "simulated_devices": bool(self.stand_ins and self.stand_ins.available),
                "containers": self.podman is not None}

    def stand_in_path(self, node: str, index: int) -> str | None:
        if self.stand_ins is None or not self.stand_ins.available:
            return None
        return str(self.stand_ins.path(node, index))

    # -- one worker ----------------------------------------------------------------------
    def account(self, spec: WorkerLike) -> identity.Account | None:
        try:
            if self.mode == "dynamic":
                assert self.uids is not None
                return identity.dynamic_account(self.uids.acquire(spec.job_id))
            return identity.resolve(self.mode, owner=spec.owner, mapped=spec.account,
                                    project=spec.project,
                                    project_format=self.config.project_account)
        except identity.IdentityError as exc:
            raise SandboxError(f"cannot run as the job's account: {exc}") from None

    def _devices(self, spec: WorkerLike, simulated: bool) -> list[Device]:
        if not spec.devices:
            return []
        if simulated:
            return self.stand_ins.devices(spec.node, spec.devices) if self.stand_ins else []
        return real_gpus(spec.devices)

    def prepare(self, spec: WorkerLike, fairpool_env: Mapping[str, str], simulated: bool
                ) -> Launch:
        account = self.account(spec)
        record: dict[str, Any] = {"uid": None if account is None else account.uid,
                                  "job_dir": spec.job_dir}
        job_dir = spec.job_dir
        if job_dir is not None:
            try:
                jobfiles.prepare(Path(job_dir), None if account is None else account.uid,
                                 None if account is None else account.gid)
            except OSError as exc:
                raise SandboxError(f"cannot prepare the job directory {job_dir}: {exc}"
                                   ) from None
        contained = spec.image is not None
        hidden = contained or self.bwrap is not None
        env = dict(fairpool_env)
        home: str | None = None
        if job_dir is not None:
            if hidden:  # the worker sees its job directory at jobfiles.INSIDE
                for key in ("FAIRPOOL_STOP_FILE", "FAIRPOOL_UTIL_FILE",
                            "FAIRPOOL_CHECKPOINT_DIR"):
                    if key in env and env[key].startswith(job_dir):
                        env[key] = jobfiles.inside(env[key], job_dir)
            own_home = jobfiles.inside(f"{job_dir}/home", job_dir) if hidden else (
                f"{job_dir}/home")
            home = own_home
        if account is not None and account.home and os.path.isdir(account.home) and (
                not contained):
            home = account.home
        devices = self._devices(spec, simulated)
        if spec.workdir is not None and (account is not None or contained):
            self._check_workdir(spec.workdir, account)
        base = environment.base_env(self.server_env, name=None if account is None
                                    else account.name, home=home,
                                    shell=account.shell if account else "/bin/sh")
        if account is None and home is not None and "HOME" not in base:
            base["HOME"] = home
        full = environment.layered(base, self.server_env, self.config.env_passthrough, {},
                                   spec.env, env)
        group = self._cgroup(spec, devices)
        if group is not None:
            record["cgroup"] = group.record()
        try:
            if contained:
                return self._container(spec, full, account, devices, group, record)
            wrapped = self.bwrap is not None and job_dir is not None
            argv = commands.cgroup_join([] if group is None else group.procs_files(),
                                        keep_term=wrapped)
            if self.bwrap is not None and job_dir is not None:
                layout = commands.Layout(hide=(str(self.data_dir),), job_dir=job_dir,
                                         workdir=spec.workdir, devices=tuple(devices))
                hide = None if self.cgroups.devices or self.stand_ins is None else str(
                    self.stand_ins.root)
                argv += commands.bubblewrap(self.bwrap, layout, hide,
                                            read_only=self.mode == "dynamic")
            if account is not None:
                assert self.setpriv is not None
                argv += [*commands.setpriv(self.setpriv, account),
                         *commands.default_term(self.env)]
            elif wrapped:
                argv += commands.default_term(self.env)
            # the job's environment reaches only the last step, run as its account; so does
            # the lookup of its program
            argv += commands.env_step()
            return Launch([*argv, *spec.command], dict(START_ENV), spec.workdir, record,
                          stdin=commands.env_script(full))
        except BaseException:
            if group is not None:
                group.remove()
            raise

    def _check_workdir(self, workdir: str, account: identity.Account | None) -> None:
        """A working directory must be one the job's account could enter anyway, and never
        fairpool's own state (a container's is mounted by root's podman)."""
        real = os.path.realpath(workdir)
        for private in {str(self.data_dir), str(self.state_dir)}:
            if real == private or real.startswith(private.rstrip("/") + "/"):
                raise SandboxError(f"the working directory {workdir} is inside fairpool's "
                                   f"data directory, which jobs may not use")
        if account is None:
            return
        gids = {account.gid}
        if account.init_groups:
            with contextlib.suppress(OSError, KeyError):
                gids.update(os.getgrouplist(account.name, account.gid))
        if not jobfiles.reachable(real, account.uid, gids):
            raise SandboxError(
                f"the working directory {workdir} is not reachable by the job's account "
                f"{account.name} (uid {account.uid}, run_as={self.mode}): make it and its "
                f"parents searchable by that account, or submit with --workdir")

    def _cgroup(self, spec: WorkerLike, devices: Sequence[Device]
                ) -> cgroups.WorkerCgroup | None:
        if self.cgroups.version is None:
            return None
        limits = cgroups.Limits(memory_mib=spec.memory_mib, cpu_millis=spec.cpu_millis,
                                pids=self.config.pids_limit,
                                devices=tuple(d.rule for d in devices))
        try:
            return cgroups.WorkerCgroup.create(self.cgroups, spec.worker_id, limits)
        except OSError as exc:
            raise SandboxError(f"cannot make the worker's cgroup: {exc}") from None

    def _container(self, spec: WorkerLike, env: dict[str, str],
                   account: identity.Account | None, devices: Sequence[Device],
                   group: cgroups.WorkerCgroup | None, record: dict[str, Any]) -> Launch:
        image = spec.image
        assert image is not None
        problem = image_problem(image)
        if problem is not None:
            raise SandboxError(problem)
        if self.podman is None:
            raise SandboxError(f"the job runs in image {image} but podman is not installed on "
                               f"node {spec.node} (Debian package podman)")
        if spec.job_dir is None:
            raise SandboxError("a container worker needs a job directory")
        if self.config.image_pull == "never" and not self.image_present(image):
            raise SandboxError(f"image {image} is not on node {spec.node} and image_pull is "
                               f"never: load it there (podman load / podman pull)")
        mounts = []
        for source, target, read_only in spec.mounts:
            real = os.path.realpath(source)
            if not any(real == r or real.startswith(r.rstrip("/") + "/")
                       for r in self.config.mount_roots):
                raise SandboxError(f"mount source {source} is not under an allowed mount root "
                                   f"on node {spec.node}")
            if not os.path.exists(real):
                raise SandboxError(f"mount source {source} does not exist on node {spec.node}")
            mounts.append(commands.Mount(real, target, read_only))
        bad = [k for k, v in env.items() if "\n" in v or "\r" in v]
        if bad:
            raise SandboxError(f"variables {', '.join(bad)} hold line breaks, which podman's "
                               f"environment file cannot carry")
        env.pop("PATH", None)  # the image's own PATH, not this machine's
        env_file = self.state_dir / f"{spec.worker_id}.env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(commands.env_file_text(env))
        record["env_file"] = str(env_file)
        record["container"] = commands.container_name(spec.worker_id)
        layout = commands.Layout(hide=(), job_dir=spec.job_dir, workdir=spec.workdir,
                                 devices=tuple(devices), mounts=tuple(mounts))
        argv = commands.podman_run(
            self.podman, worker_id=spec.worker_id, image=image, command=spec.command,
            env=env, env_file=str(env_file), account=account, layout=layout,
            cgroup_parent=None if group is None else group.relative(),
            pull=self.config.image_pull, pids_limit=self.config.pids_limit)
        return Launch(argv, self._podman_env(), None, record)

    def image_present(self, image: str) -> bool:
        if image in self._images:
            return True
        assert self.podman is not None
        done = subprocess.run([self.podman, "image", "exists", image], capture_output=True,
                              env=self._podman_env(), timeout=60)
        if done.returncode == 0:
            self._images.add(image)
        return done.returncode == 0

    def _podman_env(self) -> dict[str, str]:
        env = {k: self.server_env[k] for k in PODMAN_ENV if k in self.server_env}
        env.setdefault("PATH", ROOT_PATH)
        env["CONTAINERS_CONF"] = self.server_env.get("CONTAINERS_CONF", str(self.podman_conf))
        return env

    # -- after a worker -------------------------------------------------------------------
    def out_of_memory(self, record: Mapping[str, Any], code: int) -> bool:
        group = cgroups.WorkerCgroup.from_record(record.get("cgroup"))
        if group is None:
            return False
        if group.oom_kills() > 0:
            return True
        return code in (-9, 137) and record.get("container") is not None and group.hit_limit()

    def kill(self, record: Mapping[str, Any]) -> None:
        """SIGKILL whatever the worker left running, inside its cgroup or its container."""
        name = record.get("container")
        if name and self.podman is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([self.podman, "rm", "-f", "--time", "0", str(name)],
                               capture_output=True, env=self._podman_env(), timeout=60)
        group = cgroups.WorkerCgroup.from_record(record.get("cgroup"))
        if group is not None:
            group.kill_all()

    def finish(self, record: Mapping[str, Any]) -> bool:
        """Release what the worker held: its container, cgroup and environment file; False if
        its cgroup could not be emptied (then its uid must not go to another job)."""
        name = record.get("container")
        if name and self.podman is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run([self.podman, "rm", "-f", "--time", "0", "--ignore", str(name)],
                               capture_output=True, env=self._podman_env(), timeout=60)
        env_file = record.get("env_file")
        if env_file:
            with contextlib.suppress(OSError):
                os.unlink(env_file)
        group = cgroups.WorkerCgroup.from_record(record.get("cgroup"))
        return group is None or group.remove()

    def release(self, job_id: str, record: Mapping[str, Any]) -> None:
        """The job's last worker here has ended: its transient uid goes back to the pool,
        with nothing left behind that the next holder of the uid could reach. The caller
        makes sure no worker of the job starts meanwhile."""
        if self.uids is None or self.uids.uid_of(job_id) is None:
            return
        uid = self.uids.uid_of(job_id)
        assert uid is not None
        if record.get("cgroup") is None:
            kill_uid(uid)  # nothing else tells what the uid left running
        job_dir = record.get("job_dir") or str(jobfiles.job_dir(self.data_dir, job_id))
        with contextlib.suppress(OSError):
            jobfiles.chown_tree(Path(job_dir), 0, 0)
        self.uids.release(job_id)

    def retain(self, job_ids: set[str]) -> None:
        """After a restart: release the uids of every job not among ``job_ids`` (those whose
        workers were adopted), as :meth:`release` would have."""
        if self.uids is None:
            return
        for job_id in [j for j in self.uids.jobs() if j not in job_ids]:
            self.release(job_id, {})


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a transient uid about to be handed to another job)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    if int(line.split()[1]) == uid:
                        os.kill(int(entry.name), 9)
                    break
