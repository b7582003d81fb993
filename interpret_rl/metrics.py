"""Metrics that score an explanation, and the registry plugins fill through ``register_metrics``.

A metric is a class with a ``name``, a one-line ``description``, ``higher_is_better`` (``None``
when neither direction is better, e.g. run time is "lower is better" = ``False``), ``applies_to``
(the method kinds it can score), an ``Options`` dataclass (every field has a default) and::

    evaluate(agent, method, target, observations, explanation) -> MetricResult

``observations`` is ``(B, *obs_shape)``; ``explanation`` is what ``method.explain(agent, target,
observations)`` returned (``values`` ``(B, *obs_shape)`` for an attribution). A metric may call
``method.explain`` again (on perturbed inputs, on a randomised copy of the network). It must leave
the agent as found: weights bit-identical (work on a ``copy.deepcopy`` of the network to change
weights), no torch hooks left, ``observations`` unmodified. ``explanation.extras["seconds"]``, when
present, is the wall time the caller measured for producing the explanation (all B observations).

Ground truth: a metric that scores against what the game knows (object masks from RAM, emulator
states to replay) names it in ``needs`` (``"objects"``, ``"emulator"``; see ``interpret_rl.objects``)
and takes one more keyword, ``evaluate(..., ground_truth=GroundTruth)``, rows aligned with
``observations``. Where the ground truth is missing or lacks what it needs (no detector for the env,
observations from a file without it), ``evaluate_metrics`` skips the metric with a
``NotApplicableError`` saying why, so it never has to guess.

``evaluate_metrics`` runs several metrics on one explanation; one metric's failure never stops the
others, and each is checked against a snapshot of the network afterwards.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from interpret_rl.errors import error_text
from interpret_rl.guard import ModelGuard
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import KINDS, Explanation, Method, NotApplicableError, seeded_rng
from interpret_rl.names import Registry
from interpret_rl.targets import Target, parse_target

torch = lazy_module("torch")


CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_interval(values: Sequence[float | None], confidence: float = CONFIDENCE,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (``None`` entries, observations where
    the metric is undefined, are left out): resample the observations with replacement
    ``resamples`` times, seeded, so the same values give the same interval. ``None`` with fewer than
    two values (one observation says nothing about the spread)."""
    import numpy as np

    defined = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(defined) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = defined[rng.integers(0, len(defined), size=(resamples, len(defined)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class MetricResult:
    """One metric's verdict on one explanation.

    :ivar value: the summary number (an area under a curve, a mean rank correlation, seconds ...):
        the mean of ``per_observation`` where the metric gives one number per observation.
    :ivar details: JSON-able extras: curves as lists, per-layer correlations, ``passed`` for checks.
    :ivar higher_is_better: copied from the metric, so a report can colour the number without it.
    :ivar per_observation: the number ``value`` averages, one per observation (``None`` where the
        metric is undefined for that observation, said why in ``details``); ``None`` for metrics
        that do not average over observations (run time).
    :ivar interval: 95 % percentile bootstrap interval of ``value`` over the observations
        (``bootstrap_interval``); ``None`` with fewer than two defined observations.
    """

    metric: str
    value: float
    details: dict = field(default_factory=dict)
    higher_is_better: bool | None = None
    per_observation: list[float | None] | None = None
    interval: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return {"metric": self.metric, "value": self.value, "higher_is_better": self.higher_is_better,
                "interval": list(self.interval) if self.interval else None,
                "confidence": CONFIDENCE if self.interval else None,
                "per_observation": self.per_observation, "details": self.details}


class Metric:
    """Base class of metrics: subclasses set the class attributes and ``evaluate``."""

    name: ClassVar[str]
    description: ClassVar[str]
    higher_is_better: ClassVar[bool | None] = None
    applies_to: ClassVar[frozenset[str]] = frozenset({"attribution"})
    needs: ClassVar[frozenset[str]] = frozenset()  # ground truth it scores against: "objects", "emulator"

    @dataclass
    class Options:
        """No options."""

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def evaluate(self, agent, method: Method, target: Target, observations: torch.Tensor,
                 explanation: Explanation) -> MetricResult:
        """Score ``explanation`` (made by ``method`` for ``target`` on ``observations`` ``(B, *obs_shape)``)."""
        raise NotImplementedError

    def result(self, value: float, per_observation: Sequence[float | None] | None = None, **details) -> MetricResult:
        """A result; with ``per_observation`` (one number or ``None`` per observation) it carries
        their bootstrap interval too."""
        if per_observation is not None:
            per_observation = [None if v is None else float(v) for v in per_observation]
        interval = None if per_observation is None else bootstrap_interval(per_observation)
        return MetricResult(metric=self.name, value=float(value), details=details,
                            higher_is_better=self.higher_is_better, per_observation=per_observation,
                            interval=interval)


def explain_holding_actions(method: Method, agent, target: Target, observations: torch.Tensor,
                            actions: torch.Tensor | None) -> torch.Tensor:
    """``method``'s map of ``target`` on ``observations`` ``(N, *obs)`` -> ``(N, *obs)``, with a
    ``chosen-action`` target explained as the fixed per-row ``actions`` ``(N,)``.

    Metrics that re-run a method on perturbed inputs or on a randomised network use it: the
    "chosen" action there may differ from the one chosen on the real observation, and the map of
    another action's logit is not the explanation being scored. Rows sharing an action are
    explained in one call. Other targets (or ``actions=None``) are explained as they are.
    """
    if target.kind != "chosen-action" or actions is None:
        return method.explain(agent, target, observations).values
    maps = None
    for action in actions.unique().tolist():
        rows = (actions == action).nonzero().flatten().to(observations.device)
        values = method.explain(agent, parse_target(f"action:{action}", agent), observations[rows]).values
        if maps is None:
            maps = torch.empty((len(observations), *values.shape[1:]), dtype=values.dtype, device=values.device)
        maps[rows.to(maps.device)] = values
    return maps


def _check_metric_class(metric: Any, plugin: str) -> None:
    problems = [f"no {attr!r}" for attr in ("name", "description") if not isinstance(getattr(metric, attr, None), str)]
    applies = getattr(metric, "applies_to", None)
    if not isinstance(applies, (set, frozenset)) or not applies or not set(applies) <= set(KINDS):
        problems.append(f"applies_to must be a non-empty set of {KINDS}")
    if getattr(metric, "higher_is_better", None) not in (True, False, None):
        problems.append("higher_is_better must be True, False or None")
    if not dataclasses.is_dataclass(getattr(metric, "Options", None)):
        problems.append("Options must be a dataclass")
    if problems:
        raise TypeError(f"plugin {plugin!r} registered an invalid metric {metric!r}: {'; '.join(problems)}")


METRICS = Registry("metric", "register_metrics", _check_metric_class)
registered_metrics = METRICS.all  # name -> metric class, sorted
metric_plugins = METRICS.owners  # name -> the plugin that registered it
get_metric = METRICS.get  # the class; UnknownNameError suggests close names
build_metric = METRICS.build  # an instance, options given as text ({"steps": "10"}) or typed


def prepare_metrics(metrics: Sequence[str | Metric] | str | None,
                    options: dict[str, dict[str, Any]] | None = None) -> list[Metric]:
    """Names (or ``"all"``: every registered metric) or instances -> instances with options applied
    (``{"deletion": {"steps": "10"}}``); raises before any work (see ``Registry.build_many``)."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics or [])
    if "all" in metrics:
        given = {getattr(m, "name", None) for m in metrics}
        metrics = [m for m in metrics if not isinstance(m, str)] + [n for n in METRICS.all() if n not in given]
    return METRICS.build_many(metrics, options, "computed metrics")




def evaluate_metrics(agent, method: Method, target: Target | str, observations: torch.Tensor,
                     explanation: Explanation, names: Sequence[str | Metric] | None = None,
                     options: dict[str, dict[str, Any]] | None = None, seconds: float | None = None,
                     seed: int = 0, ground_truth=None) -> dict[str, MetricResult | str]:
    """Score one explanation with several metrics.

    :param method: the ``Method`` instance that made ``explanation`` (metrics may re-run it).
    :param observations: ``(B, *obs_shape)``, what ``explanation`` explains.
    :param names: registered metric names or ``Metric`` instances; default: every registered metric.
    :param options: per metric, option values as text or typed: ``{"deletion": {"steps": "10"}}``.
    :param seconds: wall time the caller measured for the explanation (all B observations); the
        ``runtime`` metric uses it instead of timing a re-run.
    :param seed: seeds torch's and numpy's global RNGs around each metric (restored after).
    :param ground_truth: ``interpret_rl.objects.GroundTruth`` of ``observations`` for the metrics that
        declare ``needs``; without it (or lacking what they need) they are skipped, said why.
    :returns: metric name -> ``MetricResult``, or ``"ErrorType: message"`` when the metric failed,
        does not apply to the method's kind (``NotApplicableError``) or broke the model contract
        (``ContractError``; the model is then restored before the next metric).
    Unknown metric names and bad options raise before any metric runs.
    """
    options = options or {}
    metrics = [m if isinstance(m, Metric) else build_metric(m, options.get(m))
               for m in (names if names is not None else registered_metrics())]
    target = parse_target(target, agent) if isinstance(target, str) else target
    if seconds is not None:  # a copy: the caller's explanation keeps its own extras
        explanation = dataclasses.replace(explanation, extras={**explanation.extras, "seconds": float(seconds)})
    results: dict[str, MetricResult | str] = {}
    for metric in metrics:
        if method.kind not in metric.applies_to:
            results[metric.name] = error_text(NotApplicableError(
                f"metric {metric.name} scores {' and '.join(sorted(metric.applies_to))} methods, not {method.kind}"))
            continue
        extra = {}
        if metric.needs:
            missing = ("the observations come without ground truth from the emulator" if ground_truth is None
                       else ground_truth.lacks(metric.needs))
            if missing:
                needs = ", ".join(sorted(metric.needs))
                results[metric.name] = error_text(NotApplicableError(
                    f"metric {metric.name} needs game ground truth ({needs}): {missing}"))
                continue
            extra["ground_truth"] = ground_truth
        guard = ModelGuard(agent.network)
        given = observations.detach().clone()
        try:
            with seeded_rng(seed, agent.device):
                result = metric.evaluate(agent, method, target, given, explanation, **extra)
            if not math.isfinite(result.value):
                raise ValueError(f"metric {metric.name} gave a non-finite value {result.value}")
            results[metric.name] = result
        except Exception as err:  # one metric's failure must not stop the others
            results[metric.name] = error_text(err)
        broken = guard.changes()
        if broken:
            guard.restore()
            results[metric.name] = f"ContractError: the metric {'; '.join(broken)} (restored)"
        elif not torch.equal(given, observations.detach()):
            results[metric.name] = "ContractError: the metric modified its input observations"
    return results
