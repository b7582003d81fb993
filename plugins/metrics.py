"""Built-in metrics: deletion and insertion curves (Petsiuk et al. 2018, RISE), run time. (The
model-randomization check and captum's infidelity and sensitivity are plugins of their own.)

Deletion / insertion
--------------------
Units are ordered by attribution, highest first (signed values, so the strongest evidence *for*
the target goes first; ``absolute`` orders by magnitude). For frame stacks ``(C, H, W)`` a unit is
a pixel position (y, x) with the attribution summed over the C stacked frames, and removing it
replaces that position in every frame: many methods (perturbation, Grad-CAM) give one map
repeated on every frame, and ordering such ties frame by frame would be arbitrary.
``per_frame=True`` orders and removes single (frame, y, x) elements instead. Vector observations
order features. Ties are broken in a seeded random order (``seed``), so a map that cannot tell
units apart (all zero, constant) scores at chance instead of wherever index order happens to land,
and the result stays deterministic.

With N units and K = min(steps, N) steps, point k (0..K) has the first n_k = floor(k N / K)
units replaced: *deletion* starts from the observation and replaces units by the baseline;
*insertion* starts from the baseline and puts the observation's units back. The baseline is the
observation blurred with a Gaussian of std ``blur`` pixels (``baseline="blur"``, each frame on
its own; vector observations have nothing to blur, so it is zero for them) or zero (``"zero"``).

Logits, values and activations are unbounded and signed, so the raw score s_k (``target_scores``,
the chosen action held at the one chosen on the real observation) is put on the scale of the gap
between the observation and the baseline, per observation:

    c_k = clamp((s_k - s_base) / (s_obs - s_base), 0, 1)    s_obs: on the observation, s_base: on the baseline

Where the gap is defined. The gap s_obs - s_base must be positive and not tiny: at least
``min_gap`` (default 0.1, and above 1e-6 in absolute terms) times how far the score moves anyway
when the units are replaced in random order (the range of the scores on the chance curves below,
the same for every method; max(|s_obs|, |s_base|) with ``chance_orders=0``). Where the baseline
scores the target as high as the observation or higher (common for the value on a blurred frame),
removing evidence cannot be told from adding it; where the gap is tiny next to those swings,
dividing by it blows the curve up (cartpole-a2c's saliency scored -17.7 that way, one observation
-99.8). Such observations are *undefined*: left out of the value and of its interval, listed in
``details["undefined"]`` with the reason. When no observation is defined the metric raises and says why.

Range. Each curve point is clamped into [0, 1] (a partial deletion can push the score beyond the
baseline or above the observation's own score: models are not monotone), so every area is in
[0, 1]; ``details["clamped_share"]`` says how many points were clamped and ``details["raw_areas"]``
keeps the unclamped areas, ``details["scores"]`` the raw s_k. Deletion: lower is better (the
score falls fast); insertion: higher is better. The value is the mean area over the defined
observations, with a 95 % bootstrap interval over them.

Chance. The same curve with the units in random order (``chance_orders`` seeded orders, averaged)
is the level a map that knows nothing reaches on these observations: ``details["chance"]`` (mean
and interval over the same defined observations) and ``details["chance_curve"]``. A map is only
informative where it beats chance; on a linear model chance is 0.5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from interpret_rl.blur import gaussian_blur
from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method
from interpret_rl.metrics import Metric, MetricResult, bootstrap_interval
from interpret_rl.option_checks import MAX_COPIES, MAX_SEED, bounded
from interpret_rl.targets import Target, actions_for, target_scores

torch = lazy_module("torch")


def curve_baseline(x: torch.Tensor, kind: str, blur: float) -> torch.Tensor:
    """``(B, *obs)`` float -> the baseline of the same shape: ``blur`` (frames; zero for vectors) or ``zero``."""
    if kind == "zero" or (kind == "blur" and x.dim() != 4):
        return torch.zeros_like(x)
    if kind == "blur":
        return gaussian_blur(x, blur)
    raise ValueError(f"baseline must be blur or zero, got {kind!r}")


def unit_importance(values: torch.Tensor, per_frame: bool, absolute: bool) -> torch.Tensor:
    """Attributions ``(B, *obs)`` -> importance per unit ``(B, N)``: frames ``(B, C, H, W)`` summed
    over C (N = H*W) unless ``per_frame`` (N = C*H*W); other shapes per element."""
    values = values.detach().float()
    values = values.abs() if absolute else values
    if values.dim() == 4 and not per_frame:
        return values.sum(1).flatten(1)
    return values.flatten(1)


def replaced_masks(importance: torch.Tensor, steps: int,
                   tie_break: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, N)`` importance -> masks ``(B, K+1, N)`` (True: replaced at point k, the n_k most
    important units) and the counts ``(K+1,)`` n_k = floor(k N / K), K = min(steps, N).
    ``tie_break`` ``(B, N)``: equal importances go in the order of these keys (else index order)."""
    n = importance.shape[1]
    k = max(1, min(steps, n))
    counts = torch.div(torch.arange(k + 1) * n, k, rounding_mode="floor").to(importance.device)
    shuffle = (tie_break.argsort(dim=1) if tie_break is not None
               else torch.arange(n, device=importance.device).expand_as(importance))
    order = shuffle.gather(1, importance.gather(1, shuffle).argsort(dim=1, descending=True, stable=True))
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=order.device).expand_as(order))  # rank[i, unit] = place in order
    return rank[:, None, :] < counts[None, :, None], counts


