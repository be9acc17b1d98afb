"""Regression tests of a hostile review: each of these reached root, hung the server or hurt
another project's job before it was fixed. Root server, default settings."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Pool, crash_and_restart, start_pool
from tests.images import IMAGE, podman_env

from .conftest import job_pids, needs_bwrap, needs_root

pytestmark = [needs_root, needs_bwrap]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")

EVIL = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/euid-%d", OUT, (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) { fprintf(f, "%d\n", (int)geteuid()); fclose(f); }
}
"""
SUID = r"""
#include <unistd.h>
int main(void) { setgid(0); setuid(0); execl("/bin/sh", "sh", "-c", "id -u", (char *)0); return 1; }
"""


@pytest.fixture
def pool(open_dir: Path) -> Iterator[Pool]:
    pool = start_pool(open_dir, "--simulate-gpus", "2", isolated=True,
                      env_extra={"FAIRPOOL_SAMPLE_EVERY_S": "0.2"})
    pool.cli("department", "create", "d", "--quota-gpus", "2")
    pool.cli("project", "create", "a", "-d", "d", "--quota-gpus", "1")
    pool.cli("project", "create", "b", "-d", "d", "--quota-gpus", "1")
    yield pool
    pool.proc.terminate()
    pool.proc.wait(30)


def _events(pool: Pool, job_id: str) -> str:
    return "\n".join(e.message for e in pool.client.events(job_id))


@needs_gcc
def test_ld_preload_in_a_jobs_env_acts_on_the_job_alone(pool: Pool, open_dir: Path) -> None:
    out = open_dir / "out"
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    source = open_dir / "evil.c"
    source.write_text(EVIL)
    library = open_dir / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", f'-DOUT="{out}"', "-o", str(library),
                    str(source)], check=True)
    os.chmod(library, 0o755)
    job = pool.client.submit(project="a", workdir=str(open_dir), command=["/bin/true"],
                             env={"LD_PRELOAD": str(library), "CANARY_JOB_VAR": "x"})
    assert pool.wait(job.id, {"succeeded", "failed"}) == "succeeded", _events(pool, job.id)
    seen = [int(p.read_text()) for p in out.iterdir()]
    assert seen, "the job itself loads what it asks for"
    assert 0 not in seen, f"a root process loaded the job's library: {seen}"


def test_root_processes_never_carry_the_jobs_variables(pool: Pool, open_dir: Path) -> None:
    job = pool.client.submit(project="a", workdir=str(open_dir), command=["sleep", "30"],
                             env={"CANARY_JOB_VAR": "job-only"})
    pool.wait(job.id, {"running"})
    pool.until(lambda: bool(job_pids(job.id)), what="the job's process")
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            argv = Path(path).read_bytes()
            if job.id.encode() not in argv:
                continue
            environ = Path(path).with_name("environ").read_bytes()
        except OSError:
            continue
        assert b"CANARY_JOB_VAR" not in environ, argv  # the supervisor, bwrap, setpriv
    assert any(b"CANARY_JOB_VAR=job-only" in Path(f"/proc/{pid}/environ").read_bytes()
               for pid in job_pids(job.id))
    pool.client.cancel(job.id)


def test_a_util_report_that_is_a_fifo_or_a_link_does_not_stop_the_server(
        pool: Pool, open_dir: Path) -> None:
    secret = open_dir / "root-only.json"
    secret.write_text('{"util": 0.4242, "at": 9999999999}')
    os.chmod(secret, 0o600)
    fifo = pool.client.submit(project="a", gpus=1, workdir=str(open_dir), command=[
        "sh", "-c", 'mkfifo "$FAIRPOOL_UTIL_FILE"; sleep 2'])
    link = pool.client.submit(project="b", gpus=1, workdir=str(open_dir), command=[
        "sh", "-c", f'ln -s {secret} "$FAIRPOOL_UTIL_FILE"; sleep 2'])
    for job in (fifo, link):
        assert pool.wait(job.id, {"succeeded", "failed"}, timeout=30) == "succeeded"
    assert pool.client.job(link.id).gpu_util != 0.4242
    after = pool.client.submit(project="a", command=["true"], workdir=str(open_dir))
    assert pool.wait(after.id, {"succeeded"}, timeout=30) == "succeeded"


