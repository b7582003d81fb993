"""Directions in a layer: a non-negative matrix factorisation of its activations over real states.

Olah et al. 2018 ("The Building Blocks of Interpretability") group a layer's channels by factorising
its activations, one row per (state, position), into K non-negative components: each component is a
direction in channel space that real states actually use, often easier to read than a single channel.
NMF needs non-negative data, so a layer's output goes through a ReLU first (a no-op after a ReLU
module; for ``conv3``, whose ReLU is a separate module, it keeps what ``relu3`` passes on).

Fitted once per (agent, layer, K) on the agent's pool of real states and cached in memory; the
targets ``conv3:nmf<i>`` and the atlas read the cache. ``fit_layer_nmf`` fits on given observations
(tests, or a pool you already hold) and fills the same cache.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

DEFAULT_COMPONENTS = 8
POOL_SIZE = 1000
ITERATIONS = 300

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> {(layer, k): LayerNMF}


@dataclass(frozen=True)
class LayerNMF:
    """:ivar directions: ``(K, C)`` unit-norm components, largest share of the activations first.
    :ivar share: ``(K,)`` each component's share of the reconstructed activation mass (sums to 1).
    :ivar error: relative reconstruction error ``|A - WH| / |A|`` of the non-negative activations.
    :ivar states: how many real states the NMF was fitted on."""

    layer: str
    directions: torch.Tensor
    share: torch.Tensor
    error: float
    states: int


def layer_rows(agent, layer: str, observations: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """The layer's ReLU'd activations as rows ``(N * positions, C)`` (a linear layer: ``(N, C)``)."""
    from interpret_rl.targets import forward_to

    rows = []
    with torch.no_grad():
        for start in range(0, len(observations), batch):
            chunk = observations[start:start + batch].to(agent.device)
            output = forward_to(agent, chunk, [layer], heads=False)[0][layer].float().relu()
            if output.dim() > 2:  # (N, C, H, W) -> one row per (state, position)
                output = output.transpose(1, -1).reshape(-1, output.shape[1])
            rows.append(output.cpu())
    return torch.cat(rows)


def nmf(data: torch.Tensor, k: int, iterations: int = ITERATIONS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``data (N, C) >= 0`` ~ ``W (N, k) @ H (k, C)``, both non-negative: Lee and Seung's
    multiplicative updates for the Frobenius loss, from a seeded random start (deterministic)."""
    generator = torch.Generator().manual_seed(seed)
    data = data.double()
    scale = (data.mean() / k).clamp_min(1e-12).sqrt()
    w = torch.rand((data.shape[0], k), generator=generator, dtype=torch.float64) * scale
    h = torch.rand((k, data.shape[1]), generator=generator, dtype=torch.float64) * scale
    eps = 1e-12
    for _ in range(iterations):
        h *= (w.T @ data) / (w.T @ w @ h + eps)
        w *= (data @ h.T) / (w @ (h @ h.T) + eps)
    return w, h


def fit_layer_nmf(agent, layer: str, k: int, observations: torch.Tensor, seed: int = 0) -> LayerNMF:
    """Fit a ``k``-component NMF of ``layer`` on ``observations`` ``(N, *obs_shape)`` and cache it."""
    data = layer_rows(agent, layer, observations)
    w, h = nmf(data, k, seed=seed)
    norms = h.norm(dim=1).clamp_min(1e-12)
    mass = (w * norms).sum(0)  # each component's activation mass in the unit-norm basis
    order = mass.argsort(descending=True)
    error = float((data.double() - w @ h).norm() / data.double().norm().clamp_min(1e-12))
    result = LayerNMF(layer=layer, directions=(h / norms[:, None])[order].float(),
                      share=(mass / mass.sum().clamp_min(1e-12))[order].float(), error=error, states=len(observations))
    _CACHE.setdefault(agent.network, {})[(layer, k)] = result
    return result


def real_states(agent, size: int = POOL_SIZE) -> torch.Tensor:
    """The agent's pool of real states (``interpret_rl.pool`` when present, else played here)."""
    try:
        from interpret_rl.pool import real_state_pool
    except ImportError:  # until the cached pool exists
        from interpret_rl.observations import collect_observations

        return collect_observations(agent, size, seed=0)
    return real_state_pool(agent, size=size, seed=0)


def layer_nmf(agent, layer: str, k: int = DEFAULT_COMPONENTS) -> LayerNMF:
    """The cached NMF of ``layer`` with ``k`` components; fitted on the real-state pool on first use."""
    cached = _CACHE.get(agent.network, {}).get((layer, k))
    return cached if cached is not None else fit_layer_nmf(agent, layer, k, real_states(agent))
