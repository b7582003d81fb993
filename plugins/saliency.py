"""Gradient saliency (Simonyan et al. 2014), with SmoothGrad (Smilkov et al. 2017) as an option."""

from __future__ import annotations

from dataclasses import dataclass

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method
from interpret_rl.option_checks import MAX_COPIES, MAX_SEED, bounded
from interpret_rl.targets import Target, actions_for, target_scores

torch = lazy_module("torch")


def input_gradient(agent, target: Target, x: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
    """Gradient of each observation's target score wrt that observation: ``(B, *obs)`` -> ``(B, *obs)``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        scores = target_scores(agent, target, x, actions=actions)
        # Observations are independent, so the gradient of the sum is each score's own gradient.
        (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


class Saliency(Method):
    """|d target / d input|, or its SmoothGrad average over noisy copies of the input.

    Output: ``(B, *obs_shape)`` float, one map per observation (per frame for stacked frames).
    """

    name = "saliency"
    description = "gradient of the target wrt the input (SmoothGrad with samples > 0)"
    kind = "attribution"

    @dataclass
    class Options:
        absolute: bool = True
        """Take |gradient| (per sample, before averaging, as captum's NoiseTunnel does)."""
        samples: int = bounded(0, at_least=0, at_most=MAX_COPIES)
        """SmoothGrad noisy copies per observation; 0 = the plain gradient."""
        noise: float = bounded(0.15, at_least=0)
        """SmoothGrad noise std relative to each observation's value range (max - min)."""
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)
        """Seed of the SmoothGrad noise."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        opts = self.options
        x = observations.detach().clone().float()
        actions = actions_for(agent, target, x)  # the action of the real frame, also for noisy copies
        post = torch.abs if opts.absolute else (lambda g: g)
        if opts.samples <= 0:
            return self.explanation(target, post(input_gradient(agent, target, x, actions)))
        generator = torch.Generator(device=x.device).manual_seed(opts.seed)
        value_range = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).clamp_min(1e-8)
        std = (opts.noise * value_range).view(-1, *[1] * (x.dim() - 1))
        total = torch.zeros_like(x)
        for _ in range(opts.samples):
            noise = torch.randn(x.shape, generator=generator, device=x.device) * std
            total += post(input_gradient(agent, target, x + noise, actions))
        return self.explanation(target, total / opts.samples)


@hookimpl
def register_methods(register):
    register(Saliency)
