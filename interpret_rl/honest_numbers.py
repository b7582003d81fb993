"""Honest numbers for a synthetic observation: is its activation one the agent ever meets, and is it
a state the game could show?

* Target against the real range: the target's maximum and 99th percentile over real states, the
  synthetic value as a multiple of that maximum, and an "out of distribution" flag when it is over
  ``OUT_OF_DISTRIBUTION`` (10) times the real maximum. Where the real maximum is not positive (the
  mean of a pre-ReLU channel) a multiple means nothing, so the flag then compares excesses over the
  real median instead; that ratio (``times_real_spread``: 1 = as far above the median as the best
  real state) is given for every target.
* Realism: the L2 distance to the nearest real state, divided by the typical distance between real
  states (the median over real states of the distance to their nearest other real state). A number
  near 1 means "as close to the pool as real states are to each other". To read it, the same ratio
  is given for held-out real states (from games outside the pool): a synthetic state is as real as
  real states when its ratio is within theirs (e.g. at most their 90th percentile).

Distances are computed after subtracting the mean real state (the unchanging background cancels,
which keeps float32 accurate) in chunks, so a 1,000-state pool of Atari stacks costs seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")

OUT_OF_DISTRIBUTION = 10.0


@dataclass(frozen=True)
class PreparedReference:
    """Reference rows centred and flattened once, with their squared norms: a pool measured against
    many synthetic batches (optim's candidates, an atlas's cells) pays for this only once."""

    centre: torch.Tensor
    rows: torch.Tensor
    squared_norms: torch.Tensor

    @classmethod
    def of(cls, reference: torch.Tensor, centre: torch.Tensor | None = None) -> PreparedReference:
        centre = reference.float().mean(0) if centre is None else centre
        rows = (reference.float() - centre).flatten(1)
        return cls(centre=centre, rows=rows, squared_norms=(rows ** 2).sum(1))


def nearest_distances(x: torch.Tensor, reference: torch.Tensor | PreparedReference,
                      centre: torch.Tensor | None = None, skip_same_index: bool = False,
                      chunk: int = 256) -> torch.Tensor:
    """L2 distance from each row of ``x`` ``(M, ...)`` to its nearest row of ``reference`` ``(N, ...)``.

    :param skip_same_index: ``x`` is ``reference``: row i's own copy does not count (leave-one-out).
    :returns: ``(M,)`` float64.
    """
    prepared = reference if isinstance(reference, PreparedReference) else PreparedReference.of(reference, centre)
    found = []
    for start in range(0, len(x), chunk):
        part = (x[start:start + chunk].float() - prepared.centre).flatten(1)
        squared = (part ** 2).sum(1, keepdim=True) + prepared.squared_norms - 2 * part @ prepared.rows.T
        if skip_same_index:
            rows = torch.arange(len(part))
            squared[rows, rows + start] = float("inf")
        found.append(squared.clamp_min(0).min(1).values.double().sqrt())
    return torch.cat(found)


def _quantile(values: torch.Tensor, q: float) -> float:
    return float(torch.quantile(values.double(), q))


@dataclass
class RealReference:
    """Real states to measure synthetic ones against.

    :ivar states: ``(N, *obs_shape)`` real states (the pool, or the observations given).
    :ivar source: where they came from, in words.
    :ivar typical_distance: median over ``states`` of the distance to the nearest other state
        (None with fewer than 2 states).
    :ivar held_out_ratios: ``(H,)`` realism ratios of real states outside ``states`` (None: none given).
    """

    states: torch.Tensor
    source: str
    typical_distance: float | None
    held_out_ratios: torch.Tensor | None = None
    _prepared: PreparedReference | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def build(cls, states: torch.Tensor, source: str, held_out: torch.Tensor | None = None) -> RealReference:
        states = states.detach().float().cpu()
        typical = None
        if len(states) >= 2:
            typical = float(nearest_distances(states, states, skip_same_index=True).median())
        reference = cls(states=states, source=source, typical_distance=typical)
        if held_out is not None and len(held_out) and typical:
            reference.held_out_ratios = reference.realism(held_out)
        return reference

    def realism(self, x: torch.Tensor) -> torch.Tensor:
        """``(M,)`` nearest-real distance of each row of ``x`` divided by ``typical_distance`` (NaN
        when there is no typical distance, or it is 0)."""
        if self._prepared is None:  # built on first use, then reused for every later batch
            self._prepared = PreparedReference.of(self.states)
        distances = nearest_distances(x.detach().cpu(), self._prepared)
        if not self.typical_distance:
            return torch.full_like(distances, float("nan"))
        return distances / self.typical_distance

    def held_out_summary(self) -> dict | None:
        """Median, 90th percentile, min and max of the held-out ratios, and how many there are."""
        ratios = self.held_out_ratios
        if ratios is None or not len(ratios):
            return None
        return {"count": len(ratios), "min": float(ratios.min()), "median": _quantile(ratios, 0.5),
                "p90": _quantile(ratios, 0.9), "max": float(ratios.max())}


def target_numbers(activations: list[float], real_scores: torch.Tensor) -> dict:
    """The target's real range and where each synthetic activation lies in it (see the module doc)."""
    scores = real_scores.detach().double().cpu()
    real_max, median = float(scores.max()), _quantile(scores, 0.5)
    times, flags = [], []
    spread = real_max - median
    above = [(value - median) / spread if spread > 0 else None for value in activations]
    for value in activations:
        if real_max > 0:
            times.append(value / real_max)
            flags.append(value > OUT_OF_DISTRIBUTION * real_max)
        else:
            times.append(None)
            flags.append(spread > 0 and value - median > OUT_OF_DISTRIBUTION * spread)
    return {"max_real_activation": real_max, "p99_real_activation": _quantile(scores, 0.99),
            "median_real_activation": median, "times_real_max": times, "times_real_spread": above,
            "out_of_distribution": flags}


