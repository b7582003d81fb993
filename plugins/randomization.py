"""The cascading model-parameter randomization check of Adebayo et al. 2018, "Sanity Checks for
Saliency Maps".

An explanation that stays the same when the network's weights are replaced by random ones cannot
be telling us what the network learned. The check deep-copies the network (the agent's own is
never touched) and re-initialises its parametrised layers from the top down, cumulatively: first
the heads (``policy`` and ``value`` together: they are parallel outputs, and randomising only the
head the target does not read would change nothing), then every other module that owns
parameters in reverse registration order (Nature CNN: ``trunk.fc``, ``trunk.conv3``,
``trunk.conv2``, ``trunk.conv1``). A layer is re-initialised with its own ``reset_parameters``
(torch's default initialisation), seeded; a module without one gets normal noise of its weights' std.

After each step the method explains the same target on the same observations with the randomised
copy (a ``chosen-action`` target keeps the action the trained network chose), and each map is
compared with the trained network's map by Spearman's rank correlation of |map| (flattened, per
observation, then averaged over observations). The reference map is recomputed under the same seed
as the randomised ones, so for methods that draw random numbers only the weights differ.

Which steps count. A layer target (``conv2:3``) does not depend on the layers above it, so the
steps that randomise only layers after the target's own layer cannot change its map; they are left
out of its cascade (listed in ``details["skipped_layers"]``). For an action or the value every step
counts.

The verdict reads the whole cascade (Adebayo et al.'s point is the top layers: a method whose map
survives randomising the heads and the fully connected layer is not explaining what the trained
network decides). Two numbers, both in ``details`` and both per observation:

* ``top``: the correlation after the first two steps, the heads and the layer below them
  (Nature CNN: ``policy+value`` then ``trunk.fc``), the last step when the cascade is shorter;
* ``area``: the area under the cascade curve, steps spaced evenly on [0, 1], i.e. the mean
  correlation over the steps (1: the map never changed; near 0: it changed from the first step).

value = ``area`` (lower is better; the report ranks by it), with a 95 % bootstrap interval over
observations. ``passed`` when *both* ``top`` and ``area`` are below ``threshold`` (default 0.5), and
the report prints both next to the verdict. The threshold is a judgement call (Adebayo et al.
judged by eye): a method that ignores the weights stays at 1, while maps that partly follow the
input's structure (gradient x input, SmoothGrad) sit near 0.5 even on random weights, which is the
paper's own finding.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method, seeded_rng
from interpret_rl.metrics import Metric, MetricResult, bootstrap_interval, explain_holding_actions
from interpret_rl.similarity import rank_correlation
from interpret_rl.targets import Target, actions_for

torch = lazy_module("torch")
nn = lazy_module("torch.nn")

HEADS = ("policy", "value")


def cascade(network: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """The randomisation steps, top first: (label, modules to re-initialise at this step)."""
    owners = [(name, m) for name, m in network.named_modules() if next(m.parameters(recurse=False), None) is not None]
    heads = [(name, m) for name, m in owners if name in HEADS]
    steps = [("+".join(name for name, _ in heads), [m for _, m in heads])] if heads else []
    return steps + [(name, [m]) for name, m in reversed(owners) if name not in HEADS]


def affects_target(network: nn.Module, label: str, target: Target) -> bool:
    """Whether randomising the step ``label`` can change ``target``: always for actions and the
    value; for a layer target only the layer itself and the layers registered before it."""
    if target.kind != "layer":
        return True
    names = [name for name, _ in network.named_modules() if name]
    last = max(i for i, name in enumerate(names) if name == target.layer or name.startswith(target.layer + "."))
    return all(name in names[:last + 1] for name in label.split("+"))


TOP_STEPS = 2  # the heads and the layer below them


def cascade_summary(correlations: list[float]) -> tuple[float, float]:
    """(top, area) of one cascade curve: the correlation after ``TOP_STEPS`` steps (or the last),
    and the area under the curve with the steps spaced evenly on [0, 1] (the mean correlation)."""
    return correlations[min(TOP_STEPS, len(correlations)) - 1], sum(correlations) / len(correlations)


def reinitialise(module: nn.Module) -> None:
    """Fresh random weights for the parameters ``module`` owns (its default initialisation)."""
    if callable(getattr(module, "reset_parameters", None)):
        module.reset_parameters()
        return
    with torch.no_grad():
        for parameter in module.parameters(recurse=False):
            std = float(parameter.std()) if parameter.numel() > 1 else 0.0
            parameter.normal_(0.0, std if std > 0 else 0.01)


class Randomization(Metric):
    """Rank correlation between the map on the trained network and on cascading randomised copies."""

    name = "randomization"
    description = ("Adebayo et al. 2018 sanity check: rank correlation of |map| with the map on "
                   "cascading randomised weights, area under the cascade curve (lower is better; fails "
                   "when the map survives randomising the top layers or the area stays high)")
    higher_is_better = False

    @dataclass
    class Options:
        threshold: float = 0.5
        """The check passes when both the top-layers correlation and the cascade area are below this."""
        seed: int = 0
        """Seeds the re-initialisation and every re-run of the method."""

    def _maps(self, method: Method, agent, target: Target, x: torch.Tensor, actions) -> torch.Tensor:
        with seeded_rng(self.options.seed, x.device):
            return explain_holding_actions(method, agent, target, x, actions).abs()

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        x = observations.detach()
        with torch.no_grad():
            actions = actions_for(agent, target, x)
        reference = self._maps(method, agent, target, x, actions)
        constant = [i for i, m in enumerate(reference) if bool((m == m.flatten()[0]).all())]
        if constant:
            raise ValueError(f"the map of observation {constant[0]} is constant; rank correlation is undefined")
        network = copy.deepcopy(agent.network)  # the agent's own weights are never touched
        steps = cascade(network)
        if not steps:
            raise ValueError("the network has no parameters to randomise")
        randomised = dataclasses.replace(agent, network=network)
        layers, skipped, correlations, per_step = [], [], [], []
        # One seeded stream for all re-initialisations; ``_maps`` forks and restores the RNG, so
        # whatever the method draws does not shift the weights of the next step.
        with seeded_rng(self.options.seed, x.device):
            for label, modules in steps:
                for module in modules:
                    reinitialise(module)
                if not affects_target(network, label, target):
                    skipped.append(label)
                    continue
                maps = self._maps(method, randomised, target, x, actions)
                # a map that became constant has no rank relation left to the original: count it as 0
                rhos = [0.0 if math.isnan(r) else r for r in map(rank_correlation, reference, maps)]
                layers.append(label)
                per_step.append(rhos)
                correlations.append(sum(rhos) / len(rhos))
        per_observation = [cascade_summary(list(curve)) for curve in zip(*per_step)]
        top, area = cascade_summary(correlations)
        threshold = self.options.threshold
        top_layers = " and ".join(layers[:TOP_STEPS])
        return self.result(area, per_observation=[a for _, a in per_observation], area=area, top=top,
                            top_per_observation=[t for t, _ in per_observation],
                            top_interval=bootstrap_interval([t for t, _ in per_observation]),
                            top_layers=layers[:TOP_STEPS], layers=layers, skipped_layers=skipped,
                            correlations=correlations, correlations_per_observation=per_step,
                            threshold=threshold, passed=bool(top < threshold and area < threshold),
                            verdict={"statistics": {"area": area, "top": top}, "below": threshold},
                            rule=f"passed when both the correlation after randomising {top_layers} "
                                 f"(top) and the area under the cascade curve are below {threshold}")


@hookimpl
def register_metrics(register):
    register(Randomization)
