"""A tiny torch.distributed (DDP, gloo) training job for trying fairpool gangs.

Every rank trains the same small model on its shard of a synthetic regression problem; DDP
averages gradients, so all ranks hold identical weights and print the same final loss. fairpool
provides MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE and LOCAL_RANK, so nothing here is
fairpool-specific:

    fairpool submit -p vision --workers 2 -- python examples/ddp_train.py --steps 200
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    args = ap.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1000 + rank)
    true_w = torch.arange(8, dtype=torch.float32).unsqueeze(1) / 8
    x = torch.randn(256, 8, generator=gen)
    y = x @ true_w + 0.01 * torch.randn(256, 1, generator=gen)
    loss = torch.tensor(0.0)
    for _ in range(args.steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    final = loss.detach().clone()
    dist.all_reduce(final)
    final /= world
    print(f"rank {rank}/{world} local_rank {os.environ.get('LOCAL_RANK')} "
          f"final_loss {final.item():.8f} node {os.environ.get('FAIRPOOL_NODE', '?')}",
          flush=True)
    # rank 0 hosts the rendezvous store: a rank still tearing down that finds the store gone
    # aborts ("terminate called without an active exception"). Leave together, and let rank 0
    # (the store) go last.
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0 and world > 1:
        time.sleep(2.0)


if __name__ == "__main__":
    main()
