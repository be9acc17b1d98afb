"""Jobs in OCI images through podman, on a root-run server with default settings: a gang in a
locally built image, mounts only under allowed roots, cancel, a server killed and restarted
while a container runs, a missing image, and the memory limit inside a container."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Pool, crash_and_restart, start_pool
from tests.images import containers

from .conftest import needs_root

pytestmark = [needs_root]


@pytest.fixture
def pool(open_dir: Path, busybox_image: str) -> Iterator[Pool]:
    (open_dir / "data").mkdir()
    (open_dir / "data" / "hello").write_text("dataset file\n")
    pool = start_pool(open_dir, "--simulate-gpus", "2", isolated=True, env_extra={
        "FAIRPOOL_ALLOWED_MOUNT_ROOTS": f'["{open_dir / "data"}"]',
        "FAIRPOOL_IMAGE_PULL": "never"})
    pool.cli("department", "create", "d", "--quota-gpus", "2")
    pool.cli("project", "create", "a", "-d", "d", "--quota-gpus", "2")
    yield pool
    pool.proc.terminate()
    pool.proc.wait(30)


def test_a_gang_runs_in_an_image_with_its_workdir_and_mounts(pool: Pool, open_dir: Path,
                                                             busybox_image: str) -> None:
    job = pool.client.submit(
        project="a", image=busybox_image, gpus=1, workers=2, workdir=str(open_dir),
        mounts=[f"{open_dir / 'data'}:/data:ro"], env={"MINE": "job-value"}, command=[
            "sh", "-c", "echo rank=$RANK/$WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT "
            "cuda=$CUDA_VISIBLE_DEVICES mine=$MINE uid=$(id -u) pwd=$(pwd); cat /data/hello; "
            "ls victim.py; ls /dev | grep nvidia; echo x > /data/new || echo read-only; "
            "echo ckpt > $FAIRPOOL_CHECKPOINT_DIR/c && echo checkpoint-ok"])
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=60) == "succeeded", (
        pool.client.logs(job.id), [e.message for e in pool.client.events(job.id)])
    for rank in (0, 1):
        log = pool.client.logs(job.id, rank=rank)
        assert f"rank={rank}/2 master=127.0.0.1:" in log, log
        assert "mine=job-value" in log and f"pwd={open_dir}" in log, log
        assert "uid=0" not in log, log  # a transient uid, not root
        assert "dataset file" in log and "victim.py" in log and "read-only" in log, log
        assert "checkpoint-ok" in log, log
        devices = [line for line in log.splitlines() if line.startswith("nvidia")]
        assert len(devices) == 1, log  # its own GPU, not the other
    assert (pool.data_dir / "jobs" / job.id / "checkpoint" / "c").read_text() == "ckpt\n"
    assert not containers(f"fairpool-{job.id}", open_dir)
    # the workers' cgroups are gone from every hierarchy, those podman made included
    pool.until(lambda: not glob.glob(f"/sys/fs/cgroup/*/fairpool/{job.id}.*"), timeout=15,
               what="the workers' cgroups removed")


def test_mounts_outside_the_allowed_roots_are_refused(pool: Pool, busybox_image: str) -> None:
    out = pool.cli("submit", "-p", "a", "--image", busybox_image, "--mount", "/etc:/x", "--",
                   "true", check=False)
    assert out.returncode != 0
    assert "not under an allowed mount root" in out.stderr and len(
        out.stderr.strip().splitlines()) == 1, out.stderr


def test_cancel_stops_the_container(pool: Pool, open_dir: Path, busybox_image: str) -> None:
    job = pool.client.submit(project="a", image=busybox_image, workdir=str(open_dir),
                             command=["sleep", "600"])
    pool.wait(job.id, {"running"})
    pool.until(lambda: bool(containers(f"fairpool-{job.id}", open_dir)), what="container")
    pool.client.cancel(job.id)
    assert pool.wait(job.id, {"cancelled"}, timeout=30) == "cancelled"
    pool.until(lambda: not containers(f"fairpool-{job.id}", open_dir), timeout=15,
               what="the container removed")


def test_a_container_outlives_a_server_crash_and_its_exit_is_recorded_once(
        pool: Pool, open_dir: Path, busybox_image: str) -> None:
    job = pool.client.submit(project="a", image=busybox_image, workdir=str(open_dir),
                             command=["sh", "-c", "sleep 5; echo finished; exit 3"])
    pool.wait(job.id, {"running"})
    pool.until(lambda: bool(containers(f"fairpool-{job.id}", open_dir)), what="container")
    crash_and_restart(pool)
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=60) == "failed"
    done = pool.client.job(job.id)
    assert done.exit_code == 3 and done.attempt == 0
    assert "finished" in pool.client.logs(job.id)
    kinds = [e.kind for e in pool.client.events(job.id)]
    assert kinds.count("finished") == 1 and kinds.count("running") == 1, kinds


def test_a_missing_image_fails_once_with_a_clear_event(pool: Pool, open_dir: Path) -> None:
    job = pool.client.submit(project="a", image="localhost/no-such-image:1", max_retries=3,
                             workdir=str(open_dir), command=["true"])
    assert pool.wait(job.id, {"failed"}, timeout=30) == "failed"
    done = pool.client.job(job.id)
    assert done.attempt == 0 and done.retries == 0
    events = [e.message for e in pool.client.events(job.id)]
    assert any("image localhost/no-such-image:1 is not on node" in m for m in events), events
    assert any(m.startswith("not retried") for m in events), events


def test_a_container_over_its_memory_request_is_killed_for_it(
        pool: Pool, open_dir: Path, busybox_image: str) -> None:
    job = pool.client.submit(project="a", image=busybox_image, memory_mib=64,
                             workdir=str(open_dir),
                             command=["sh", "-c", "x=0123456789; while :; do x=$x$x; done"])
    assert pool.wait(job.id, {"failed"}, timeout=60) == "failed"
    events = [e.message for e in pool.client.events(job.id)]
    assert any("killed: out of memory (limit 64 MiB)" in m for m in events), events
