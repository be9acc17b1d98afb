"""A job's own directory, the only part of the data directory a job can reach.

``DATA_DIR/jobs/<job>/`` belongs to the job's account (mode 0700) and holds ``checkpoint/``
(kept across attempts), ``home/`` (``HOME`` of accounts without one) and per worker
``<attempt>.<rank>.stop`` (why it is being stopped) and
``<attempt>.<rank>.util.json`` (the utilisation it reports). A sandboxed worker sees it as
``/run/fairpool/job``. Logs stay in the root-only ``DATA_DIR/logs``: a worker writes its log
through the descriptor it is given and cannot reach, replace or link any log.

A job owns its directory, so it may plant links there: files fairpool writes or reads in it are
opened without following links, and only regular files are read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

INSIDE = "/run/fairpool/job"
SUBDIRS = ("checkpoint", "home")
MAX_READ = 64 * 1024


def job_dir(data_dir: Path | str, job_id: str) -> Path:
    return Path(data_dir) / "jobs" / job_id


def stop_name(attempt: int, rank: int) -> str:
    return f"{attempt}.{rank}.stop"


def util_name(attempt: int, rank: int) -> str:
    return f"{attempt}.{rank}.util.json"


def inside(path: str, host_dir: str) -> str:
    """``path`` (under ``host_dir``) as the sandboxed worker sees it."""
    rel = os.path.relpath(path, host_dir)
    return INSIDE if rel == "." else f"{INSIDE}/{rel}"


def prepare(directory: Path, uid: int | None, gid: int | None) -> None:
    """Make the job directory and its folders, owned by the account (``uid`` None: the
    server's own); files left by an earlier attempt under another uid are handed over."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(directory.parent, 0o711 if uid is not None else 0o700)
    directory.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"{directory} is not a directory")
    for name in SUBDIRS:
        sub = directory / name
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.lstat(sub).st_mode):  # a link the job left: not followed
                sub.unlink()
        with contextlib.suppress(FileExistsError):
            sub.mkdir(mode=0o700)
    if uid is None or gid is None:
        return
    if st.st_uid != uid:
        chown_tree(directory, uid, gid)
    else:
        for name in SUBDIRS:
            os.lchown(directory / name, uid, gid)
    os.chmod(directory, 0o700)


def chown_tree(top: Path, uid: int, gid: int) -> None:
    """Hand a job directory to another uid, never following links, and never a file with
    other names elsewhere (a hard link the job made to a file that is not its own)."""
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in (*dirs, *files):
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                    continue
                os.lchown(path, uid, gid)


def write_safely(path: str, text: str) -> None:
    """Write a small file in a directory a job owns: no link followed, no FIFO blocked on."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
    with contextlib.suppress(OSError):
        fd = os.open(path, flags, 0o644)
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.write(fd, text.encode())
        finally:
            os.close(fd)


def read_safely(path: str, limit: int = MAX_READ) -> str | None:
    """Read a small regular file a job wrote, without following links."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return os.read(fd, limit).decode(errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def reachable(path: str, uid: int, gids: set[int]) -> bool:
    """Whether ``uid`` (with groups ``gids``) may enter ``path`` and every directory above
    it: the server is root, so ``os.access`` would answer for root."""
    current = Path(path)
    for directory in (current, *current.parents):
        try:
            st = os.stat(directory)
        except OSError:
            return False
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True
