"""The network as one scalar per observation, as an ``nn.Module`` (see ``target_forward``).

Its own module because a class deriving from ``nn.Module`` needs torch when it is defined, and
``target_forward`` is imported whenever plugins load (``interpret_rl.lazy``).
"""

from __future__ import annotations

import torch
from torch import nn

from interpret_rl.target_forward import target_function
from interpret_rl.targets import Target


class TargetModule(nn.Module):
    """The network as a single-output module, ``(B, *obs)`` -> ``(B,)``: captum methods that hook
    the nonlinearities (DeepLift, GuidedBackprop) need a Module whose submodules they can reach
    (the agent's own network is a submodule, not a copy)."""

    def __init__(self, agent, target: Target):
        super().__init__()
        self.network = agent.network
        self.score = target_function(agent, target)

    def forward(self, x: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(x, actions)
