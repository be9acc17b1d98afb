"""Images, mounts and users' Unix accounts over REST, the SDK and the CLI, against a real
``fairpool up`` whose allowed mount roots are two directories of the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fairpool.client import FairpoolError
from fairpool.schemas.jobs import MountSpec
from tests.e2e.conftest import start_pool, stop_pool
from tests.security.conftest import Org, build_org

IMAGE = "docker.io/library/busybox:1.36"
#: a command that ends at once wherever it runs (the job's fate is not what is tested here)
QUICK = ["true"]


@dataclass
class Env:
    org: Org
    data: Path
    datasets: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("isolation")
    data, datasets = tmp / "data", tmp / "datasets"
    (data / "set").mkdir(parents=True)
    datasets.mkdir()
    (data / "escape").symlink_to("/etc")
    pool = start_pool(tmp, "--simulate-gpus", "2", env_extra={
        "FAIRPOOL_ALLOWED_MOUNT_ROOTS": json.dumps([str(data), str(datasets)])})
    try:
        yield Env(build_org(pool), data, datasets)
    finally:
        stop_pool(pool)


def _submit(env: Env, user: str, **body: object) -> tuple[int, dict[str, object]]:
    with env.org.http(user) as http:
        resp = http.post("/api/v1/jobs", json={"project": "p1", "command": QUICK, **body})
    return resp.status_code, resp.json()


def test_mounts_over_rest(env: Env) -> None:
    status, body = _submit(env, "rita", image=IMAGE, mounts=[
        {"source": f"{env.data}/set", "target": "/data", "read_only": True},
        {"source": str(env.datasets), "target": "/datasets"}])
    assert status == 201, body
    assert body["image"] == IMAGE and body["mounts"] == [
        {"source": f"{env.data}/set", "target": "/data", "read_only": True},
        {"source": str(env.datasets), "target": "/datasets", "read_only": False}]
    with env.org.http("rita") as http:
        assert http.get(f"/api/v1/jobs/{body['id']}").json()["mounts"] == body["mounts"]

    allowed = f"(allowed: {env.data}, {env.datasets})"
    status, body = _submit(env, "rita", image=IMAGE,
                           mounts=[{"source": "/etc", "target": "/etc-host"}])
    assert (status, body["error"]) == (422, f"mount source /etc is not under an allowed mount "
                                             f"root {allowed}; an admin sets "
                                             f"allowed_mount_roots")
    status, body = _submit(env, "rita", image=IMAGE,
                           mounts=[{"source": f"{env.data}/escape", "target": "/x"}])
    assert status == 422 and "resolves to /etc" in str(body["error"])
    status, body = _submit(env, "rita", mounts=[{"source": str(env.data), "target": "/d"}])
    assert status == 422 and "mounts need an image (--image)" in json.dumps(body)
    for bad in ({"source": "/data/../etc", "target": "/x"}, {"source": "/d", "target": "/proc"},
                {"source": "/d", "target": "/x", "extra": 1}):
        status, body = _submit(env, "rita", image=IMAGE, mounts=[bad])
        assert status == 422, (bad, body)
    # a caller who may not submit there learns nothing about the mount rules
    status, body = _submit(env, "vic", image=IMAGE, mounts=[{"source": "/etc", "target": "/x"}])
    assert status == 403, body


def test_mounts_with_the_sdk(env: Env) -> None:
    c = env.org.client("rita")
    job = c.submit(project="p1", command=QUICK, image=IMAGE,
                   mounts=[f"{env.data}/set:/data:ro",
                           MountSpec(source=str(env.datasets), target="/ds")])
    assert [(m.target, m.read_only) for m in job.mounts] == [("/data", True), ("/ds", False)]
    with pytest.raises(FairpoolError, match="SRC:DST or SRC:DST:ro") as bad:
        c.submit(project="p1", command=QUICK, image=IMAGE, mounts=["/data"])
    assert bad.value.status == 422
    with pytest.raises(FairpoolError, match="mounts need an image"):
        c.submit(project="p1", command=QUICK, mounts=[f"{env.data}:/d"])


def test_mounts_with_the_cli(env: Env) -> None:
    pool = env.org.pool
    out = pool.cli("submit", "-p", "p1", "--image", IMAGE, "--mount",
                   f"{env.data}/set:/data:ro", "--mount", f"{env.datasets}:/ds", "--json",
                   "--", *QUICK)
    job_id = json.loads(out.stdout)["id"]
    shown = pool.cli("job", job_id).stdout
    assert f"image: {IMAGE}" in shown
    assert f"mount: {env.data}/set -> /data (read-only)" in shown
    assert f"mount: {env.datasets} -> /ds\n" in shown
    for bad in ("/data", "/a:/b:rw", "/a:/b:ro:x"):
        failed = pool.cli("submit", "-p", "p1", "--image", IMAGE, "--mount", bad, "--", "true",
                          check=False)
        assert failed.returncode != 0
        assert failed.stderr.strip() == "error: --mount takes SRC:DST or SRC:DST:ro"
    failed = pool.cli("submit", "-p", "p1", "--mount", f"{env.data}:/d", "--", "true",
                      check=False)
    assert failed.returncode != 0 and "mounts need an image (--image)" in failed.stderr
    failed = pool.cli("submit", "-p", "p1", "--image", IMAGE, "--mount", "/etc:/e", "--",
                      "true", check=False)
    assert failed.returncode != 0 and "is not under an allowed mount root" in failed.stderr
    plain = pool.cli("job", json.loads(pool.cli("submit", "-p", "p1", "--json", "--",
                                                "true").stdout)["id"]).stdout
    assert "image:" not in plain and "mount:" not in plain


def test_nodes_show_an_isolation_column(env: Env) -> None:
    listing = env.org.pool.cli("nodes").stdout
    assert "isolation" in listing
    for node in env.org.client("admin").nodes():
        assert node.isolation is None or node.isolation.level in ("full", "partial", "none")


def test_user_accounts_over_rest(env: Env) -> None:
    with env.org.http("admin") as admin:
        made = admin.put("/api/v1/accounts/alice@corp", json={"account": "alice"})
        assert made.status_code == 200, made.text
        assert made.json()["account"] == "alice" and made.json()["created_by"] == "admin"
        listed = admin.get("/api/v1/accounts").json()
        assert [(a["user"], a["account"]) for a in listed] == [("alice@corp", "alice")]
        root = admin.put("/api/v1/accounts/alice@corp", json={"account": "root"})
        assert root.status_code == 422
        assert "jobs never run as root" in root.text
        for bad in ({"account": "Alice"}, {"account": "x", "extra": 1}, {}):
            assert admin.put("/api/v1/accounts/bob", json=bad).status_code == 422, bad
        assert admin.put("/api/v1/accounts/bad%2Fuser",
                         json={"account": "x"}).status_code in (404, 422)
        gone = admin.delete("/api/v1/accounts/alice@corp")
        assert gone.status_code == 200 and gone.json()["account"] == "alice"
        assert admin.delete("/api/v1/accounts/alice@corp").status_code == 404
        audit = admin.get("/api/v1/audit", params={"action": "account.map"}).json()
        assert [a["target"] for a in audit] == ["alice@corp:alice"]
    for user in ("dora", "rita", "vic", "nobody"):
        with env.org.http(user) as http:
            refused = http.get("/api/v1/accounts")
            assert refused.status_code == 403
            assert "may not map users to Unix accounts" in refused.text
            assert http.put(f"/api/v1/accounts/{user}",
                            json={"account": "root"}).status_code == 403
            assert http.delete("/api/v1/accounts/rita").status_code == 403
    with env.org.http(None) as anon:
        assert anon.get("/api/v1/accounts").status_code == 401


def test_user_accounts_with_the_sdk_and_the_cli(env: Env) -> None:
    pool = env.org.pool
    admin = env.org.client("admin")
    assert admin.map_account("carol", "ml-carol").account == "ml-carol"
    assert pool.cli("user", "map", "dave", "dave_1").stdout.strip() == (
        "jobs of dave run as Unix account dave_1")
    listed = json.loads(pool.cli("user", "list", "--json").stdout)
    assert [(a["user"], a["account"]) for a in listed] == [("carol", "ml-carol"),
                                                           ("dave", "dave_1")]
    table = pool.cli("user", "list").stdout
    assert "carol" in table and "ml-carol" in table
    assert pool.cli("user", "unmap", "dave").stdout.strip() == "dave is no longer mapped to dave_1"
    assert [a.user for a in admin.accounts()] == ["carol"]
    assert admin.unmap_account("carol").user == "carol"
    refused = pool.cli("user", "map", "erin", "root", check=False)
    assert refused.returncode != 0 and "jobs never run as root" in refused.stderr
    with pytest.raises(FairpoolError) as denied:
        env.org.client("rita").accounts()
    assert denied.value.status == 403
