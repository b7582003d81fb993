"""Built-in metrics: deletion and insertion curves (Petsiuk et al. 2018, RISE), run time; and, from
sibling modules, the model-randomization sanity check and captum's infidelity and sensitivity.

Deletion / insertion
--------------------
Units are ordered by attribution, highest first (signed values, so the strongest evidence *for*
the target goes first; ``absolute`` orders by magnitude). For frame stacks ``(C, H, W)`` a unit is
a pixel position (y, x) with the attribution summed over the C stacked frames, and removing it
replaces that position in every frame: many methods (perturbation, Grad-CAM) give one map
repeated on every frame, and ordering such ties frame by frame would be arbitrary.
``per_frame=True`` orders and removes single (frame, y, x) elements instead. Vector observations
order features. Ties keep index order (a stable sort), so the result is deterministic.

With N units and K = min(steps, N) steps, point k (0..K) has the first n_k = floor(k N / K)
units replaced: *deletion* starts from the observation and replaces units by the baseline;
*insertion* starts from the baseline and puts the observation's units back. The baseline is the
observation blurred with a Gaussian of std ``blur`` pixels (``baseline="blur"``, each frame on
its own; vector observations have nothing to blur, so it is zero for them) or zero (``"zero"``).

Logits, values and activations are unbounded and signed, so the raw score s_k (``target_scores``,
the chosen action held at the one chosen on the real observation) is measured from the score on
the full baseline, in units of how much the baseline changes it:

    c_k = (s_k - s_base) / |s_obs - s_base|     s_obs: score on the observation, s_base: on the baseline

s_obs and s_base depend on the observation and the baseline only, never on the method, so methods
are ranked exactly as by the raw curves; the scale only makes observations comparable. When
s_obs > s_base (the usual case) deletion runs from 1 to 0 and insertion from 0 to 1; when the
baseline scores higher, deletion runs from -1 to 0 and insertion from 0 to -1, so "lower" keeps
meaning "less evidence for the target" and the better direction stays the same. Non-monotone
models can leave these ranges. The value is the trapezoid area under c over the fraction n_k / N
of units replaced, averaged over observations: deletion lower is better, insertion higher; a
random order on a linear model scores about 0.5 (when s_obs > s_base). An observation with
|s_obs - s_base| <= 1e-6 + 1e-5 max(|s_obs|, |s_base|) is skipped (no unit to measure in) and
counted in ``details["skipped"]``; ``details["scores"]`` keeps the raw s_k.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Explanation, Method
from interpret_rl.metrics import Metric, MetricResult
from interpret_rl.targets import Target, actions_for, target_scores
from interpret_rl_plugins.captum_metrics import Infidelity, Sensitivity
from interpret_rl_plugins.perturbation import gaussian_blur
from interpret_rl_plugins.randomization import Randomization


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


def replaced_masks(importance: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, N)`` importance -> masks ``(B, K+1, N)`` (True: replaced at point k, the n_k most
    important units) and the counts ``(K+1,)`` n_k = floor(k N / K), K = min(steps, N)."""
    n = importance.shape[1]
    k = max(1, min(steps, n))
    counts = torch.div(torch.arange(k + 1) * n, k, rounding_mode="floor").to(importance.device)
    order = importance.argsort(dim=1, descending=True, stable=True)
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
        steps: int = 20
        """Points after the start, each replacing 1/steps of the units (capped at the number of units)."""
        baseline: str = "blur"
        """What replaces a removed unit: blur (the blurred frame; zero for vectors) or zero."""
        blur: float = 5.0
        """Std in pixels of the Gaussian blur of the blur baseline."""
        per_frame: bool = False
        """Frames: order single (frame, y, x) elements instead of pixels summed over the stack."""
        absolute: bool = False
        """Order by |attribution| instead of the signed value."""
        batch: int = 64
        """Perturbed observations per forward pass."""

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        opts = self.options
        if opts.steps < 1 or opts.batch < 1:
            raise ValueError(f"steps and batch must be at least 1, got steps={opts.steps} batch={opts.batch}")
        x = observations.detach().float()
        values = explanation.values.detach().to(x.device)
        if tuple(values.shape) != tuple(x.shape):
            raise ValueError(f"attribution of shape {tuple(values.shape)} for observations {tuple(x.shape)}")
        masks, counts = replaced_masks(unit_importance(values, opts.per_frame, opts.absolute), opts.steps)
        baseline = curve_baseline(x, opts.baseline, opts.blur)
        with torch.no_grad():
            actions = actions_for(agent, target, x)
            scores = torch.stack([self._curve_scores(agent, target, x[i], baseline[i], masks[i],
                                                     None if actions is None else actions[i])
                                  for i in range(len(x))])
        return self._summarise(scores.double().cpu(), (counts.double() / counts[-1]).cpu())

    def _curve_scores(self, agent, target: Target, obs: torch.Tensor, baseline: torch.Tensor, masks: torch.Tensor,
                      action: torch.Tensor | None) -> torch.Tensor:
        """One observation ``obs`` ``(*obs_shape)`` and its masks ``(K+1, N)`` -> the raw scores
        ``(K+1,)`` of its curve points, ``batch`` points per forward pass (memory stays bounded)."""
        points = curve_inputs(obs[None], baseline[None], masks[None], self.options.per_frame, self.insertion)[0]
        parts = points.split(self.options.batch)
        return torch.cat([target_scores(agent, target, part, None if action is None else action.expand(len(part)))
                          for part in parts])

    def _summarise(self, scores: torch.Tensor, fractions: torch.Tensor) -> MetricResult:
        """Raw scores ``(B, K+1)`` -> normalised curves, their areas and the mean area."""
        s_obs, s_base = (scores[:, -1], scores[:, 0]) if self.insertion else (scores[:, 0], scores[:, -1])
        span = s_obs - s_base
        usable = span.abs() > 1e-6 + 1e-5 * torch.maximum(s_obs.abs(), s_base.abs())
        if not usable.any():
            raise ValueError("the target scores the same on the observations and on the baseline, "
                             "so there is no curve to normalise; try another baseline")
        curves = (scores[usable] - s_base[usable, None]) / span[usable, None].abs()
        areas = torch.trapezoid(curves, fractions, dim=1)
        per_observation = [None] * len(scores)
        for i, area in zip(usable.nonzero().flatten().tolist(), areas.tolist()):
            per_observation[i] = area
        opts = self.options
        units = "element (frame, y, x)" if opts.per_frame else "pixel (y, x), frames summed; feature for vectors"
        return self._result(areas.mean(), fractions=fractions.tolist(), curve=curves.mean(0).tolist(),
                            auc_per_observation=per_observation, scores=scores.tolist(),
                            skipped=int((~usable).sum()), baseline=opts.baseline, units=units)


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
        return self._result(float(seconds) / len(observations), seconds=float(seconds),
                            observations=len(observations), source=source)


@hookimpl
def register_metrics(register):
    for metric in (Deletion, Insertion, Randomization, Infidelity, Sensitivity, Runtime):
        register(metric)
