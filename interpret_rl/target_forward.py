"""The network seen as one scalar per observation, for attribution libraries (captum).

Captum needs ``(B, *obs)`` -> ``(B,)``, but the network returns ``(logits, value)``: these helpers
hand it the target alone. For a ``chosen-action`` target the actions chosen on the real
observations travel as an additional forward argument, which captum expands together with the
inputs (interpolations, occlusions, baselines), so the explained action stays fixed
(``interpret_rl.target_module.TargetModule`` wraps them as a Module). Several plugins use them
and plugins never import each other, so they live in the core.
"""

from __future__ import annotations

from interpret_rl.lazy import lazy_module
from interpret_rl.targets import Target, actions_for, target_scores

torch = lazy_module("torch")


def target_function(agent, target: Target):
    """``forward(x (B, *obs), actions (B,) | None) -> (B,)`` target scores, for captum."""

    def forward(x: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        return target_scores(agent, target, x, actions=actions)

    return forward


def prepare(agent, target: Target, observations: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """A fresh float copy of the input (captum leaves ``requires_grad`` set on its input when an
    attribution fails), and captum keyword arguments carrying the fixed actions."""
    x = observations.detach().clone().float()
    actions = actions_for(agent, target, x)
    return x, ({} if actions is None else {"additional_forward_args": (actions,)})
