"""What an explanation explains: an action's logit, the value, or a unit inside the network.

One syntax for every method (``parse_target``):

* ``action``                      the policy's most likely action, per observation
* ``action:2`` / ``action:FIRE``  one action's logit; for continuous (Box) actions the Gaussian
                                  policy's mean of action dimension 2 (``action`` is ``action:0``
                                  when there is one dimension)
* ``value``                       the critic's value
* ``<layer>``                     the whole layer, DeepDream-style: the mean of its squared activation
                                  over channels and positions (Mordvintsev et al. 2015 maximise its L2 norm)
* ``<layer>:<channel>``           a channel's mean over space (conv) or a unit (linear)
* ``<layer>:<channel>:<y>:<x>``   one position of a conv channel
* ``<layer>:nmf<i>`` / ``<layer>:nmf<i>/<k>``   a direction in the layer: component ``i`` of a
                                  ``k``-component NMF (default 8) of the layer's activations over the
                                  agent's real states (``interpret_rl.layer_nmf``); its score is the
                                  activation vector's dot product with the unit-norm component, averaged
                                  over space (Olah et al. 2018's neuron groups)

``<layer>`` is torch's dotted module name (``trunk.conv3``) or its unique last part (``conv3``).
``target_scores`` turns a target into one differentiable scalar per observation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")
nn = lazy_module("torch.nn")

KINDS = ("chosen-action", "action", "value", "layer")


class TargetError(ValueError):
    """A target that does not exist in this agent; the message lists what does."""


@dataclass(frozen=True)
class Target:
    """A parsed target. ``spec`` is the normalised text (``action:FIRE``, ``trunk.conv3:5``)."""

    spec: str
    kind: str
    action: int | None = None
    layer: str | None = None
    channel: int | None = None
    y: int | None = None
    x: int | None = None
    direction: tuple[float, ...] | None = None
    """``nmf`` targets: the unit-norm component over the layer's channels."""

    @property
    def label(self) -> str:
        """Human-readable name: ``action FIRE``, ``value``, ``trunk.conv3 channel 5``."""
        if self.kind == "chosen-action":
            return "chosen action"
        if self.kind == "action":
            return "action " + self.spec.split(":", 1)[1]
        if self.kind == "value":
            return "value"
        if self.direction is not None:
            return f"{self.layer} direction {self.spec.rsplit(':', 1)[1]}"
        if self.channel is None:
            return f"{self.layer} (whole layer)"
        where = f" at y={self.y} x={self.x}" if self.y is not None else ""
        return f"{self.layer} channel {self.channel}{where}"


class Probe:
    """Holds the output of the probed module from the last forward pass (``None`` before)."""

    output: torch.Tensor | None = None


@contextmanager
def probe(module: nn.Module) -> Iterator[Probe]:
    """Capture ``module``'s output during forward passes; the torch hook is removed on exit, also on error."""
    captured = Probe()

    def _capture(_module, _inputs, output):
        captured.output = output

    handle = module.register_forward_hook(_capture)
    try:
        yield captured
    finally:
        handle.remove()


def _layer_names(network: nn.Module) -> list[str]:
    return [name for name, _ in network.named_modules() if name]


