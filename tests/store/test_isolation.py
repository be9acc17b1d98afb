"""Container image and mounts of jobs, node isolation and users' Unix accounts, on SQLite and
PostgreSQL: what is stored, what is shown, and what is refused (with which message)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect, select

from fairpool.schemas.jobs import MOUNTS_NEED_IMAGE, JobSubmit, MountSpec, parse_mount
from fairpool.services import accounts, audit, jobs, nodes, submission
from fairpool.services.errors import Invalid, NotFound
from fairpool.store.db import Store
from fairpool.store.models import JobEventRow, JobRow, NodeRow
from tests.store.test_services import setup_queues

IMAGE = "docker.io/library/python:3.11-slim"


def _job(*mounts: MountSpec, image: str | None = IMAGE, **extra: object) -> JobSubmit:
    return JobSubmit.model_validate({"project": "vision", "command": ["python", "-V"],
                                     "image": image, "mounts": list(mounts), **extra})


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    data, datasets = tmp_path / "data", tmp_path / "datasets"
    (data / "imagenet").mkdir(parents=True)
    datasets.mkdir()
    return data, datasets


def test_the_migration_adds_the_columns_and_the_table(store: Store) -> None:
    schema = inspect(store.engine)
    assert {"image", "mounts"} <= {c["name"] for c in schema.get_columns("jobs")}
    assert "isolation" in {c["name"] for c in schema.get_columns("nodes")}
    columns = {c["name"]: c for c in schema.get_columns("user_accounts")}
    assert set(columns) == {"user", "account", "created_at", "created_by"}
    assert not columns["account"]["nullable"] and columns["created_by"]["nullable"]
    assert schema.get_pk_constraint("user_accounts")["constrained_columns"] == ["user"]


def test_image_and_mounts_are_stored_and_shown(store: Store, roots: tuple[Path, Path]) -> None:
    setup_queues(store)
    data, datasets = roots
    spec = _job(parse_mount(f"{data}/imagenet:/data:ro"),
                MountSpec(source=str(datasets), target="/datasets"))
    out, created = jobs.submit(store, spec, mount_roots=roots)
    assert created and out.image == IMAGE
    assert [(m.source, m.target, m.read_only) for m in out.mounts] == [
        (f"{data}/imagenet", "/data", True), (str(datasets), "/datasets", False)]
    assert jobs.get_job(store, out.id) == out
    with store.session() as s:
        row = s.get(JobRow, out.id)
        assert row is not None and row.image == IMAGE
        assert row.mounts == [
            {"source": f"{data}/imagenet", "target": "/data", "read_only": True},
            {"source": str(datasets), "target": "/datasets", "read_only": False}]
        first = s.execute(select(JobEventRow.message).where(
            JobEventRow.job_id == out.id)).scalar_one()
    assert f"image {IMAGE}, 2 mounts" in first
    # without an image or mounts nothing is stored, and nothing is shown
    plain, _ = jobs.submit(store, JobSubmit(project="vision", command=["true"]))
    assert plain.image is None and plain.mounts == []
    with store.session() as s:
        row = s.get(JobRow, plain.id)
        assert row is not None and row.image is None and row.mounts is None


def test_a_mount_outside_the_roots_is_refused(store: Store, roots: tuple[Path, Path]) -> None:
    setup_queues(store)
    data, datasets = roots
    allowed = f"(allowed: {data}, {datasets})"
    for source in ("/etc", f"{data}-other", str(data.parent)):
        with pytest.raises(Invalid) as refused:
            jobs.submit(store, _job(MountSpec(source=source, target="/x")), mount_roots=roots)
        assert refused.value.message == (
            f"mount source {source} is not under an allowed mount root {allowed}; an admin "
            f"sets allowed_mount_roots")
        assert refused.value.status == 422
    # a path that does not exist on this machine is checked as written
    jobs.submit(store, _job(MountSpec(source=f"{data}/not/here/yet", target="/x")),
                mount_roots=roots)
    with store.session() as s:
        assert len(s.execute(select(JobRow)).scalars().all()) == 1


def test_a_symlink_out_of_a_root_is_refused(store: Store, roots: tuple[Path, Path],
                                            tmp_path: Path) -> None:
    setup_queues(store)
    data, _ = roots
    (data / "etc").symlink_to("/etc")
    (data / "dangling").symlink_to(tmp_path / "outside" / "later")
    (data / "inside").symlink_to(data / "imagenet")
    for link in ("etc", "dangling"):
        with pytest.raises(Invalid, match=(f"mount source {data}/{link} resolves to "
                                           f"{os.path.realpath(data / link)}, which is not "
                                           f"under an allowed mount root")):
            jobs.submit(store, _job(MountSpec(source=f"{data}/{link}", target="/x")),
                        mount_roots=roots)
    with pytest.raises(Invalid, match="resolves to /etc/passwd"):
        jobs.submit(store, _job(MountSpec(source=f"{data}/etc/passwd", target="/x")),
                    mount_roots=roots)
    out, _ = jobs.submit(store, _job(MountSpec(source=f"{data}/inside", target="/x")),
                         mount_roots=roots)  # a link that stays under the root is fine
    assert out.mounts[0].source == f"{data}/inside"


def test_a_root_that_is_a_symlink_holds_what_lies_under_its_target(
        store: Store, tmp_path: Path) -> None:
    setup_queues(store)
    real = tmp_path / "real"
    (real / "set").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(real)
    out, _ = jobs.submit(store, _job(MountSpec(source=f"{tmp_path}/alias/set", target="/x")),
                         mount_roots=[tmp_path / "alias"])
    assert out.mounts[0].source == f"{tmp_path}/alias/set"


def test_without_roots_no_mount_is_allowed(store: Store, roots: tuple[Path, Path]) -> None:
    setup_queues(store)
    spec = _job(MountSpec(source=str(roots[0]), target="/data"))
    nothing: tuple[tuple[Path, ...] | list[Path] | None, ...] = (None, (), [])
    for none in nothing:
        with pytest.raises(Invalid) as refused:
            jobs.submit(store, spec, mount_roots=none)
        assert refused.value.message == ("this pool allows no mounts (an admin sets "
                                         "allowed_mount_roots)")
    out, _ = jobs.submit(store, _job(), mount_roots=None)  # an image alone needs no root
    assert out.image == IMAGE and out.mounts == []


def test_mount_and_image_rules() -> None:
    with pytest.raises(ValidationError, match=MOUNTS_NEED_IMAGE.replace("(", r"\(").replace(
            ")", r"\)")):
        _job(MountSpec(source="/data", target="/data"), image=None)
    refused = {
        ("data", "/x"): "must be an absolute path",
        ("/data", "x"): "must be an absolute path",
        ("/data/../etc", "/x"): "write '/etc'",
        ("/data/", "/x"): "normalised",
        ("/data/./x", "/x"): "normalised",
        ("//data", "/x"): "write '/data'",
        ("/data", "/"): "whole file system",
        ("/data", "/proc"): "under /proc",
        ("/data", "/sys/fs/cgroup"): "under /sys",
        ("/data", "/dev/shm"): "under /dev",
        ("/data", "/run/fairpool/env"): "under /run/fairpool",
        ("/data,readonly=false", "/x"): "must not contain ','",
        ("/data", "/x:rw"): "must not contain ':'",
        ("/da\nta", "/x"): "must not contain",
        ("/da\x00ta", "/x"): "NUL",
        ("/" + "a" * 4096, "/x"): "at most 4096",
    }
    for (source, target), message in refused.items():
        with pytest.raises(ValidationError, match=message):
            MountSpec(source=source, target=target)
    for fine in ("/procs", "/device", "/run/fairpool-data", "/run", "/data/proc"):
        assert MountSpec(source="/data", target=fine).target == fine
    with pytest.raises(ValidationError, match="two mounts have the target /x"):
        _job(MountSpec(source="/a", target="/x"), MountSpec(source="/b", target="/x"))
    with pytest.raises(ValidationError, match="at most 32"):
        _job(*(MountSpec(source="/a", target=f"/m{i}") for i in range(33)))
    for image in ("", "-bad", "a b", "x" * 256, "ubuntu;rm", "ubuntu\n"):
        with pytest.raises(ValidationError):
            _job(image=image)
    for image in ("ubuntu", "ghcr.io/org/img:v1.2", "reg:5000/a/b@sha256:" + "0" * 64):
        assert _job(image=image).image == image
    assert parse_mount("/a:/b") == MountSpec(source="/a", target="/b", read_only=False)
    assert parse_mount("/a:/b:ro").read_only
    for bad in ("/a", "/a:/b:rw", "/a:/b:ro:x", ":/b", "/a:", "/a::ro"):
        with pytest.raises(ValueError, match="--mount takes SRC:DST or SRC:DST:ro"):
            parse_mount(bad)


def test_client_keys_of_jobs_without_an_image_hash_as_before(store: Store) -> None:
    """A key used before image and mounts existed still replays its job after the upgrade."""
    spec = JobSubmit(project="vision", command=["python", "train.py"], gpus=1, client_key="k")
    old = spec.model_dump(exclude={"client_key", "image", "mounts", "after", "after_any",
                                   "after_failed"})
    assert submission.request_hash(spec) == hashlib.sha256(
        json.dumps(old, sort_keys=True).encode()).hexdigest()
    with_image = spec.model_copy(update={"image": IMAGE})
    assert submission.request_hash(with_image) != submission.request_hash(spec)


def test_nodes_show_their_isolation(store: Store) -> None:
    reports = {
        "full": {"level": "full", "run_as": "dynamic", "missing": [],
                 "simulated_devices": False},
        "partial": {"level": "partial", "run_as": "server", "missing": ["cgroups", "podman"],
                    "simulated_devices": True},
        "sparse": {"level": "none"},
        "unreported": None,
    }
    with store.writing() as s:
        for name, iso in reports.items():
            s.add(NodeRow(name=name, devices=[], cpu=1000, memory=1024, isolation=iso,
                          updated_at=time.time()))
    shown = {n.name: n.isolation for n in nodes.list_nodes(store)}
    full, partial, sparse = shown["full"], shown["partial"], shown["sparse"]
    assert full is not None and (full.level, full.run_as, full.missing) == ("full", "dynamic", [])
    assert partial is not None and partial.missing == ["cgroups", "podman"]
    assert partial.simulated_devices and partial.run_as == "server"
    assert sparse is not None and sparse.level == "none" and sparse.missing == []
    assert not sparse.simulated_devices and sparse.run_as == "unknown"
    assert shown["unreported"] is None


def test_user_accounts(store: Store) -> None:
    assert accounts.list_accounts(store) == []
    made = accounts.map_account(store, "alice@corp", "alice", "admin", address="10.0.0.1")
    assert (made.user, made.account, made.created_by) == ("alice@corp", "alice", "admin")
    accounts.map_account(store, "bob", "svc-ml_1", "admin")
    again = accounts.map_account(store, "alice@corp", "alice2", "root-admin")
    assert again.account == "alice2" and again.created_by == "root-admin"
    assert [(a.user, a.account) for a in accounts.list_accounts(store)] == [
        ("alice@corp", "alice2"), ("bob", "svc-ml_1")]
    with store.session() as s:
        assert accounts.account_of(s, "alice@corp") == "alice2"
        assert accounts.account_of(s, "carol") is None
    gone = accounts.unmap(store, "bob", "admin")
    assert gone.account == "svc-ml_1"
    with pytest.raises(NotFound, match="user bob has no account mapping"):
        accounts.unmap(store, "bob", "admin")
    assert [a.user for a in accounts.list_accounts(store)] == ["alice@corp"]
    # audited like role changes: who, what, from where
    log = [(a.actor, a.action, a.target, a.detail, a.address)
           for a in reversed(audit.query(store)) if a.action.startswith("account.")]
    assert log == [("admin", "account.map", "alice@corp:alice", "", "10.0.0.1"),
                   ("admin", "account.map", "bob:svc-ml_1", "", ""),
                   ("root-admin", "account.map", "alice@corp:alice2", "was alice", ""),
                   ("admin", "account.unmap", "bob:svc-ml_1", "", "")]


def test_root_and_bad_names_are_refused(store: Store) -> None:
    with pytest.raises(Invalid) as refused:
        accounts.map_account(store, "alice", "root", "admin")
    assert refused.value.message == ("jobs never run as root; map the user to an unprivileged "
                                     "account")
    for bad in ("Alice", "1alice", "al ice", "a" * 33, "", "alice$", "../x", "-x"):
        with pytest.raises(Invalid, match="is not a Unix account name"):
            accounts.map_account(store, "alice", bad, "admin")
    for bad_user in ("", "a/b", "-x", "a" * 201):
        with pytest.raises(Invalid, match="is not a user name"):
            accounts.map_account(store, bad_user, "alice", "admin")
    assert accounts.list_accounts(store) == []
    assert not [a for a in audit.query(store) if a.action.startswith("account.")]
