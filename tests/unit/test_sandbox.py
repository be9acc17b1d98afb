"""The sandbox's pure parts: the environment's layers, the command lines, the cgroup files a
worker's limits become (written into a directory standing in for a hierarchy), and what a
node without root reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fairpool.executors.sandbox import cgroups, commands, environment, identity, jobfiles
from fairpool.executors.sandbox.devices import Device
from fairpool.executors.sandbox.policy import Sandbox, SandboxConfig


def test_the_environment_is_built_from_nothing_and_fairpool_wins() -> None:
    server = {"PATH": "/srv/bin", "HOME": "/root", "LANG": "C.UTF-8", "TZ": "UTC",
              "FAIRPOOL_SECRET_KEY": "k", "HTTP_PROXY": "http://proxy", "OTHER": "x"}
    base = environment.base_env(server, name="fp-61200", home="/run/fairpool/job/home")
    assert base == {"LANG": "C.UTF-8", "TZ": "UTC", "PATH": environment.SYSTEM_PATH,
                    "USER": "fp-61200", "LOGNAME": "fp-61200", "SHELL": "/bin/sh",
                    "HOME": "/run/fairpool/job/home"}
    env = environment.layered(base, server, ["HTTP_PROXY", "MISSING"], {"TOKEN": "secret",
                              "A": "secret"}, {"A": "job", "CUDA_VISIBLE_DEVICES": "0,1,2"},
                              {"CUDA_VISIBLE_DEVICES": "1"})
    assert env["HTTP_PROXY"] == "http://proxy" and env["TOKEN"] == "secret"
    assert env["A"] == "job" and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert "FAIRPOOL_SECRET_KEY" not in env and "OTHER" not in env and "MISSING" not in env
    own = environment.base_env(server, name=None, home=None)
    assert own["PATH"] == "/srv/bin" and own["HOME"] == "/root"


def test_a_sandboxed_command_line_joins_hides_and_drops_in_that_order() -> None:
    layout = commands.Layout(hide=("/var/lib/fairpool",), job_dir="/var/lib/fairpool/jobs/j",
                             workdir="/tmp/work", devices=(Device("/run/x/nvidia1",
                                                                  "/dev/nvidia1", 240, 1),))
    argv = [*commands.cgroup_join(["/cg/a/cgroup.procs"], keep_term=True),
            *commands.bubblewrap("/usr/bin/bwrap", layout, None),
            *commands.setpriv("/usr/bin/setpriv", identity.dynamic_account(61300)),
            *commands.default_term("/usr/bin/env"), *commands.env_step(), "python", "train.py"]
    assert argv[:3] == ["/bin/sh", "-c", commands.CGJOIN_KEEP]
    joined = " ".join(argv)
    # the working directory comes back over the private /tmp before the data dir is hidden
    assert joined.index("--bind /tmp/work /tmp/work") < joined.index(
        "--tmpfs /var/lib/fairpool")
    assert "--perms 1777 --tmpfs /tmp" in joined
    assert "--dev-bind /run/x/nvidia1 /dev/nvidia1" in joined
    assert "--reuid=61300 --regid=61300 --clear-groups" in joined
    assert argv[-8:] == ["/usr/bin/env", "--default-signal=TERM", "/bin/sh", "-c",
                         commands.ENV_STEP, "fairpool-env", "python", "train.py"]
    script = commands.env_script({"A": "it's $HOME; `x`", "LD_PRELOAD": "/x.so"})
    assert script == "export A='it'\"'\"'s $HOME; `x`'\nexport LD_PRELOAD=/x.so\n"
    with pytest.raises(ValueError, match="not environment variable names"):
        commands.env_script({"A B": "1"})


def test_podman_gets_the_environment_from_a_file_never_on_its_command_line() -> None:
    layout = commands.Layout(hide=(), job_dir="/d/jobs/j", workdir="/w", devices=(),
                             mounts=(commands.Mount("/data/x", "/x", True),))
    argv = commands.podman_run("/usr/bin/podman", worker_id="j.0.1", image="img:1",
                               command=["sh"], env={"TOKEN": "s3cret"},
                               env_file="/d/run/j.0.1.env", account=identity.dynamic_account(
                                   61301), layout=layout, cgroup_parent="/fairpool/j.0.1",
                               pull="never", pids_limit=99)
    assert "s3cret" not in " ".join(argv)
    assert "--env-file=/d/run/j.0.1.env" in argv and "--user=61301:61301" in argv
    assert "/data/x:/x:ro,nosuid,nodev" in argv and "--network=host" in argv
    assert "--cap-drop=all" in argv and "--security-opt=no-new-privileges" in argv
    assert argv[-3:] == ["--", "img:1", "sh"]
    assert commands.env_file_text({"A": "1", "B": "two words"}) == "A=1\nB=two words\n"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_limits_become_cgroup_files(tmp_path: Path, version: str) -> None:
    if version == "v2":
        roots = {c: str(tmp_path / "unified" / "fairpool") for c in cgroups.V2_CONTROLLERS}
    else:
        roots = {c: str(tmp_path / c / "fairpool") for c in cgroups.V1_CONTROLLERS}
    for root in set(roots.values()):
        Path(root).mkdir(parents=True)
    support = cgroups.Support(version, roots)
    group = cgroups.WorkerCgroup.create(support, "job.0.0", cgroups.Limits(
        memory_mib=64, cpu_millis=500, pids=128, devices=("c 195:1 rwm",)))
    if version == "v2":
        d = tmp_path / "unified" / "fairpool" / "job.0.0"
        assert (d / "memory.max").read_text() == str(64 << 20)
        assert (d / "cpu.max").read_text() == "50000 100000"
        assert (d / "pids.max").read_text() == "128"
        (d / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        assert group.procs_files() == [str(d / "cgroup.procs")]
    else:
        assert (tmp_path / "memory/fairpool/job.0.0/memory.limit_in_bytes").read_text() == str(
            64 << 20)
        assert (tmp_path / "cpu/fairpool/job.0.0/cpu.cfs_quota_us").read_text() == "50000"
        assert (tmp_path / "pids/fairpool/job.0.0/pids.max").read_text() == "128"
        # a real devices.allow takes one rule per write; the stand-in keeps the last one
        assert (tmp_path / "devices/fairpool/job.0.0/devices.allow").read_text() == (
            "c 195:1 rwm")
        (tmp_path / "memory/fairpool/job.0.0/memory.oom_control").write_text(
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
        assert len(group.procs_files()) == 4
    assert group.oom_kills() >= 1
    again = cgroups.WorkerCgroup.from_record(group.record())
    assert again is not None and again.oom_kills() == group.oom_kills()
    assert group.relative() == "/fairpool/job.0.0"


def test_detect_reads_the_mount_table(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text("proc /proc proc rw 0 0\n")
    assert cgroups.detect(str(table)).version is None


def test_without_root_jobs_run_as_the_server_and_the_node_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    sandbox = Sandbox(SandboxConfig(run_as="auto"), tmp_path, tmp_path / "run")
    report = sandbox.report()
    assert sandbox.mode == "server" and report["level"] == "none"
    assert any("not isolated" in m for m in report["missing"]), report
    with pytest.raises(ValueError, match="needs a server running as root"):
        Sandbox(SandboxConfig(run_as="dynamic"), tmp_path, tmp_path / "run")


def test_transient_uids_are_leased_per_job_and_survive_a_restart(tmp_path: Path) -> None:
    uids = identity.DynamicUids(tmp_path / "uids", 61184, 61190)
    first = uids.acquire("job-a")
    assert uids.acquire("job-a") == first and 61184 <= first <= 61190
    second = uids.acquire("job-b")
    assert second != first
    again = identity.DynamicUids(tmp_path / "uids", 61184, 61190)
    assert again.uid_of("job-a") == first
    again.retain({"job-b"})
    assert again.uid_of("job-a") is None and again.uid_of("job-b") == second
    for n in range(6):  # seven uids: job-b and these six
        again.acquire(f"more-{n}")
    with pytest.raises(identity.IdentityError, match="transient uids are in use"):
        again.acquire("one-too-many")


def test_accounts_that_cannot_be_resolved_or_are_root_are_refused() -> None:
    with pytest.raises(identity.IdentityError, match="no Unix account 'fptest-nobody-here'"):
        identity.resolve("user", owner="fptest-nobody-here", mapped=None, project="p",
                         project_format="fp-{project}")
    with pytest.raises(identity.IdentityError, match="never run as root"):
        identity.resolve("user", owner="alice", mapped="root", project="p",
                         project_format="fp-{project}")
    with pytest.raises(identity.IdentityError, match="not a valid Unix account name"):
        identity.resolve("project", owner=None, mapped=None, project="p",
                         project_format="Bad Name {project}")
    assert identity.resolve("server", owner="x", mapped=None, project="p",
                            project_format="") is None


def test_files_in_a_jobs_folder_are_never_followed_through_links(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root only")
    link = tmp_path / "0.0.stop"
    link.symlink_to(secret)
    jobfiles.write_safely(str(link), "preempted\n")
    assert secret.read_text() == "root only"
    util = tmp_path / "0.0.util.json"
    util.symlink_to(secret)
    assert jobfiles.read_safely(str(util)) is None
    os.mkfifo(tmp_path / "fifo")
    jobfiles.write_safely(str(tmp_path / "fifo"), "x")  # returns at once, writes nothing
    assert jobfiles.inside("/d/jobs/j/checkpoint", "/d/jobs/j") == "/run/fairpool/job/checkpoint"


def test_a_job_folder_is_handed_over_without_following_what_the_job_planted(
        tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("handing files to another uid needs root")
    outside = tmp_path / "outside"
    outside.mkdir()
    foreign = tmp_path / "foreign-file"
    foreign.write_text("not the job's")
    folder = jobfiles.job_dir(tmp_path / "data", "j1")
    jobfiles.prepare(folder, 61400, 61400)
    (folder / "home").rmdir()
    (folder / "home").symlink_to(outside)  # the job swaps its home for a link
    os.link(foreign, folder / "checkpoint" / "linked")  # and links a file that is not its own
    (folder / "checkpoint" / "own").write_text("mine")
    jobfiles.chown_tree(folder, 0, 0)
    jobfiles.prepare(folder, 61401, 61401)  # the next attempt, another uid
    assert (folder / "home").is_dir() and not (folder / "home").is_symlink()
    assert os.stat(outside).st_uid == 0
    assert os.stat(foreign).st_uid == 0  # the hard link was not handed over
    assert os.stat(folder / "checkpoint" / "own").st_uid == 61401
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(("image", "ok"), [
    ("busybox", True), ("localhost/fairpool-test-busybox:1", True),
    ("localhost:5000/team/train:2.1", True), ("ghcr.io/org/img@sha256:" + "a" * 64, True),
    ("oci-archive:/root/private.tar", False), ("dir:/etc", False),
    ("docker-archive:/dev/zero", False), ("docker://busybox", False),
    ("containers-storage:busybox", False), ("--privileged", False), ("Busybox", False),
])
def test_images_are_plain_references_never_transports(image: str, ok: bool) -> None:
    from fairpool.domain.images import image_problem

    assert (image_problem(image) is None) is ok
