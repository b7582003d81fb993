"""What an explanation explains: an action's logit, the value, or a unit inside the network.

One syntax for every method (``parse_target``):

* ``action``                      the policy's most likely action, per observation
* ``action:2`` / ``action:FIRE``  one action's logit
* ``value``                       the critic's value
* ``<layer>:<channel>``           a channel's mean over space (conv) or a unit (linear)
* ``<layer>:<channel>:<y>:<x>``   one position of a conv channel

``<layer>`` is torch's dotted module name (``trunk.conv3``) or its unique last part (``conv3``).
``target_scores`` turns a target into one differentiable scalar per observation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

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

    @property
    def label(self) -> str:
        """Human-readable name: ``action FIRE``, ``value``, ``trunk.conv3 channel 5``."""
        if self.kind == "chosen-action":
            return "chosen action"
        if self.kind == "action":
            return "action " + self.spec.split(":", 1)[1]
        if self.kind == "value":
            return "value"
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


def _parse_layer_target(spec: str, parts: list[str], agent) -> Target:
    if len(parts) not in (2, 4):
        raise TargetError(f"layer target {spec!r} must be <layer>:<channel> or <layer>:<channel>:<y>:<x>")
    layer = resolve_layer(agent.network, parts[0])
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
        raise TargetError(f"unknown target {spec!r}; use action, action:<action>, value, "
                          f"<layer>:<channel> or <layer>:<channel>:<y>:<x>")
    return _parse_layer_target(spec, parts, agent)


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


def _unit(target: Target, activation: torch.Tensor) -> torch.Tensor:
    """Pick the target unit out of a layer's ``(B, C, ...)`` output -> ``(B,)``."""
    if not isinstance(activation, torch.Tensor):
        raise TargetError(f"layer {target.layer!r} does not output a single tensor")
    channel = activation[:, target.channel]
    if target.y is not None:
        return channel[:, target.y, target.x]
    return channel.flatten(1).mean(1) if channel.dim() > 1 else channel


def target_scores(agent, target: Target, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
    """One differentiable scalar per observation: ``(B, *obs_shape)`` -> ``(B,)``.

    :param actions: ``(B,)`` action per observation for a ``chosen-action`` target. Methods that
        evaluate perturbed or interpolated inputs pass the actions chosen on the *real* observations,
        so the explained action does not change under the perturbation. Default: chosen on ``obs``.
    """
    if target.kind == "layer":
        with probe(agent.network.get_submodule(target.layer)) as captured:
            agent.network(obs)
        return _unit(target, captured.output)
    logits, value = agent.network(obs)
    if target.kind == "value":
        return value
    if target.kind == "action":
        return logits[:, target.action]
    if actions is None:
        actions = logits.detach().argmax(-1)
    return logits.gather(1, actions.view(-1, 1).to(logits.device)).squeeze(1)


def paired_target_scores(agent, targets: Sequence[Target], obs: torch.Tensor,
                         actions: torch.Tensor | None = None) -> torch.Tensor:
    """Score of ``targets[i]`` on ``obs[i]`` for each i, in one forward pass: ``(S, *obs_shape)`` -> ``(S,)``.

    Used to optimise many targets at once (one batch row per target).
    """
    if len(targets) != len(obs):
        raise ValueError(f"{len(targets)} targets for {len(obs)} observations")
    layers = sorted({t.layer for t in targets if t.kind == "layer"})
    modules = [agent.network.get_submodule(name) for name in layers]
    with ExitStack() as stack:  # one probe per distinct layer, all removed on exit
        captured = {name: stack.enter_context(probe(module)) for name, module in zip(layers, modules)}
        logits, value = agent.network(obs)
    if actions is None:
        actions = logits.detach().argmax(-1)
    # Gather each kind of target with one indexing op (not one slice per row): with 64 channel
    # targets, per-row slices cost more than the network's own forward and backward.
    rows: list[list[int]] = []
    values: list[torch.Tensor] = []
    for name in layers:
        output = captured[name].output
        if not isinstance(output, torch.Tensor):
            raise TargetError(f"layer {name!r} does not output a single tensor")
        mine = [i for i, t in enumerate(targets) if t.kind == "layer" and t.layer == name]
        whole = [i for i in mine if targets[i].y is None]
        if whole:
            units = output[whole, [targets[i].channel for i in whole]]
            rows.append(whole)
            values.append(units.flatten(1).mean(1) if units.dim() > 1 else units)
        spots = [i for i in mine if targets[i].y is not None]
        if spots:
            rows.append(spots)
            values.append(output[spots, [targets[i].channel for i in spots], [targets[i].y for i in spots],
                                 [targets[i].x for i in spots]])
    value_rows = [i for i, t in enumerate(targets) if t.kind == "value"]
    if value_rows:
        rows.append(value_rows)
        values.append(value[value_rows])
    action_rows = [i for i, t in enumerate(targets) if t.kind in ("action", "chosen-action")]
    if action_rows:
        chosen = [targets[i].action if targets[i].kind == "action" else int(actions[i]) for i in action_rows]
        rows.append(action_rows)
        values.append(logits[action_rows, chosen])
    order = torch.tensor([i for group in rows for i in group], device=obs.device).argsort()
    return torch.cat(values)[order]