def resolve_layer(network: nn.Module, name: str) -> str:
    """A dotted module name, or a unique last component of one, -> the full dotted name."""
    names = _layer_names(network)
    if name in names:
        return name
    matches = [full for full in names if full.rsplit(".", 1)[-1] == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise TargetError(f"layer {name!r} is ambiguous: {', '.join(matches)}")
    raise TargetError(f"unknown layer {name!r}; layers: {', '.join(names)}")


def layer_output_shape(agent, layer: str) -> tuple[int, ...]:
    """Output shape (without batch) of ``layer``, found with one forward pass on a blank observation."""
    module = agent.network.get_submodule(layer)
    blank = torch.zeros((1, *agent.observation_shape), device=agent.device)
    with torch.no_grad(), probe(module) as captured:
        agent.network(blank)
    if not isinstance(captured.output, torch.Tensor):
        raise TargetError(f"layer {layer!r} does not output a single tensor")
    return tuple(captured.output.shape[1:])


def _index(text: str, what: str, spec: str) -> int:
    if not text.strip().lstrip("-").isdigit():
        raise TargetError(f"{what} must be an integer in target {spec!r}, got {text!r}")
    return int(text)


def _parse_direction(spec: str, layer: str, text: str, agent) -> Target:
    """``nmf3`` or ``nmf3/16`` -> the NMF direction target (the NMF is fitted once and cached)."""
    from interpret_rl.layer_nmf import DEFAULT_COMPONENTS, layer_nmf

    index_text, _, k_text = text[3:].partition("/")
    index = _index(index_text, "NMF component", spec)
    components = _index(k_text, "NMF component count", spec) if k_text else DEFAULT_COMPONENTS
    channels = layer_output_shape(agent, layer)[0]
    if not 1 <= components <= channels:
        raise TargetError(f"NMF component count {components} out of range for {layer} (1..{channels})")
    if not 0 <= index < components:
        raise TargetError(f"NMF component {index} out of range for {layer} with {components} components "
                          f"(0..{components - 1})")
    direction = layer_nmf(agent, layer, components).directions[index]
    normalised = f"{layer}:nmf{index}" + (f"/{components}" if k_text else "")
    return Target(spec=normalised, kind="layer", layer=layer, direction=tuple(float(v) for v in direction))


def _parse_layer_target(spec: str, parts: list[str], agent) -> Target:
    if len(parts) not in (1, 2, 4):
        raise TargetError(f"layer target {spec!r} must be <layer>, <layer>:<channel>, <layer>:nmf<i> "
                          f"or <layer>:<channel>:<y>:<x>")
    layer = resolve_layer(agent.network, parts[0])
    if len(parts) == 1:
        layer_output_shape(agent, layer)  # a layer that outputs one tensor
        return Target(spec=layer, kind="layer", layer=layer)
    if len(parts) == 2 and parts[1].lower().startswith("nmf"):
        return _parse_direction(spec, layer, parts[1].lower(), agent)
    channel = _index(parts[1], "channel", spec)
    shape = layer_output_shape(agent, layer)
    if not 0 <= channel < shape[0]:
        raise TargetError(f"channel {channel} out of range for {layer} (0..{shape[0] - 1})")
    if len(parts) == 2:
        return Target(spec=f"{layer}:{channel}", kind="layer", layer=layer, channel=channel)
    if len(shape) != 3:
        raise TargetError(f"{layer} has no spatial positions (output shape {list(shape)}); use {layer}:{channel}")
    y, x = _index(parts[2], "y", spec), _index(parts[3], "x", spec)
    if not (0 <= y < shape[1] and 0 <= x < shape[2]):
        raise TargetError(f"position y={y} x={x} out of range for {layer} "
                          f"(y 0..{shape[1] - 1}, x 0..{shape[2] - 1})")
    return Target(spec=f"{layer}:{channel}:{y}:{x}", kind="layer", layer=layer, channel=channel, y=y, x=x)


def parse_target(spec: str, agent) -> Target:
    """Parse a target spec (see the module docstring) against ``agent``; ``TargetError`` if it does not exist."""
    text = spec.strip()
    parts = [p.strip() for p in text.split(":")]
    if text == "action":
        if getattr(agent, "is_continuous", False):
            return _continuous_chosen_action(agent)
        return Target(spec="action", kind="chosen-action")
    if text == "value":
        return Target(spec="value", kind="value")
    if parts[0] == "action":
        if len(parts) != 2:
            raise TargetError(f"action target {spec!r} must be action or action:<index or name>")
        try:
            index = agent.action_index(parts[1])
        except ValueError as err:
            raise TargetError(str(err)) from None
        return Target(spec=f"action:{agent.action_meanings[index]}", kind="action", action=index)
    if len(parts) == 1:
        try:
            resolve_layer(agent.network, text)
        except TargetError as err:
            raise TargetError(f"unknown target {spec!r}; use action, action:<action>, value, <layer>, "
                              f"<layer>:<channel>, <layer>:nmf<i> or <layer>:<channel>:<y>:<x> "
                              f"({str(err).split('; ', 1)[-1]})") from None
    return _parse_layer_target(spec, parts, agent)


def _continuous_chosen_action(agent) -> Target:
    """A Gaussian policy's most likely action is its mean: with one action dimension, ``action`` is
    ``action:0``; with several it is no single number, so one must be named."""
    if agent.n_actions == 1:
        return Target(spec=f"action:{agent.action_meanings[0]}", kind="action", action=0)
    raise TargetError(f"this agent's actions are continuous with {agent.n_actions} dimensions, so 'action' is "
                      f"not one number; name a dimension: action:0..action:{agent.n_actions - 1} (its mean)")


def default_targets(agent) -> list[Target]:
    """Every action's logit, then the value."""
    return [parse_target(f"action:{i}", agent) for i in range(agent.n_actions)] + [parse_target("value", agent)]


def chosen_actions(agent, obs: torch.Tensor) -> torch.Tensor:
    """The policy's most likely action per observation: ``(B, *obs_shape)`` -> ``(B,)`` long."""
    with torch.no_grad():
        logits, _ = agent.network(obs)
    return logits.argmax(-1)


def actions_for(agent, target: Target, obs: torch.Tensor) -> torch.Tensor | None:
    """The actions to hold fixed while explaining ``target`` on ``obs``: ``(B,)`` for a
    ``chosen-action`` target, else ``None`` (pass it as ``target_scores(..., actions=...)``)."""
    return chosen_actions(agent, obs) if target.kind == "chosen-action" else None


class _EnoughLayers(Exception):
    """Raised by a probe once every layer a call needs has run, to skip the rest of the network."""


@contextmanager
def _probes(network: nn.Module, layers: Sequence[str], stop: bool) -> Iterator[dict[str, Probe]]:
    """One probe per layer; with ``stop``, the forward pass ends (``_EnoughLayers``) as soon as all
    of them have an output, so a target inside the trunk does not pay for the layers after it."""
    captured = {name: Probe() for name in layers}
    missing = set(layers)

    def capture(name: str):
        def _capture(_module, _inputs, output):
            captured[name].output = output
            missing.discard(name)
            if stop and not missing:
                raise _EnoughLayers

        return _capture

    with ExitStack() as stack:  # every torch hook removed on exit, also on error
        for name in layers:
            handle = network.get_submodule(name).register_forward_hook(capture(name))
            stack.callback(handle.remove)
        yield captured


def forward_to(agent, obs: torch.Tensor, layers: Sequence[str], heads: bool = True):
    """Run the network on ``obs`` and capture the output of each of ``layers``.

    :param heads: also compute ``(logits, value)``; when False the forward pass stops right after
        the last of ``layers`` has run (any architecture: the stop is an exception from the probe).
    :returns: ``(outputs by layer name, logits or None, value or None)``.
    """
    layers = sorted(set(layers))
    logits = value = None
    with _probes(agent.network, layers, stop=not heads and bool(layers)) as captured:
        try:
            logits, value = agent.network(obs)
        except _EnoughLayers:
            pass
    outputs = {}
    for name in layers:
        if not isinstance(captured[name].output, torch.Tensor):
            raise TargetError(f"layer {name!r} does not output a single tensor")
        outputs[name] = captured[name].output
    return outputs, logits, value


def layer_target_scores(targets: Sequence[Target], rows: list[int],
                        output: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
    """Scores of layer targets ``targets[i]`` on ``output[i]`` for ``i`` in ``rows``, one indexing op
    per kind (a per-row slice costs more than the network itself with 64 targets)."""
    groups: list[tuple[list[int], torch.Tensor]] = []
    whole = [i for i in rows if targets[i].channel is None and targets[i].direction is None]
    if whole:
        groups.append((whole, output[whole].pow(2).flatten(1).mean(1)))
    directions = [i for i in rows if targets[i].direction is not None]
    if directions:
        weights = output.new_tensor([targets[i].direction for i in directions])  # (R, C)
        weights = weights.view(*weights.shape, *([1] * (output.dim() - 2)))
        projected = (output[directions] * weights).sum(1)
        groups.append((directions, projected.flatten(1).mean(1) if projected.dim() > 1 else projected))
    channels = [i for i in rows if targets[i].channel is not None and targets[i].y is None]
    if channels:
        units = output[channels, [targets[i].channel for i in channels]]
        groups.append((channels, units.flatten(1).mean(1) if units.dim() > 1 else units))
    spots = [i for i in rows if targets[i].y is not None]
    if spots:
        groups.append((spots, output[spots, [targets[i].channel for i in spots], [targets[i].y for i in spots],
                                     [targets[i].x for i in spots]]))
    return groups


def target_scores(agent, target: Target, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
    """One differentiable scalar per observation: ``(B, *obs_shape)`` -> ``(B,)``.

    :param actions: ``(B,)`` action per observation for a ``chosen-action`` target. Methods that
        evaluate perturbed or interpolated inputs pass the actions chosen on the *real* observations,
        so the explained action does not change under the perturbation. Default: chosen on ``obs``.
    """
    return paired_target_scores(agent, [target] * len(obs), obs, actions)


def paired_target_scores(agent, targets: Sequence[Target], obs: torch.Tensor,
                         actions: torch.Tensor | None = None) -> torch.Tensor:
    """Score of ``targets[i]`` on ``obs[i]`` for each i, in one forward pass: ``(S, *obs_shape)`` -> ``(S,)``.

    Used to optimise many targets at once (one batch row per target). When every target is inside
    the network, the forward pass stops after the deepest of their layers.
    """
    return paired_scores_and_layers(agent, targets, obs, actions)[0]


def paired_scores_and_layers(agent, targets: Sequence[Target], obs: torch.Tensor,
                             actions: torch.Tensor | None = None, layers: Sequence[str] = ()):
    """``paired_target_scores`` plus the outputs of ``layers`` on ``obs`` from the same forward pass
    (``{name: (S, ...)}``; optim's diversity term reads them)."""
    if len(targets) != len(obs):
        raise ValueError(f"{len(targets)} targets for {len(obs)} observations")
    target_layers = sorted({t.layer for t in targets if t.kind == "layer"})
    heads = any(t.kind != "layer" for t in targets)
    outputs, logits, value = forward_to(agent, obs, [*target_layers, *layers], heads=heads)
    groups: list[tuple[list[int], torch.Tensor]] = []
    for name in target_layers:
        groups += layer_target_scores(targets, [i for i, t in enumerate(targets) if t.layer == name], outputs[name])
    value_rows = [i for i, t in enumerate(targets) if t.kind == "value"]
    if value_rows:
        groups.append((value_rows, value[value_rows]))
    action_rows = [i for i, t in enumerate(targets) if t.kind in ("action", "chosen-action")]
    if action_rows:
        if actions is None:
            actions = logits.detach().argmax(-1)
        fixed = torch.tensor([targets[i].action if targets[i].kind == "action" else -1 for i in action_rows])
        chosen = torch.where(fixed >= 0, fixed, actions.detach().cpu().long()[action_rows])
        groups.append((action_rows, logits[action_rows, chosen.to(logits.device)]))
    order = torch.tensor([i for rows, _ in groups for i in rows], device=obs.device).argsort()
    return torch.cat([scores for _, scores in groups])[order], {name: outputs[name] for name in layers}