def finite_or_none(values: torch.Tensor) -> list:
    return [float(v) if math.isfinite(float(v)) else None for v in values]


def scores_on_states(agent, targets, states: torch.Tensor, chunk: int = 250) -> torch.Tensor:
    """``(S, N)``: every target (no ``chosen-action``: fix the action first) on every state, one
    forward pass per chunk of states for all targets together."""
    from interpret_rl.targets import forward_to, layer_target_scores

    layers = sorted({t.layer for t in targets if t.kind == "layer"})
    columns = []
    with torch.no_grad():
        for start in range(0, len(states), chunk):
            x = states[start:start + chunk].to(agent.device)
            outputs, logits, value = forward_to(agent, x, layers, heads=True)
            rows = []
            for target in targets:
                if target.kind == "layer":
                    (_, scores), = layer_target_scores([target] * len(x), list(range(len(x))), outputs[target.layer])
                elif target.kind == "value":
                    scores = value
                elif target.kind == "action":
                    scores = logits[:, target.action]
                else:
                    raise ValueError(f"target {target.spec!r}: fix the chosen action before scoring states")
                rows.append(scores.float().cpu())
            columns.append(torch.stack(rows))
    return torch.cat(columns, dim=1)


def real_reference(agent, observations: torch.Tensor, pool_size: int) -> RealReference:
    """The real states synthetic ones are measured against: a cached pool of ``pool_size`` states of
    the agent's own play (seed 0) with ``pool_size // 5`` held-out states from other games (seed 1);
    or, with ``pool_size`` 0, the ``observations`` given (no held-out states). The pool's typical
    distance and the held-out ratios are cached beside the pool (``.realism.json``): they cost
    seconds of distance computations, and depend only on the two pools."""
    if pool_size <= 0:
        return RealReference.build(observations, f"the {len(observations)} observations given")
    from interpret_rl.pool import GAMES, pool_path, real_state_pool

    held_size = max(1, pool_size // 5)
    states = real_state_pool(agent, size=pool_size, seed=0)
    held_out = real_state_pool(agent, size=held_size, seed=1)
    source = (f"pool of {pool_size} real states ({GAMES} games of the agent's own play, seed 0); "
              f"held out: {len(held_out)} from {GAMES} other games")
    cache_name = pool_path(agent, pool_size, 0, 0.0).stem + f".held{held_size}.realism.json"
    cached = _read_realism(agent, cache_name)
    if cached is not None:
        return RealReference(states=states, source=source, typical_distance=cached["typical_distance"],
                             held_out_ratios=torch.tensor(cached["held_out_ratios"], dtype=torch.float64))
    reference = RealReference.build(states, source, held_out)
    _write_realism(agent, cache_name, reference)
    return reference


def _read_realism(agent, name: str) -> dict | None:
    import json

    from interpret_rl.artefacts import artefact_dirs

    for folder in artefact_dirs(agent):
        try:
            data = json.loads((folder / "pools" / name).read_text(encoding="utf-8"))
            if isinstance(data.get("typical_distance"), float) and isinstance(data.get("held_out_ratios"), list):
                return data
        except (OSError, ValueError, AttributeError):
            continue
    return None


def _write_realism(agent, name: str, reference: RealReference) -> None:
    import json

    from interpret_rl.artefacts import artefact_dirs
    from interpret_rl.atomic import atomic_write_text

    if reference.typical_distance is None or reference.held_out_ratios is None:
        return
    data = {"typical_distance": reference.typical_distance, "held_out_ratios": reference.held_out_ratios.tolist()}
    atomic_write_text(artefact_dirs(agent)[0] / "pools" / name, json.dumps(data))


def describe_synthesis(synthetic: torch.Tensor, activations: list[float], real_scores: torch.Tensor,
                       reference: RealReference, prior=None) -> dict:
    """The honest numbers of ``synthetic`` ``(K, *obs_shape)`` images of one target (JSON-able):
    target range (``target_numbers``), ``nearest_real_ratio`` per image beside the held-out
    ratios, and with a ``prior`` its reconstruction error per image (``reconstruction_rmse``)."""
    numbers = target_numbers(activations, real_scores)
    numbers["nearest_real_ratio"] = finite_or_none(reference.realism(synthetic))
    numbers["typical_real_distance"] = reference.typical_distance
    numbers["held_out_nearest_real_ratio"] = reference.held_out_summary()
    numbers["real_states"] = reference.source
    if prior is not None:
        with torch.no_grad():
            device = next(prior.parameters()).device  # optim may have moved it to the agent's device
            errors = prior.reconstruction_rmse(synthetic.float().to(device)).cpu()
            numbers["reconstruction_rmse"] = finite_or_none(errors)
        numbers["prior_held_out_rmse"] = prior.meta.get("training", {}).get("reconstruction_rmse_held_out")
    return numbers
