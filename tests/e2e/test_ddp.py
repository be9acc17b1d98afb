"""A 2-worker torch DDP gang (CPU torch, gloo) trains end to end through fairpool."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.e2e.conftest import Pool

SCRIPT = Path(__file__).parents[2] / "examples" / "ddp_train.py"


def test_ddp_gang_trains_and_ranks_agree(pool: Pool) -> None:
    job = pool.client.submit(project="nlp", command=[sys.executable, str(SCRIPT), "--steps",
                                                     "60"], gpus=1, workers=2)
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=180) == "succeeded", [
        pool.client.logs(job.id, rank=r) for r in (0, 1)]
    losses = []
    for rank in (0, 1):
        text = pool.client.logs(job.id, rank=rank)
        found = re.search(rf"rank {rank}/2 local_rank {rank} final_loss ([0-9.]+)", text)
        assert found, text
        losses.append(float(found.group(1)))
    assert losses[0] == losses[1]
    assert losses[0] < 0.01  # it trained
    devices = {tuple(w.devices) for w in pool.client.job(job.id).placement}
    assert len(devices) == 2  # one GPU each, distinct


def _final_loss(pool: Pool, job_id: str) -> float:
    found = re.search(r"final_loss ([0-9.]+)", pool.client.logs(job_id, rank=0))
    assert found, pool.client.logs(job_id, rank=0)
    return float(found.group(1))


def test_a_preempted_ddp_job_resumes_from_its_checkpoint(pool: Pool) -> None:
    """Reclaimed mid-training, checkpointed on SIGTERM, resumed after requeue: the same final
    loss as an uninterrupted run."""
    args = [sys.executable, str(SCRIPT), "--steps", "150", "--step-delay", "0.05",
            "--log-every", "10"]
    straight = pool.client.submit(project="vision", command=args, gpus=1, workers=2)
    assert pool.wait(straight.id, {"succeeded", "failed"}, timeout=180) == "succeeded"
    expected = _final_loss(pool, straight.id)

    # vision fills its quota with a job that cannot be preempted, then borrows nlp's two idle
    # GPUs for the gang; nlp claims its quota back: the gang is reclaimed
    held = pool.client.submit(project="vision", priority="build", gpus=2, command=[
        sys.executable, "-c", "import time; time.sleep(600)"])
    pool.wait(held.id, {"running"})
    job = pool.client.submit(project="vision", command=args, gpus=1, workers=2)
    pool.wait(job.id, {"running"}, timeout=60)
    pool.until(lambda: "step 20 " in pool.client.logs(job.id), timeout=60, what="training")
    claim = pool.client.submit(project="nlp", gpus=2, command=[sys.executable, "-c",
                                                                "import time; time.sleep(2)"])
    assert pool.wait(claim.id, {"succeeded"}, timeout=120) == "succeeded"
    assert pool.wait(job.id, {"succeeded", "failed"}, timeout=180) == "succeeded"
    done = pool.client.job(job.id)
    assert done.attempt == 1
    first = pool.client.logs(job.id, rank=0, attempt=0)
    stopped = re.search(r"rank 0: preempted at step (\d+); checkpoint saved", first)
    assert stopped, first
    step = int(stopped.group(1))
    assert 20 <= step < 150
    assert (f"resumed from step {step} (attempt 1, FAIRPOOL_PREEMPTED=1)"
            in pool.client.logs(job.id, rank=0))
    assert "FAIRPOOL_PREEMPTED" not in first
    assert _final_loss(pool, job.id) == expected
    assert any("reclaimed by project nlp" in e.message for e in pool.client.events(job.id))
    pool.client.cancel(held.id)