def test_a_forged_supervisor_cannot_take_over_another_jobs_worker(pool: Pool, open_dir: Path
                                                                  ) -> None:
    victim = pool.client.submit(project="b", workdir=str(open_dir), command=[
        "sh", "-c", "sleep 6; echo victim done"])
    pool.wait(victim.id, {"running"})
    run = pool.data_dir / "run"
    forger = pool.client.submit(project="a", workdir=str(open_dir), command=[
        "sh", "-c", "while :; do sleep 1; done", "fairpool-supervisor", str(run),
        f"{victim.id}.0.0", "x"])
    pool.wait(forger.id, {"running"})
    pool.until(lambda: bool(job_pids(forger.id)), what="the forged supervisor")
    crash_and_restart(pool)
    pool.client.cancel(forger.id)
    assert pool.wait(victim.id, {"succeeded", "failed"}, timeout=60) == "succeeded", (
        _events(pool, victim.id))
    assert "victim done" in pool.client.logs(victim.id)


def test_a_transient_uid_writes_nothing_outside_its_own_places(pool: Pool, open_dir: Path
                                                               ) -> None:
    job = pool.client.submit(project="a", workdir=str(open_dir), command=[
        "sh", "-c", "touch /var/tmp/fairpool-test-planted || echo var-tmp-refused; "
        "touch /tmp/private && echo tmp-ok; touch own-workdir-file 2>/dev/null; "
        "echo x > $FAIRPOOL_CHECKPOINT_DIR/c && echo checkpoint-ok"])
    os.chmod(open_dir, 0o777)  # a working directory the job may write
    try:
        assert pool.wait(job.id, {"succeeded", "failed"}) == "succeeded", _events(pool, job.id)
    finally:
        os.chmod(open_dir, 0o755)
    log = pool.client.logs(job.id)
    assert "var-tmp-refused" in log and "tmp-ok" in log and "checkpoint-ok" in log, log
    assert not Path("/var/tmp/fairpool-test-planted").exists()
    assert (open_dir / "own-workdir-file").exists()
    assert not (open_dir / "private").exists()  # its /tmp is its own


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("podman") is None,
                    reason="needs gcc and podman")
def test_a_setuid_program_in_an_image_gains_nothing(pool: Pool, open_dir: Path,
                                                    busybox_image: str, tmp_path: Path
                                                    ) -> None:
    source = tmp_path / "suid.c"
    source.write_text(SUID)
    root = tmp_path / "layer"
    (root / "bin").mkdir(parents=True)
    try:
        subprocess.run(["gcc", "-static", "-o", str(root / "bin" / "rootme"), str(source)],
                       check=True, capture_output=True)
    except subprocess.CalledProcessError:
        pytest.skip("no static C library")
    os.chmod(root / "bin" / "rootme", 0o4755)
    env = podman_env(tmp_path)
    image = IMAGE.replace(":1", "-suid:1")
    container = subprocess.run(["podman", "create", busybox_image, "true"], check=True,
                               capture_output=True, text=True, env=env).stdout.strip()
    try:
        subprocess.run(["podman", "cp", str(root / "bin" / "rootme"), f"{container}:/bin/"],
                       check=True, env=env, capture_output=True)
        subprocess.run(["podman", "commit", container, image], check=True, env=env,
                       capture_output=True)
    finally:
        subprocess.run(["podman", "rm", "-f", container], env=env, capture_output=True)
    try:
        job = pool.client.submit(project="a", image=image, workdir=str(open_dir),
                                 command=["/bin/rootme"])
        assert pool.wait(job.id, {"succeeded", "failed"}, timeout=60) == "succeeded", (
            _events(pool, job.id))
        assert pool.client.logs(job.id).strip() != "0"
        inside = pool.client.submit(project="a", image=image, workdir=str(pool.data_dir),
                                    command=["cat", "admin-token"])
        assert pool.wait(inside.id, {"failed"}, timeout=60) == "failed"
        assert "inside fairpool's data directory" in _events(pool, inside.id)
        assert pool.token not in pool.client.logs(inside.id)
    finally:
        subprocess.run(["podman", "rmi", "-f", image], env=env, capture_output=True)
