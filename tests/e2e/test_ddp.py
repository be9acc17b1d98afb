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
