"""A hostile tenant's job against a root-run server with default settings, and with isolation
switched off in parts: what must fail fails, the victim finishes untouched, and what cannot be
enforced is reported as missing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fairpool.executors.sandbox.devices import stand_in_dir
from tests.e2e.conftest import Pool, start_pool

from .conftest import PYTHON, job_pids, needs_bwrap, needs_python, needs_root

ENXIO = 6  # a device one may open, without a driver behind it
pytestmark = [needs_root, needs_python]


def _setup(pool: Pool) -> None:
    pool.cli("department", "create", "d", "--quota-gpus", "2")
    pool.cli("project", "create", "a", "-d", "d", "--quota-gpus", "1")
    pool.cli("project", "create", "b", "-d", "d", "--quota-gpus", "1")
    pool.client.set_secret("b", "B_TOKEN", "b-secret-value")


def _victim(pool: Pool, work: Path) -> tuple[str, int]:
    job = pool.client.submit(project="b", gpus=1, memory_mib=128, workdir=str(work),
                             command=[PYTHON, "victim.py"])
    pool.wait(job.id, {"running"})
    state = pool.data_dir / "jobs" / job.id / "checkpoint" / "state"
    pool.until(state.exists, what="the victim's state")
    pool.until(lambda: bool(job_pids(job.id)), what="the victim's process")
    return job.id, job_pids(job.id)[-1]


def _attack(pool: Pool, work: Path, victim: str, victim_pid: int, *extra: str
            ) -> tuple[str, dict[str, dict[str, Any]], str]:
    node = pool.client.nodes()[0].name
    job = pool.client.submit(project="a", gpus=1, memory_mib=128, workdir=str(work), command=[
        PYTHON, "hostile.py", "--data", str(pool.data_dir), "--victim", victim,
        "--victim-pid", str(victim_pid), "--server-pid", str(pool.proc.pid),
        "--stand-ins", str(stand_in_dir(str(pool.data_dir)) / node), "--gpus", "2", *extra])
    pool.wait(job.id, {"succeeded", "failed"}, timeout=120)
    log = pool.client.logs(job.id)
    results = {}
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            results[entry["what"]] = entry
    assert "DONE" in log, log
    return job.id, results, log


def _finish_victim(pool: Pool, victim: str) -> None:
    folder = pool.data_dir / "jobs" / victim / "checkpoint"
    (folder / "done").write_text("")
    assert pool.wait(victim, {"succeeded", "failed"}, timeout=60) == "succeeded"
    log = pool.client.logs(victim)
    assert "secret set" in log and "victim state at the end: victim state" in log, log
    assert not (folder / "planted").exists()
    assert (folder / "state").read_text() == "victim state\n"


FILES = ["read fairpool.db", "read fairpool.db-wal", "read admin-token", "read secret.key",
         "list the data directory", "read the victim's log", "list the logs",
         "read the victim's run spec", "read the victim's checkpoint",
         "write into the victim's checkpoint folder", "overwrite the victim's checkpoint",
         "forge my own exit status", "forge the victim's exit status",
         "server settings in my environment", "signal the victim", "signal the server",
         "make a device node"]


@needs_bwrap
def test_a_hostile_job_reaches_nothing_with_the_default_settings(open_dir: Path) -> None:
    pool = start_pool(open_dir, "--simulate-gpus", "2", isolated=True, env_extra={
        "SERVER_CANARY": "server-only", "FAIRPOOL_OIDC_USERNAME_CLAIM": "sub",
        "FAIRPOOL_PIDS_LIMIT": "128"})
    try:
        _setup(pool)
        node = pool.client.nodes()[0]
        assert node.isolation is not None and node.isolation.level == "full", node.isolation
        assert node.isolation.run_as == "dynamic"
        victim, victim_pid = _victim(pool, open_dir)
        attacker, results, log = _attack(pool, open_dir, victim, victim_pid,
                                         "--forks", "300", "--oom-mib", "256")
        breaches = [w for w in FILES if results[w]["ok"]]
        assert not breaches, log
        # the victim's and the server's processes are not even visible
        for what in ("find the victim's processes in /proc", "see the victim's process",
                     "see the server's process"):
            assert not results[what]["ok"], log
        # its own GPU opens (no driver: ENXIO); no other one, by any path
        own = pool.client.job(attacker).placement[0].devices[0]
        other = 1 - own
        assert results[f"open /dev/nvidia{own} (own)"]["errno"] == ENXIO, log
        for what in (f"open /dev/nvidia{other} (other)", f"open stand-in nvidia{other} (other)"):
            assert results[what]["errno"] != ENXIO, log
        assert int(results["forked"]["detail"]) < 128, log
        assert "allocate 256 MiB" not in results, log
        assert pool.client.job(attacker).state == "failed"
        events = [e.message for e in pool.client.events(attacker)]
        assert any("killed: out of memory (limit 128 MiB)" in m for m in events), events
        assert "b-secret-value" not in log
        _finish_victim(pool, victim)
        # every worker's cgroup and transient uid was released
        pool.until(lambda: not list((pool.data_dir / "run" / "uids").iterdir()),
                   what="uid leases released")
        assert not list(Path("/sys/fs/cgroup/memory/fairpool").glob(f"{attacker}*"))
    finally:
        pool.proc.terminate()
        pool.proc.wait(30)


def test_with_isolation_switched_off_jobs_run_and_the_gaps_are_reported(open_dir: Path
                                                                        ) -> None:
    pool = start_pool(open_dir, "--simulate-gpus", "2", isolated=True, env_extra={
        "FAIRPOOL_CGROUPS": "false", "FAIRPOOL_NAMESPACES": "false",
        "SERVER_CANARY": "server-only"})
    try:
        _setup(pool)
        iso = pool.client.nodes()[0].isolation
        assert iso is not None and iso.level == "partial", iso
        missing = " ".join(iso.missing)
        assert "PID and mount namespaces" in missing and "cgroups" in missing, missing
        assert "GPU device confinement" in missing, missing
        out = pool.cli("nodes").stdout
        assert "partial" in out, out
        victim, victim_pid = _victim(pool, open_dir)
        attacker, results, log = _attack(pool, open_dir, victim, victim_pid,
                                         "--forks", "150", "--oom-mib", "256")
        # an account of its own still keeps it from the server's files and the victim
        assert not [w for w in FILES if results[w]["ok"]], log
        # what needs namespaces and cgroups is not there, as reported
        assert results["see the victim's process"]["ok"], log
        assert results[f"open stand-in nvidia{1 - pool.client.job(attacker).placement[0].devices[0]} (other)"]["errno"] == ENXIO, log  # noqa: E501
        assert int(results["forked"]["detail"]) == 150, log
        assert "allocate 256 MiB" in results, log
        assert pool.wait(attacker, {"succeeded"}) == "succeeded"
        _finish_victim(pool, victim)
    finally:
        pool.proc.terminate()
        pool.proc.wait(30)


def test_jobs_of_the_servers_own_account_are_reported_not_isolated(open_dir: Path) -> None:
    pool = start_pool(open_dir, "--simulate-gpus", "1", isolated=True,
                      env_extra={"FAIRPOOL_RUN_AS": "server"})
    try:
        iso = pool.client.nodes()[0].isolation
        assert iso is not None and iso.level == "none" and iso.run_as == "server", iso
        assert "NOT isolated" in (open_dir / "server.log").read_text()
        pool.cli("department", "create", "d", "--quota-gpus", "1")
        pool.cli("project", "create", "a", "-d", "d", "--quota-gpus", "1")
        job = pool.client.submit(project="a", command=["sh", "-c", "id -u; env"])
        assert pool.wait(job.id, {"succeeded", "failed"}) == "succeeded"
        log = pool.client.logs(job.id)
        assert log.splitlines()[0] == "0"
        assert "SERVER_CANARY" not in log and "FAIRPOOL_URL" not in log  # a clean environment
        time.sleep(0)
    finally:
        pool.proc.terminate()
        pool.proc.wait(30)
