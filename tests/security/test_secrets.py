"""Project secrets: encrypted at rest, injected into the project's workers only, and never in
API responses, events, the server's log or the database in plain text."""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import uuid
from pathlib import Path

from cryptography.fernet import Fernet

from fairpool.client import FairpoolError
from tests.security.conftest import Org

# the job proves it got the secret without printing it: it writes the value's SHA-256
PROBE = ("import hashlib, os, sys; v = os.environ.get(sys.argv[2]); "
         "open(sys.argv[1], 'w').write('missing' if v is None else "
         "hashlib.sha256(v.encode()).hexdigest())")


def _run(org: Org, user: str, project: str, out: Path, name: str,
         env: dict[str, str] | None = None) -> str:
    with org.client(user) as c:
        job = c.submit(project=project, command=[sys.executable, "-c", PROBE, str(out), name],
                       env=env or {})
    org.pool.wait(job.id, {"succeeded"})
    return job.id


def test_secrets_reach_workers_and_nothing_else(org: Org, tmp_path: Path) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    rita = org.client("rita")
    seen: list[str] = []  # every response body the API gave about the secret or its job
    put = rita.set_secret("p1", "WANDB_API_KEY", value)
    seen.append(put.model_dump_json())
    assert put.name == "WANDB_API_KEY" and put.updated_by == "rita"
    listed = rita.secrets("p1")
    seen.append("".join(s.model_dump_json() for s in listed))
    assert [s.name for s in listed] == ["WANDB_API_KEY"]

    job_id = _run(org, "rita", "p1", tmp_path / "p1.out", "WANDB_API_KEY")
    assert (tmp_path / "p1.out").read_text() == hashlib.sha256(value.encode()).hexdigest()
    # another project's worker does not get it
    _run(org, "oscar", "p2", tmp_path / "p2.out", "WANDB_API_KEY")
    assert (tmp_path / "p2.out").read_text() == "missing"
    # a variable the job sets itself wins over the secret
    _run(org, "rita", "p1", tmp_path / "own.out", "WANDB_API_KEY", {"WANDB_API_KEY": "mine"})
    assert (tmp_path / "own.out").read_text() == hashlib.sha256(b"mine").hexdigest()

    with org.http("rita") as http:
        for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/events",
                     f"/api/v1/jobs/{job_id}/explain", f"/api/v1/jobs/{job_id}/logs",
                     "/api/v1/jobs", "/api/v1/projects/p1/secrets", "/api/v1/queues"):
            seen.append(http.get(path).text)
    seen.append("".join(a.model_dump_json() for a in org.pool.client.audit(limit=10_000)))
    for text in seen:
        assert value not in text
    assert value not in (org.pool.data_dir.parent / "server.log").read_text()
    for log in (org.pool.data_dir / "logs").glob("*.log"):
        assert value.encode() not in log.read_bytes()

    # the database holds ciphertext only, which the pool's key opens
    raw = b"".join(p.read_bytes() for p in org.pool.data_dir.glob("fairpool.db*"))
    assert value.encode() not in raw
    with sqlite3.connect(org.pool.data_dir / "fairpool.db") as conn:
        (cipher,) = conn.execute("SELECT ciphertext FROM project_secrets WHERE project='p1' "
                                 "AND name='WANDB_API_KEY'").fetchone()
    key = (org.pool.data_dir / "secret.key").read_bytes().strip()
    assert (org.pool.data_dir / "secret.key").stat().st_mode & 0o077 == 0
    assert Fernet(key).decrypt(cipher.encode()).decode() == value

    actions = {(a.action, a.target) for a in org.pool.client.audit(actor="rita", limit=1000)}
    assert ("secret.set", "p1/WANDB_API_KEY") in actions
    deleted = rita.delete_secret("p1", "WANDB_API_KEY")
    assert value not in deleted.model_dump_json()
    assert rita.secrets("p1") == []
    _run(org, "rita", "p1", tmp_path / "gone.out", "WANDB_API_KEY")
    assert (tmp_path / "gone.out").read_text() == "missing"


def test_secret_input_is_checked(org: Org) -> None:
    rita = org.client("rita")
    for name, status in (("1BAD", 422), ("has-dash", 422), ("X" * 200, 422)):
        try:
            rita.set_secret("p1", name, "v")
            raise AssertionError(f"{name} was accepted")
        except FairpoolError as exc:
            assert exc.status in (404, status), (name, exc.message)
    try:
        rita.set_secret("p1", "BIG", "x" * 40_000)
        raise AssertionError("an oversized secret was accepted")
    except FairpoolError as exc:
        assert exc.status == 422
    try:
        org.client("vic").set_secret("p1", "VIEWER_TRY", "v")
        raise AssertionError("a viewer set a secret")
    except FairpoolError as exc:
        assert exc.status == 403
    assert rita.secrets("p1") == []
