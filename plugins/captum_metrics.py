"""Captum's infidelity and max-sensitivity (Yeh et al. 2019, "On the (In)fidelity and Sensitivity
of Explanations"), made cheap and seeded.

Captum gets a forward function for the target alone (``(N, *obs)`` -> ``(N,)`` via
``target_scores``, never the network's ``(logits, value)`` tuple). For a ``chosen-action`` target
the actions chosen on the real observations travel as an additional argument, which captum
repeats with the inputs, so perturbed copies score (and are explained for) the same action.

Noise is scaled by each observation's value range (max - min over the observation), because one
absolute radius cannot suit both 0..255 frames and CartPole's small floats. It is drawn from a
``torch.Generator`` seeded by ``Options.seed``, so the same seed gives the same value, and it is
not clipped to the observation space: both metrics describe the function locally.
"""

from __future__ import annotations

from dataclasses import dataclass

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method
from interpret_rl.metrics import Metric, MetricResult, explain_holding_actions
from interpret_rl.option_checks import MAX_COPIES, MAX_SEED, bounded
from interpret_rl.targets import Target, actions_for, target_scores

torch = lazy_module("torch")
captum_metrics = lazy_module("captum.metrics")


def value_range(x: torch.Tensor) -> torch.Tensor:
    """``(N, *obs)`` -> per-row max - min, shaped ``(N, 1, ..., 1)`` to broadcast (at least 1e-8)."""
    flat = x.flatten(1)
    return (flat.amax(1) - flat.amin(1)).clamp_min(1e-8).view(-1, *[1] * (x.dim() - 1))


def _extra_args(actions: torch.Tensor | None) -> dict:
    return {} if actions is None else {"additional_forward_args": (actions,)}


class Infidelity(Metric):
    """Captum's infidelity: E_I[(I . attribution - (f(x) - f(x - I)))^2], I ~ N(0, (noise * range)^2).

    ``normalize=True`` (captum's default) rescales the attribution by the best scalar first, so
    maps that are right up to scale (|gradient| vs gradient x input) are not punished for scale.
    Per-observation values are averaged; lower is better.
    """

    name = "infidelity"
    description = "captum infidelity: how well attribution x noise predicts the target's change (lower is better)"
    higher_is_better = False

    @dataclass
    class Options:
        samples: int = bounded(10, at_least=1, at_most=MAX_COPIES)
        """Noise samples per observation."""
        noise: float = bounded(0.05, at_least=0)
        """Noise std relative to each observation's value range (max - min)."""
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)
        """Seed of the noise."""

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        opts = self.options
        x = observations.detach().float().clone()
        generator = torch.Generator(device=x.device).manual_seed(opts.seed)

        def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            noise = torch.randn(inputs.shape, generator=generator, device=inputs.device)
            noise = noise * opts.noise * value_range(inputs)
            return noise, inputs - noise

        def forward(inputs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
            return target_scores(agent, target, inputs, actions=actions)

        with torch.no_grad():
            actions = actions_for(agent, target, x)
        attributions = explanation.values.detach().float().to(x.device).contiguous()
        values = captum_metrics.infidelity(forward, perturb, x, attributions,
                                           n_perturb_samples=opts.samples, normalize=True, **_extra_args(actions))
        per_observation = values.double().cpu().flatten()
        return self.result(per_observation.mean(), per_observation=per_observation.tolist(),
                            samples=opts.samples, noise=opts.noise)


class Sensitivity(Metric):
    """Captum's max-sensitivity: max over perturbed copies of ||map(x') - map(x)|| / ||map(x)||
    (Frobenius norms), x' uniform in the L-inf ball of radius ``radius * range`` around x.

    The method is re-run on all perturbed copies (``samples`` x B observations in one call).
    Per-observation values are averaged; lower is better.
    """

    name = "sensitivity"
    description = "captum max-sensitivity: largest relative change of the map under small input noise (lower is better)"
    higher_is_better = False

    @dataclass
    class Options:
        samples: int = bounded(10, at_least=1, at_most=MAX_COPIES)
        """Perturbed copies per observation."""
        radius: float = bounded(0.02, at_least=0)
        """L-inf radius relative to each observation's value range (max - min)."""
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)
        """Seed of the perturbations."""

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        opts = self.options
        x = observations.detach().float().clone()
        generator = torch.Generator(device=x.device).manual_seed(opts.seed)

        def perturb(inputs: torch.Tensor) -> torch.Tensor:
            unit = torch.rand(inputs.shape, generator=generator, device=inputs.device) * 2 - 1
            return inputs + unit * opts.radius * value_range(inputs)

        def explain(inputs, additional_forward_args=None):
            # captum passes a tuple for the real inputs and a bare tensor for perturbed ones, and
            # iterates the answer for the former: answer in kind.
            x_in = inputs[0] if isinstance(inputs, tuple) else inputs
            actions = None if additional_forward_args is None else additional_forward_args[0]
            # contiguous: captum .view()s the maps; gradients of channels-last convs are not
            maps = explain_holding_actions(method, agent, target, x_in, actions).float().contiguous()
            return (maps,) if isinstance(inputs, tuple) else maps

        with torch.no_grad():
            actions = actions_for(agent, target, x)
        values = captum_metrics.sensitivity_max(explain, x, perturb_func=perturb, n_perturb_samples=opts.samples,
                                                **_extra_args(actions))
        per_observation = values.double().cpu().flatten()
        return self.result(per_observation.mean(), per_observation=per_observation.tolist(),
                            samples=opts.samples, radius=opts.radius)


@hookimpl
def register_metrics(register):
    register(Infidelity)
    register(Sensitivity)
