"""A tiny torch.distributed (DDP, gloo) training job for trying fairpool gangs.

Every rank trains the same small model on its shard of a synthetic regression problem; DDP
averages gradients, so all ranks hold identical weights and print the same final loss. fairpool
provides MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE and LOCAL_RANK, so nothing here is
fairpool-specific but the checkpointing, which makes a preemption a pause: on SIGTERM the ranks
agree on a step to stop at, rank 0 saves the model, optimizer and step in
``$FAIRPOOL_CHECKPOINT_DIR``, and the requeued job resumes from there with the same result as an
uninterrupted run:

    fairpool submit -p vision --workers 2 -- python examples/ddp_train.py --steps 200
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from fairpool import checkpoint

STATE = "ddp_train.pt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--step-delay", type=float, default=0.0, help="seconds per step (demos)")
    ap.add_argument("--log-every", type=int, default=0, help="print the loss every N steps")
    args = ap.parse_args()
    checkpoint.install()  # SIGTERM: finish the step, save, leave
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    start = 0
    saved = checkpoint.load(STATE)
    if saved is not None:
        model.module.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        start = saved["step"]
        print(f"rank {rank}: resumed from step {start} (attempt {checkpoint.attempt()}, "
              f"FAIRPOOL_PREEMPTED={os.environ.get('FAIRPOOL_PREEMPTED', '0')})", flush=True)
    gen = torch.Generator().manual_seed(1000 + rank)
    true_w = torch.arange(8, dtype=torch.float32).unsqueeze(1) / 8
    x = torch.randn(256, 8, generator=gen)
    y = x @ true_w + 0.01 * torch.randn(256, 1, generator=gen)
    loss = torch.tensor(0.0)
    for step in range(start, args.steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if args.step_delay:
            time.sleep(args.step_delay)
        if args.log_every and rank == 0 and (step + 1) % args.log_every == 0:
            print(f"step {step + 1} loss {loss.item():.6f}", flush=True)
        # every rank must stop at the same step: agree on whether any rank was told to stop
        stop = torch.tensor([1.0 if checkpoint.stop_requested() else 0.0])
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if stop.item() > 0:
            if rank == 0:
                checkpoint.save(STATE, {"model": model.module.state_dict(),
                                        "optimizer": opt.state_dict(), "step": step + 1})
                print(f"rank 0: {checkpoint.stop_reason() or 'stopped'} at step {step + 1}; "
                      f"checkpoint saved", flush=True)
            leave(rank, world)
            sys.exit(0)
    final = loss.detach().clone()
    dist.all_reduce(final)
    final /= world
    print(f"rank {rank}/{world} local_rank {os.environ.get('LOCAL_RANK')} "
          f"final_loss {final.item():.8f} node {os.environ.get('FAIRPOOL_NODE', '?')}",
          flush=True)
    leave(rank, world)


def leave(rank: int, world: int) -> None:
    # rank 0 hosts the rendezvous store: a rank still tearing down that finds the store gone
    # aborts ("terminate called without an active exception"). Leave together, and let rank 0
    # (the store) go last.
    dist.barrier()
    dist.destroy_process_group()
    if rank == 0 and world > 1:
        time.sleep(5.0)  # (2 s was not always enough on a loaded 2-core machine)


if __name__ == "__main__":
    main()
