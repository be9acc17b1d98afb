"""RayExecutor against a real local Ray cluster (three raylets on this machine)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairpool.executors.base import Failure, WorkerPhase, WorkerSpec, WorkerStatus
from tests.executors.test_local import alive, wait_file, wait_for, wait_gone

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from fairpool.executors.ray import RaySettings, connect, disconnect  # noqa: E402
from fairpool.executors.ray.executor import RayExecutor  # noqa: E402

NODE_ARGS: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024,
                             "include_dashboard": False}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args=dict(NODE_ARGS))
    c.add_node(num_gpus=2, labels={"fairpool.io/pool": "a100", "rack": "r1",
                                   "fairpool.io/node-name": "gpu-a"}, **NODE_ARGS)
    c.add_node(resources={"sim_gpu": 4}, labels={"fairpool.io/gpu-memory-mib": "24576",
                                                 "fairpool.io/node-name": "gpu-b"}, **NODE_ARGS)
    c.wait_for_nodes()
    connect(RaySettings(address=c.address))
    yield c
    disconnect()
    c.shutdown()


@pytest.fixture(scope="module")
def ex(cluster: Cluster) -> Iterator[RayExecutor]:
    executor = RayExecutor(long_poll_s=0.5, refresh_s=0.5)
    yield executor
    executor.close()


def spec(tmp_path: Path, command: list[str], worker_id: str, *, node: str = "gpu-a",
         devices: tuple[int, ...] = (1,), workdir: str | None = None, port: int = 0
         ) -> WorkerSpec:
    return WorkerSpec(
        worker_id=worker_id, job_id=worker_id.split(".")[0], attempt=0, rank=0, world_size=1,
        local_rank=0, node=node, devices=devices, command=tuple(command), env={"MY": "value"},
        master_addr="127.0.0.1", master_port=port,
        log_path=str(tmp_path / "logs" / f"{worker_id}.log"), workdir=workdir)


def test_inventory_from_ray_nodes_and_labels(cluster: Cluster) -> None:
    executor = RayExecutor(gpu_resource="sim_gpu")
    try:
        by_name = {n.name: n for n in executor.nodes()}
    finally:
        executor.close()
    b = by_name["gpu-b"]  # a custom resource as simulated GPUs, memory from a label
    assert len(b.devices) == 4 and b.simulated and b.devices[0].memory_mib == 24576
    assert by_name["gpu-a"].devices == ()  # under sim_gpu, Ray's GPU resource is not counted


def test_gpu_resource_pool_and_labels(ex: RayExecutor) -> None:
    a = next(n for n in ex.nodes() if n.name == "gpu-a")
    assert len(a.devices) == 2 and a.simulated  # no NVML device behind Ray's GPU resource
    assert a.pool == "a100" and a.labels["rack"] == "r1"
    assert not any(k.startswith("ray.io/") for k in a.labels)
    assert a.cpu == 1000 and a.memory > 0 and a.address


def test_runs_with_fairpools_devices_and_streams_logs(ex: RayExecutor, tmp_path: Path) -> None:
    script = ("import os, time\n"
              "print('cuda', os.environ['CUDA_VISIBLE_DEVICES'], os.environ['MY'], "
              "os.environ['FAIRPOOL_NODE'], os.environ['MASTER_PORT'] != '0', flush=True)\n"
              "time.sleep(1.5)\nprint('done', flush=True)\nraise SystemExit(3)\n")
    s = spec(tmp_path, [sys.executable, "-c", script], "out.0.0", devices=(1,))
    ex.start(s)
    ex.start(s)  # idempotent on the worker id
    seen: list[WorkerStatus] = []
    running = wait_for(ex, "out.0.0", WorkerPhase.RUNNING, seen)
    assert "gpu-a" in running.detail
    # output arrives while the worker still runs
    assert wait_file(Path(s.log_path)) == "cuda 1 value gpu-a True\n"
    exited = wait_for(ex, "out.0.0", WorkerPhase.EXITED, seen)
    assert exited.exit_code == 3 and exited.detail == "exited with code 3"
    assert Path(s.log_path).read_text() == "cuda 1 value gpu-a True\ndone\n"
    assert [st.phase for st in seen].count(WorkerPhase.EXITED) == 1
    assert "out.0.0" not in ex.known()


def test_stop_is_sigterm_then_sigkill_after_grace(ex: RayExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = ("import os, signal, time\nsignal.signal(signal.SIGTERM, lambda *a: "
              "print('term ignored', flush=True))\n"
              f"open({str(pidfile)!r}, 'w').write(str(os.getpid()) + '\\n')\ntime.sleep(60)\n")
    s = spec(tmp_path, [sys.executable, "-c", script], "stubborn.0.0")
    ex.start(s)
    pid = int(wait_file(pidfile))
    started = time.monotonic()
    ex.stop("stubborn.0.0", 1.0)
    exited = wait_for(ex, "stubborn.0.0", WorkerPhase.EXITED)
    assert exited.exit_code == -signal.SIGKILL and exited.fault() == Failure.STOPPED
    assert "after the stop grace period" in exited.detail
    assert time.monotonic() - started >= 0.9
    assert "term ignored" in Path(s.log_path).read_text()
    wait_gone(pid)


def test_start_failures_are_exit_codes(ex: RayExecutor, tmp_path: Path) -> None:
    ex.start(spec(tmp_path, ["no-such-command-xyz"], "missing.0.0"))
    missing = wait_for(ex, "missing.0.0", WorkerPhase.EXITED)
    assert missing.exit_code == 127 and "no-such-command-xyz" in missing.detail
    assert missing.fault() == Failure.COMMAND  # the job's own, not the node's
    ex.start(spec(tmp_path, ["true"], "nodir.0.0", workdir=str(tmp_path / "absent")))
    nodir = wait_for(ex, "nodir.0.0", WorkerPhase.EXITED)
    assert nodir.exit_code == 127 and "does not exist on this node" in nodir.detail
    assert nodir.fault() == Failure.COMMAND


def test_stop_before_start_never_runs(ex: RayExecutor, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ex.start(spec(tmp_path, ["touch", str(marker)], "early.0.0", node="gpu-b"))
    ex.stop("early.0.0", 0)
    status = wait_for(ex, "early.0.0", WorkerPhase.EXITED)
    # either the stop won (never started) or the worker had already run to its end
    assert status.exit_code in (-signal.SIGTERM, 0)
    assert status.fault() == (Failure.STOPPED if status.exit_code else None)
    assert marker.exists() == (status.exit_code == 0)


def test_hosts_are_reused_and_ports_come_from_the_node(ex: RayExecutor, tmp_path: Path
                                                       ) -> None:
    pids = []
    for i in range(3):
        wid = f"reuse{i}.0.0"
        ex.start(spec(tmp_path, [sys.executable, "-c", "import os; print(os.getppid())"], wid,
                      node="gpu-b"))
        wait_for(ex, wid, WorkerPhase.EXITED)
        pids.append(int((tmp_path / "logs" / f"{wid}.log").read_text()))
    assert len(set(pids)) == 1  # one host actor ran all three
    port = ex.rendezvous_port("gpu-b")
    assert 0 < port < 65536
    with pytest.raises(ValueError, match="no longer in the Ray cluster"):
        ex.rendezvous_port("nowhere")


def test_unknown_node_is_lost(ex: RayExecutor, tmp_path: Path) -> None:
    ex.start(spec(tmp_path, ["true"], "ghost.0.0", node="nowhere"))
    lost = wait_for(ex, "ghost.0.0", WorkerPhase.LOST)
    assert "no longer in the Ray cluster" in lost.detail


def test_worker_and_its_children_die_with_its_host(ex: RayExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    s = spec(tmp_path, ["sh", "-c", f"sleep 60 & echo $$ $! > {pidfile}; wait"], "orphan.0.0")
    ex.start(s)
    worker_pid, child_pid = (int(p) for p in wait_file(pidfile).split())
    host_pid = int(Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(host_pid, signal.SIGKILL)  # the Ray worker process hosting the actor
    lost = wait_for(ex, "orphan.0.0", WorkerPhase.LOST)
    assert "is gone" in lost.detail
    wait_gone(worker_pid)  # dies with its host (PR_SET_PDEATHSIG)
    # killed by the executor from another host on the same node (which may have to start)
    deadline = time.monotonic() + 90
    while alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child_pid)


def test_a_shorter_second_stop_wins(ex: RayExecutor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = ("import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              f"open({str(pidfile)!r}, 'w').write(str(os.getpid()) + '\\n')\ntime.sleep(60)\n")
    ex.start(spec(tmp_path, [sys.executable, "-c", script], "twice.0.0"))
    wait_file(pidfile)
    started = time.monotonic()
    ex.stop("twice.0.0", 30)
    ex.stop("twice.0.0", 0.2)  # e.g. a cancel after a preemption
    exited = wait_for(ex, "twice.0.0", WorkerPhase.EXITED)
    assert exited.exit_code == -signal.SIGKILL and time.monotonic() - started < 8


def test_a_log_past_the_cap_ends_with_a_line_saying_so(ex: RayExecutor, tmp_path: Path) -> None:
    from fairpool.executors import logcap

    cap, before = 10_000, ex.log_max_bytes
    ex.log_max_bytes = cap  # read when a worker starts
    try:
        script = ("import sys\nfor i in range(3000):\n    print(f'{i:09d}')\n"
                  "sys.stdout.flush()\nsys.exit(3)\n")
        s = spec(tmp_path, [sys.executable, "-c", script], "capped.0.0")
        ex.start(s)
        seen: list[WorkerStatus] = []
        exited = wait_for(ex, "capped.0.0", WorkerPhase.EXITED, seen)
    finally:
        ex.log_max_bytes = before
    assert exited.exit_code == 3  # the worker ran to its own end
    assert [st.log_truncated for st in seen if st.log_truncated is not None] == [cap]
    want = "".join(f"{i:09d}\n" for i in range(1000)) + "\n" + logcap.marker(cap) + "\n"
    assert Path(s.log_path).read_text() == want
