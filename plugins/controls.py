"""Control methods that every judge is regression-tested against.

``random``: seeded uniform noise, a map that knows nothing about the agent or the observation.
Every faithfulness metric must rank it last or at chance; where it does not, the metric is broken.

``guided-backprop`` (Springenberg et al. 2015, captum's ``GuidedBackprop``): the gradient with
negative gradients stopped at every ReLU. Adebayo et al. 2018 found that its maps barely change
when the top layers are randomised (it largely reconstructs the input's edges), so it is the
positive control of the randomization check: a check that passes it does not look at the top layers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method
from interpret_rl.option_checks import MAX_SEED, bounded
from interpret_rl.target_forward import prepare
from interpret_rl.targets import Target, actions_for, target_scores

torch = lazy_module("torch")


class RandomMap(Method):
    """Uniform noise in [0, 1), one independent value per element: ``(B, *obs_shape)``, the same
    for the same seed and shape, whatever the agent, target or observation."""

    name = "random"
    description = "control: seeded uniform noise, independent of the agent and the observation"
    kind = "attribution"

    @dataclass
    class Options:
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)
        """Seed of the noise."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        with torch.no_grad():  # the map ignores it, but a target the network cannot score fails here as elsewhere
            target_scores(agent, target, observations.detach().float(), actions_for(agent, target, observations))
        generator = torch.Generator().manual_seed(self.options.seed)
        noise = torch.rand(observations.shape, generator=generator, dtype=torch.float32)
        return self.explanation(target, noise.to(observations.device))


class GuidedBackprop(Method):
    """Captum's guided backpropagation of the target: ``(B, *obs_shape)``, signed.

    Captum overrides the backward pass of every ``nn.ReLU`` module it finds (the networks use ReLU
    modules, so it finds them; a tanh MLP has none and gets the plain gradient) and removes its
    hooks itself; attributes it leaves on modules are removed here, as for DeepLift.
    """

    name = "guided-backprop"
    description = "control: guided backpropagation (Springenberg et al. 2015), known to ignore the top layers"
    kind = "attribution"

    @dataclass
    class Options:
        """No options."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        from captum.attr import GuidedBackprop as CaptumGuidedBackprop

        from interpret_rl.target_module import TargetModule

        x, extra = prepare(agent, target, observations)
        modules = list(agent.network.modules())
        attributes_before = [set(vars(module)) for module in modules]
        try:
            with torch.enable_grad(), warnings.catch_warnings():
                # captum announces on every call that it sets (and will remove) hooks; the contract tests check it does
                warnings.filterwarnings("ignore", message="Setting backward hooks")
                attributions = CaptumGuidedBackprop(TargetModule(agent, target)).attribute(
                    x.requires_grad_(True), **extra)
        finally:
            for module, before in zip(modules, attributes_before):
                for name in set(vars(module)) - before:
                    delattr(module, name)
        return self.explanation(target, attributions)


@hookimpl
def register_methods(register):
    for method in (RandomMap, GuidedBackprop):
        register(method)
