"""An atlas of one layer: for each channel (or each NMF group of channels), what excites it and what it does.

Per unit (a channel, or a direction from ``layer_nmf``), over a pool of real states of the agent's own play:

* the optimised input(s) of ``optim`` (all units in one batch; ``diversity`` images each);
* the top 9 real states: crops of the unit's receptive field around the position where it fires
  most, the field marked in red; the newest frame in grey with the three older frames' bright pixels
  tinted blue, so a moving ball shows its trail;
* where in the frame it fires on average (its mean ReLU'd activation per position over the pool,
  over the pool's mean frame);
* what it feeds: gradient x activation of each action's logit and of the value with respect to the
  unit, summed over positions and averaged over the pool (a first-order share of each output).

``build_atlas`` computes, ``render_atlas_html`` makes one self-contained page (images inlined),
``write_atlas`` writes it atomically.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from interpret_rl.targets import TargetError, forward_to, layer_output_shape, resolve_layer

TOP = 9
CONTEXT = 6  # pixels of frame shown around a receptive field


@dataclass
class AtlasUnit:
    """One channel or NMF group. ``images``: ``(K, *obs_shape)`` optimised inputs; ``top``: ``(state,
    y, x, activation)`` of the real states exciting it most; ``heat``: ``(H, W)`` mean ReLU'd activation."""

    name: str
    images: np.ndarray
    activation: list[float]
    top: list[tuple[int, int, int, float]]
    heat: np.ndarray
    feeds: dict[str, float]
    firing: float
    """Share of (state, position) pairs where the unit is above 0."""


@dataclass
class Atlas:
    model: str
    layer: str
    units: list[AtlasUnit]
    states: np.ndarray
    """``(N, *obs_shape)`` the pool the units were measured on (crops are cut from it)."""
    field: tuple[int, int, int]
    """Receptive field: ``(size, jump, offset)``: unit (y, x) sees rows ``offset + y * jump`` to
    ``offset + y * jump + size`` (and the same in x)."""
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def receptive_field(agent, layer: str) -> tuple[int, int, int]:
    """``(size, jump, offset)`` of ``layer``'s units in input pixels, from the Conv2d / pooling modules
    before it (a plain chain, as in the Nature CNN: conv3 -> (36, 8, 0)); the whole frame when a
    module before it is of another spatial kind."""
    size, jump, offset = 1, 1, 0
    for name, module in agent.network.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            k, s, p = (v if isinstance(v, int) else v[0] for v in (module.kernel_size, module.stride, module.padding))
            size, offset, jump = size + (k - 1) * jump, offset - p * jump, jump * s
        if name == layer:
            return size, jump, offset
    return max(agent.observation_shape[-2:]), 1, 0


def _unit_maps(agent, layer: str, states: torch.Tensor, directions: torch.Tensor | None, batch: int = 200):
    """Each unit's map over the pool, ``(N, U, H, W)``, and the gradient x activation of every output
    (actions, then value) with respect to it, summed over positions and averaged: ``(U, A + 1)``."""
    maps, feeds = [], []
    for start in range(0, len(states), batch):
        chunk = states[start:start + batch].to(agent.device)
        outputs, logits, value = forward_to(agent, chunk, [layer], heads=True)
        act = outputs[layer]
        heads = [logits[:, a] for a in range(logits.shape[1])] + [value]
        grads = [torch.autograd.grad(h.sum(), act, retain_graph=True)[0] for h in heads]
        with torch.no_grad():
            if directions is None:
                unit_act, unit_grads = act, grads
            else:  # activation and gradient along each direction
                unit_act = torch.einsum("nchw,uc->nuhw", act, directions)
                unit_grads = [torch.einsum("nchw,uc->nuhw", g, directions) for g in grads]
            maps.append(unit_act.detach().cpu())
            feeds.append(torch.stack([(g * unit_act).sum((2, 3)).sum(0) for g in unit_grads], 1).cpu())
    return torch.cat(maps), torch.stack(feeds).sum(0) / len(states)


