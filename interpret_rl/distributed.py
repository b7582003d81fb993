"""Synchronous data-parallel A2C across processes started by ``torchrun``.

Each rank steps its own environments (seeds offset by rank), computes the loss on its own
rollout, and the gradients are averaged with one all-reduce before clipping and the optimizer
step, so every rank applies the same update and the weights stay identical. Only rank 0 writes
the training curve and checkpoints. Without torchrun (no ``WORLD_SIZE``) everything is a no-op.

    torchrun --nproc_per_node=2 -m interpret_rl train --env CartPole-v1 --name dp-agent
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


class Ranks:
    """The process group of a training run (a single process when not under torchrun)."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """One GPU per rank on a multi-GPU machine; CPU stays CPU."""
        if self.enabled and requested == "cuda":
            return torch.device("cuda", self.local_rank)
        return torch.device(requested)

    def start(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def broadcast_weights(self, network: torch.nn.Module) -> None:
        """Start every rank from rank 0's weights (same seed already gives the same; this makes sure)."""
        if self.enabled:
            for tensor in network.state_dict().values():
                dist.broadcast(tensor, src=0)

    def average_gradients(self, network: torch.nn.Module) -> None:
        if not self.enabled:
            return
        grads = [p.grad for p in network.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective instead of one per tensor
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on one (so all ranks stop at the same update)."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
