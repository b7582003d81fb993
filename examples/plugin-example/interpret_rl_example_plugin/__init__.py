"""An interpret-rl plugin adding the ``input-x-gradient`` method (Shrikumar et al. 2016).

Installed, it appears in ``interpret-rl methods`` and works in ``interpret-rl compare --methods
input-x-gradient,saliency`` with no change to interpret-rl: the ``interpret_rl`` entry point in
setup.cfg names this module, and its ``register_methods`` hook registers the method class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Explanation, Method
from interpret_rl.targets import Target, actions_for, target_scores


class InputXGradient(Method):
    """Gradient of the target times the input, elementwise.

    Output: ``(B, *obs_shape)`` float, one map per observation (per frame for stacked frames).
    Uses only ``target_scores``, so it works for every target and both architectures, and it adds
    no torch hook, changes no weight and leaves ``observations`` untouched, as the contract asks.
    """

    name = "input-x-gradient"
    description = "gradient of the target times the input (example third-party plugin)"
    kind = "attribution"

    @dataclass
    class Options:
        absolute: bool = False
        """Show |gradient x input| instead of the signed product."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        x = observations.detach().clone().float().requires_grad_(True)
        actions = actions_for(agent, target, x.detach())  # a chosen-action target stays on that action
        with torch.enable_grad():
            scores = target_scores(agent, target, x, actions=actions)
            (gradient,) = torch.autograd.grad(scores.sum(), x)  # rows are independent: sum keeps each gradient
        product = gradient * x.detach()
        return self.explanation(target, product.abs() if self.options.absolute else product)


@hookimpl
def register_methods(register):
    register(InputXGradient)