def _top_states(unit_map: torch.Tensor, count: int) -> list[tuple[int, int, int, float]]:
    """The ``count`` states where the unit's map ``(N, H, W)`` peaks highest, each once, with the peak."""
    per_state = unit_map.flatten(1).max(1)
    states = per_state.values.topk(min(count, len(unit_map))).indices.tolist()
    width = unit_map.shape[-1]
    return [(s, int(per_state.indices[s]) // width, int(per_state.indices[s]) % width, float(per_state.values[s]))
            for s in states]


def build_atlas(agent, layer: str, nmf: int | None = None, states: torch.Tensor | None = None,
                pool_size: int = 1000, steps: int = 256, diversity: int = 1, prior: str = "auto",
                progress: Callable[[str], None] | None = None) -> Atlas:
    """Measure every unit of ``layer`` (``nmf``: K NMF groups instead of the channels).

    :param states: ``(N, *obs_shape)`` real states; default: the agent's pool of ``pool_size``.
    :param steps: optimisation steps of ``optim`` (one batch for all units).
    :raises TargetError: the layer does not exist or has no spatial positions.
    """
    from interpret_rl.layer_nmf import fit_layer_nmf, real_states
    from interpret_rl.methods import build_method
    from interpret_rl.targets import parse_target

    say = progress or (lambda _: None)
    layer = resolve_layer(agent.network, layer)
    shape = layer_output_shape(agent, layer)
    if len(shape) != 3:
        spatial = [n for n, _ in agent.network.named_modules() if n and _is_spatial(agent, n)]
        raise TargetError(f"the atlas needs a layer with positions; {layer} outputs {list(shape)}; "
                          f"layers with positions: {', '.join(spatial) or 'none'}")
    if nmf is not None and not 1 <= nmf <= shape[0]:
        raise TargetError(f"--nmf {nmf} out of range for {layer} (1..{shape[0]})")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    if states is None:
        say(f"collecting {pool_size} real states (cached after the first time)")
        states = real_states(agent, pool_size)
    states = states.float()
    seconds["real states"] = time.perf_counter() - clock
    was_training = agent.network.training
    agent.network.eval()
    try:
        clock = time.perf_counter()
        directions, specs = None, [f"{layer}:{c}" for c in range(shape[0])]
        if nmf is not None:
            say(f"NMF of {layer} into {nmf} groups over {len(states)} states")
            directions = fit_layer_nmf(agent, layer, nmf, states).directions.to(agent.device)
            specs = [f"{layer}:nmf{g}/{nmf}" for g in range(nmf)]
        say(f"measuring {len(specs)} units over {len(states)} states")
        maps, feeds = _unit_maps(agent, layer, states, directions)
        seconds["real-state measures"] = time.perf_counter() - clock
        clock = time.perf_counter()
        say(f"optimising {len(specs)} x {diversity} images, {steps} steps, one batch")
        method = build_method("optim", {"steps": steps, "diversity": diversity, "prior": prior, "pool": 0,
                                        "examples": 1})
        explanations = method.explain_many(agent, [parse_target(s, agent) for s in specs], states)
        seconds["optimised images"] = time.perf_counter() - clock
    finally:
        agent.network.train(was_training)
    names = [*agent.action_meanings, "value"]
    units = []
    for u, (spec, explanation) in enumerate(zip(specs, explanations)):
        unit_map = maps[:, u]
        units.append(AtlasUnit(
            name=spec.split(":", 1)[1], images=explanation.values.cpu().numpy(),
            activation=list(explanation.extras["activation"]), top=_top_states(unit_map, TOP),
            heat=unit_map.clamp_min(0).mean(0).numpy(), feeds=dict(zip(names, feeds[u].tolist())),
            firing=float((unit_map > 0).float().mean())))
    notes = [f"optim path: {explanations[0].extras.get('path', 'pixels')}"]
    return Atlas(model=agent.name or "agent", layer=layer, units=units, states=states.numpy(),
                 field=receptive_field(agent, layer), seconds=seconds, notes=notes)


def _is_spatial(agent, name: str) -> bool:
    try:
        return len(layer_output_shape(agent, name)) == 3
    except TargetError:
        return False


def write_atlas(atlas: Atlas, out_dir: str | os.PathLike) -> Path:
    """Write ``atlas.html`` (self-contained) into ``out_dir`` atomically; returns its path."""
    from interpret_rl.atlas_page import render_atlas_html
    from interpret_rl.atomic import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "atlas.html", render_atlas_html(atlas))
    return out / "atlas.html"