def curve_inputs(x: torch.Tensor, baseline: torch.Tensor, masks: torch.Tensor, per_frame: bool,
                 insertion: bool) -> torch.Tensor:
    """Observations ``(B, *obs)`` and masks ``(B, K+1, N)`` -> every curve point ``(B, K+1, *obs)``."""
    if x.dim() == 4 and not per_frame:
        masks = masks.view(*masks.shape[:2], 1, *x.shape[2:])  # one mask per pixel, shared by all frames
    else:
        masks = masks.view(*masks.shape[:2], *x.shape[1:])
    start, end = (baseline, x) if insertion else (x, baseline)
    return torch.where(masks, end[:, None], start[:, None])


class _Curve(Metric):
    """Shared deletion / insertion implementation; subclasses set ``insertion``."""

    insertion: bool

    @dataclass
    class Options:
        steps: int = bounded(20, at_least=1, at_most=MAX_COPIES)
        """Points after the start, each replacing 1/steps of the units (capped at the number of units)."""
        baseline: str = "blur"
        """What replaces a removed unit: blur (the blurred frame; zero for vectors) or zero."""
        blur: float = bounded(5.0, at_least=0)
        """Std in pixels of the Gaussian blur of the blur baseline."""
        per_frame: bool = False
        """Frames: order single (frame, y, x) elements instead of pixels summed over the stack."""
        absolute: bool = False
        """Order by |attribution| instead of the signed value."""
        min_gap: float = bounded(0.1, at_least=0)
        """An observation is undefined unless s_obs - s_base >= min_gap * the score's range on the
        random-order curves (max(|s_obs|, |s_base|) without them)."""
        chance_orders: int = bounded(3, at_least=0, at_most=MAX_COPIES)
        """Random unit orders averaged for the chance level (0: no chance level)."""
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)
        """Seed of the random orders."""
        batch: int = bounded(64, at_least=1, at_most=MAX_COPIES)
        """Perturbed observations per forward pass."""

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        opts = self.options
        if opts.steps < 1 or opts.batch < 1 or opts.chance_orders < 0 or opts.min_gap < 0:
            raise ValueError(f"steps and batch must be at least 1, chance_orders and min_gap at least 0; got "
                             f"steps={opts.steps} batch={opts.batch} chance_orders={opts.chance_orders} "
                             f"min_gap={opts.min_gap}")
        x = observations.detach().float()
        values = explanation.values.detach().to(x.device)
        if tuple(values.shape) != tuple(x.shape):
            raise ValueError(f"attribution of shape {tuple(values.shape)} for observations {tuple(x.shape)}")
        importance = unit_importance(values, opts.per_frame, opts.absolute)
        baseline = curve_baseline(x, opts.baseline, opts.blur)
        generator = torch.Generator().manual_seed(opts.seed)
        random_orders = [torch.rand(importance.shape, generator=generator).to(x.device)
                         for _ in range(opts.chance_orders)]
        tie_break = torch.rand(importance.shape, generator=generator).to(x.device)
        with torch.no_grad():
            actions = actions_for(agent, target, x)
            scores, counts = self._scores(agent, target, x, baseline, importance, actions, tie_break)
            chance = [self._scores(agent, target, x, baseline, order, actions)[0] for order in random_orders]
        return self._summarise(scores.double().cpu(), [c.double().cpu() for c in chance],
                               (counts.double() / counts[-1]).cpu())

    def _scores(self, agent, target: Target, x: torch.Tensor, baseline: torch.Tensor, importance: torch.Tensor,
                actions: torch.Tensor | None,
                tie_break: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw scores ``(B, K+1)`` of every curve point for units ordered by ``importance`` ``(B, N)``."""
        masks, counts = replaced_masks(importance, self.options.steps, tie_break)
        scores = torch.stack([self._curve_scores(agent, target, x[i], baseline[i], masks[i],
                                                 None if actions is None else actions[i])
                              for i in range(len(x))])
        return scores, counts

    def _curve_scores(self, agent, target: Target, obs: torch.Tensor, baseline: torch.Tensor, masks: torch.Tensor,
                      action: torch.Tensor | None) -> torch.Tensor:
        """One observation ``obs`` ``(*obs_shape)`` and its masks ``(K+1, N)`` -> the raw scores
        ``(K+1,)`` of its curve points, ``batch`` points per forward pass (memory stays bounded)."""
        points = curve_inputs(obs[None], baseline[None], masks[None], self.options.per_frame, self.insertion)[0]
        parts = points.split(self.options.batch)
        return torch.cat([target_scores(agent, target, part, None if action is None else action.expand(len(part)))
                          for part in parts])

    def _endpoints(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_obs, s_base) ``(B,)`` each: a deletion curve starts at the observation, insertion ends there."""
        return (scores[:, -1], scores[:, 0]) if self.insertion else (scores[:, 0], scores[:, -1])

    def _summarise(self, scores: torch.Tensor, chance: list[torch.Tensor], fractions: torch.Tensor) -> MetricResult:
        """Raw scores ``(B, K+1)`` (and those of the random orders) -> clamped curves, their areas,
        the mean area over the defined observations and the chance level."""
        opts = self.options
        s_obs, s_base = self._endpoints(scores)
        gap = s_obs - s_base
        if chance:  # how far the score moves when units go in random order: the same for every method
            every = torch.cat(chance, dim=1)  # never the method's own curve: then every method is judged alike
            swing, scale = (every.amax(1) - every.amin(1)).tolist(), "the score's range on random-order curves"
        else:
            swing, scale = torch.maximum(s_obs.abs(), s_base.abs()).tolist(), "the score"
        undefined = {}
        for i, (obs, base) in enumerate(zip(s_obs.tolist(), s_base.tolist())):
            if obs - base <= 0:
                undefined[i] = f"the baseline scores the target {base:.4g}, the observation {obs:.4g}: not lower"
            elif obs - base < max(1e-6, opts.min_gap * swing[i]):
                undefined[i] = (f"gap {obs - base:.3g} between observation ({obs:.4g}) and baseline ({base:.4g}) "
                                f"is under min_gap={opts.min_gap} of {scale} ({swing[i]:.3g})")
        defined = [i for i in range(len(scores)) if i not in undefined]
        if not defined:
            raise ValueError(f"undefined on every observation ({next(iter(undefined.values()))}); "
                             f"try baseline=zero or another target")
        raw = (scores[defined] - s_base[defined, None]) / gap[defined, None]
        curves = raw.clamp(0, 1)
        areas = torch.trapezoid(curves, fractions, dim=1)
        per_observation = [None] * len(scores)
        for i, area in zip(defined, areas.tolist()):
            per_observation[i] = area
        details = {}
        if chance:
            # the observation's own endpoints: a random order reaches the same two scores
            chance_curves = torch.stack([((c[defined] - s_base[defined, None]) / gap[defined, None]).clamp(0, 1)
                                         for c in chance]).mean(0)
            chance_areas = torch.trapezoid(chance_curves, fractions, dim=1).tolist()
            details["chance"] = {"value": sum(chance_areas) / len(chance_areas), "per_observation": chance_areas,
                                 "interval": bootstrap_interval(chance_areas), "orders": len(chance)}
            details["chance_curve"] = chance_curves.mean(0).tolist()
        units = "element (frame, y, x)" if opts.per_frame else "pixel (y, x), frames summed; feature for vectors"
        return self.result(areas.mean(), per_observation=per_observation, fractions=fractions.tolist(),
                            curve=curves.mean(0).tolist(), **details,
                            undefined={str(i): why for i, why in undefined.items()},
                            clamped_share=float((raw != curves).double().mean()),
                            raw_areas=torch.trapezoid(raw, fractions, dim=1).tolist(),
                            scores=scores.tolist(), baseline=opts.baseline, units=units,
                            range="[0, 1]: curve points clamped, see clamped_share")


class Deletion(_Curve):
    """Area under the curve of the target's normalised score as the most attributed units are removed."""

    name = "deletion"
    description = ("Petsiuk et al. 2018: area under the target's score as the top-attributed pixels "
                   "are blurred away (lower is better)")
    higher_is_better = False
    insertion = False


class Insertion(_Curve):
    """Area under the curve of the target's normalised score as the most attributed units are revealed."""

    name = "insertion"
    description = ("Petsiuk et al. 2018: area under the target's score as the top-attributed pixels "
                   "are revealed on a blurred frame (higher is better)")
    higher_is_better = True
    insertion = True


class Runtime(Metric):
    """Seconds per observation that the method took: the caller's measurement
    (``explanation.extras["seconds"]``, for all B observations) divided by B, or a timed re-run."""

    name = "runtime"
    description = "seconds per observation of the method's explain"
    higher_is_better = False
    applies_to = frozenset({"attribution", "synthesis"})

    @dataclass
    class Options:
        rerun: bool = False
        """Time a re-run even when the caller measured the explanation."""

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        seconds = explanation.extras.get("seconds")
        source = "measured by the caller"
        if seconds is None or self.options.rerun:
            start = time.perf_counter()
            method.explain(agent, target, observations)
            seconds, source = time.perf_counter() - start, "timed re-run"
        return self.result(float(seconds) / len(observations), seconds=float(seconds),
                            observations=len(observations), source=source)


@hookimpl
def register_metrics(register):
    for metric in (Deletion, Insertion, Runtime):
        register(metric)
