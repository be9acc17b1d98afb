"""Which Unix account a worker runs as (the ``run_as`` setting), resolved on the node.

- ``dynamic``: a transient uid (and gid of the same number) per job from a reserved range, with
  no account behind it, as systemd's DynamicUser; every job is a stranger to every other one.
- ``user``: the submitter's own account: the fairpool user's name, or the account an admin
  mapped it to (``fairpool user map``).
- ``project``: one service account per project (``project_account``, e.g. ``fp-{project}``).
- ``server``: the server's own account (single-user installs; no isolation between jobs).

A name that does not resolve to an account, or that resolves to root, is an
:class:`IdentityError`: the attempt fails with that message, and never falls back to the
server's account. Transient uids are leased per job in the executor's state directory (one file
per uid naming its job), so the ranks and attempts of a job share one uid while it runs, a
restarted executor keeps the leases of the workers it adopts, and no uid that an account uses
is handed out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

MODES = ("dynamic", "user", "project", "server")
ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class IdentityError(Exception):
    """The worker's account cannot be resolved; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Account:
    uid: int
    gid: int
    name: str
    home: str | None  # None: the job's own home in its job directory
    shell: str = "/bin/sh"
    init_groups: bool = False  # take the account's supplementary groups


def named_account(name: str, why: str) -> Account:
    """The Unix account ``name`` on this node (``why`` says where the name came from)."""
    if not ACCOUNT_NAME.fullmatch(name):
        raise IdentityError(f"{why}: {name!r} is not a valid Unix account name")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise IdentityError(f"{why}: there is no Unix account {name!r} on this node; create "
                            f"it, or map the user to an account with `fairpool user map`"
                            ) from None
    if entry.pw_uid == 0 or name == "root":
        raise IdentityError(f"{why}: account {name!r} is root, and jobs never run as root; "
                            f"use an unprivileged account")
    return Account(entry.pw_uid, entry.pw_gid, name, entry.pw_dir or None,
                   entry.pw_shell or "/bin/sh", init_groups=True)


def parse_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    lo, hi = int(low), int(high)
    if not 1000 <= lo <= hi < 2**31 - 1:
        raise ValueError(f"dynamic uid range {text!r}: give LOW-HIGH with 1000 ≤ LOW ≤ HIGH")
    return lo, hi


class DynamicUids:
    """Leases of transient uids, one per job, in ``state`` (a directory only root can write)."""

    def __init__(self, state: Path, low: int, high: int) -> None:
        self.state = state
        self.low, self.high = low, high
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._by_job: dict[str, int] = {}
        for path in state.iterdir():
            with contextlib.suppress(OSError, ValueError):
                self._by_job[path.read_text().strip()] = int(path.name)

    def uid_of(self, job_id: str) -> int | None:
        return self._by_job.get(job_id)

    def jobs(self) -> list[str]:
        return list(self._by_job)

    def acquire(self, job_id: str) -> int:
        held = self._by_job.get(job_id)
        if held is not None:
            return held
        size = self.high - self.low + 1
        start = int(hashlib.sha256(job_id.encode()).hexdigest()[:12], 16) % size
        for step in range(size):
            uid = self.low + (start + step) % size
            if _has_account(uid):
                continue
            path = self.state / str(uid)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(job_id)
            self._by_job[job_id] = uid
            return uid
        raise IdentityError(f"all {size} transient uids are in use; widen dynamic_uids")

    def release(self, job_id: str) -> None:
        uid = self._by_job.pop(job_id, None)
        if uid is not None:
            with contextlib.suppress(OSError):
                (self.state / str(uid)).unlink()

    def retain(self, job_ids: set[str]) -> None:
        """Release the leases of every job not in ``job_ids`` (after adopting workers)."""
        for job_id in [j for j in self._by_job if j not in job_ids]:
            self.release(job_id)


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def dynamic_account(uid: int) -> Account:
    return Account(uid, uid, f"fp-{uid}", None)


def resolve(mode: str, *, owner: str | None, mapped: str | None, project: str,
            project_format: str) -> Account | None:
    """The account of a ``user`` or ``project`` worker (None for ``server``); ``dynamic`` ones
    come from :class:`DynamicUids`."""
    if mode == "server":
        return None
    if mode == "user":
        name = mapped or owner
        if not name:
            raise IdentityError("run_as=user: the job has no submitter to run as")
        how = (f"run_as=user: user {owner!r} is mapped to account {name!r}" if mapped
               else f"run_as=user: user {owner!r}")
        if not mapped and not ACCOUNT_NAME.fullmatch(name):  # e.g. oidc:alice
            raise IdentityError(f"{how} is no Unix account name; map the user to an account "
                                f"with `fairpool user map {owner} ACCOUNT`")
        return named_account(name, how)
    if mode == "project":
        try:
            name = project_format.format(project=project)
        except (KeyError, IndexError, ValueError) as exc:
            raise IdentityError(f"run_as=project: project_account {project_format!r} is not "
                                f"a valid pattern ({exc}); use e.g. fp-{{project}}") from None
        return named_account(name, f"run_as=project: project {project!r}")
    raise IdentityError(f"run_as={mode!r} is not one of {', '.join(MODES)}")
