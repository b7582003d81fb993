"""Run several explanation methods on the same targets and the same real observations.

``compare(agent, methods=["saliency", "optim"])`` returns a ``ComparisonResult``: one ``Cell`` per
(method, target) holding the explanation or the error, the seconds it took and summary statistics.
``interpret_rl.report.write_report`` turns it into a PNG grid, an HTML page and results.json.

A method that raises does not stop the others: its cells record the error. After every call the
model is checked against a snapshot taken before it (same weights bit for bit, no torch hook added,
same train/eval mode) and so are the observations; a method that changed them gets an error in its
cell and the snapshot is restored, so the methods after it still see the model as it was found.

A method that overrides ``Method.explain_many`` (one explanation per target, in order) is called
once for all targets (optim optimises all targets as one batch, several times faster than one
call per target); every other method is called once per target.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from interpret_rl.errors import error_text
from interpret_rl.guard import ModelGuard
from interpret_rl.methods import METHODS, Explanation, Method, prepare_methods, seeded_rng
from interpret_rl.metrics import METRICS, Metric, MetricResult, bootstrap_interval, evaluate_metrics, prepare_metrics
from interpret_rl.names import Registry
from interpret_rl.observations import SAMPLES, check_observations, collect_with_ground_truth
from interpret_rl.registry import package_versions as registry_package_versions
from interpret_rl.targets import Target, chosen_actions, default_targets, parse_target

VERSIONED_PACKAGES = ("interpret-rl", "torch", "captum", "torch-lucent", "numpy", "gymnasium", "ale-py")


@dataclass
class MethodInfo:
    """Identity of a compared method: who registered it and with which options."""

    name: str
    kind: str
    plugin: str
    description: str
    options: dict


@dataclass
class MetricInfo:
    """Identity of a metric computed on every successful cell."""

    name: str
    description: str
    higher_is_better: bool | None
    plugin: str
    options: dict


@dataclass
class Cell:
    """One method on one target, over all observations.

    :ivar explanation: ``None`` when the method failed; else its ``values`` are ``(B, *obs_shape)``
        (attribution) or ``(S, *obs_shape)`` (synthesis).
    :ivar error: ``"TypeName: first line of the message"`` when it failed.
    :ivar seconds: wall time of the call; for a method that explained all targets in one call
        (``batched``), that call's time divided evenly among the targets.
    :ivar stats: ``min``, ``max``, ``mean``, ``abs_mean`` of the values, and for stacked frames
        ``abs_mean_per_frame`` (one number per channel, oldest frame first).
    :ivar metrics: metric name -> ``MetricResult`` or ``"ErrorType: message"`` (only the metrics asked
        for; empty for a failed cell).
    """

    method: str
    target: str
    seconds: float
    explanation: Explanation | None = None
    error: str | None = None
    stats: dict = field(default_factory=dict)
    batched: bool = False
    metrics: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {"method": self.method, "target": self.target, "ok": self.ok, "error": self.error,
                "seconds": self.seconds, "batched": self.batched, "stats": self.stats,
                "extras": self.explanation.extras if self.explanation is not None else {},
                **({"metrics": {name: r.to_dict() if isinstance(r, MetricResult) else {"error": str(r)}
                                for name, r in self.metrics.items()}} if self.metrics else {})}


@dataclass
class ComparisonResult:
    """Everything a report needs. ``cells[(method name, target spec)]``.

    :ivar observations: ``(B, *obs_shape)`` float32, what every method explained.
    :ivar policy: per observation the chosen action's name and the value (for row labels).
    """

    agent_name: str
    env_id: str
    model_sha256: str | None
    observations: torch.Tensor
    observation_source: str
    observation_space: dict
    targets: list[Target]
    methods: list[MethodInfo]
    cells: dict[tuple[str, str], Cell]
    policy: list[dict]
    seed: int
    options: dict[str, dict[str, str]]
    versions: dict[str, str]
    created: str
    metrics: list[MetricInfo] = field(default_factory=list)
    ground_truth: Any = None  # interpret_rl.objects.GroundTruth of the observations, when collected in ALE

    def cell(self, method: str, target: str) -> Cell:
        return self.cells[(method, target)]

    def method_seconds(self, method: str) -> float:
        return sum(c.seconds for (m, _), c in self.cells.items() if m == method)

    def method_errors(self, method: str) -> list[str]:
        return [c.error for (m, _), c in self.cells.items() if m == method and c.error]

    def metric_results(self, method: str, metric: str) -> list:
        """The ``MetricResult`` or error text of ``metric`` on each successful target of ``method``."""
        return [c.metrics[metric] for (m, _), c in self.cells.items() if m == method and metric in c.metrics]

    def metric_mean(self, method: str, metric: str) -> float | None:
        """Mean value of ``metric`` over the targets where it succeeded; None where it never did."""
        values = [r.value for r in self.metric_results(method, metric) if isinstance(r, MetricResult)]
        return sum(values) / len(values) if values else None

    def metric_error(self, method: str, metric: str) -> str | None:
        """The first error of ``metric`` on ``method`` (or why there is no value), else None."""
        results = self.metric_results(method, metric)
        errors = [r for r in results if isinstance(r, str)]
        if errors:
            return errors[0]
        if not results:
            failed = self.method_errors(method)
            return f"the method failed on every target: {failed[0]}" if failed else "not computed"
        return None

    def metric_interval(self, method: str, metric: str) -> tuple[float, float] | None:
        """95 % bootstrap interval of ``metric_mean`` over the observations: each observation's mean
        over the targets (the targets share the observations), resampled. None without per-observation
        numbers or with fewer than two observations."""
        rows = [r.per_observation for r in self.metric_results(method, metric)
                if isinstance(r, MetricResult) and r.per_observation is not None]
        if not rows or any(len(row) != len(rows[0]) for row in rows):
            return None
        means = []
        for values in zip(*rows):
            defined = [v for v in values if v is not None]
            means.append(sum(defined) / len(defined) if defined else None)
        return bootstrap_interval(means)

    def metric_verdict(self, method: str, metric: str) -> dict | None:
        """For a check whose results carry ``details["verdict"] = {"statistics": {name: number},
        "below": threshold}``: each statistic's mean over the targets, and ``passed`` when every mean
        is below the threshold, so the verdict is read off the very numbers the report shows."""
        verdicts = [r.details["verdict"] for r in self.metric_results(method, metric)
                    if isinstance(r, MetricResult) and isinstance(r.details.get("verdict"), dict)]
        if not verdicts:
            return None
        names = list(verdicts[0]["statistics"])
        means = {n: sum(v["statistics"][n] for v in verdicts) / len(verdicts) for n in names}
        below = verdicts[0]["below"]
        return {"statistics": means, "below": below, "passed": all(m < below for m in means.values())}

    def metric_passed(self, method: str, metric: str) -> bool | None:
        """For a check: the ``metric_verdict`` where the metric gives one; else (``details["passed"]``)
        True when it passed on every target that has a value, False when it failed on any, None when
        there is no verdict."""
        verdict = self.metric_verdict(method, metric)
        if verdict is not None:
            return verdict["passed"]
        verdicts = [r.details["passed"] for r in self.metric_results(method, metric)
                    if isinstance(r, MetricResult) and isinstance(r.details.get("passed"), bool)]
        return all(verdicts) if verdicts else None

    def metric_ranks(self, metric: str) -> dict[str, int]:
        """Method name -> rank of its mean (1 = best; ties share a rank) for a metric with a
        direction; methods without a value (and metrics with ``higher_is_better`` None) get no rank."""
        info = next((m for m in self.metrics if m.name == metric), None)
        if info is None or info.higher_is_better is None:
            return {}
        means = {m.name: self.metric_mean(m.name, metric) for m in self.methods}
        scored = {name: v for name, v in means.items() if v is not None}
        sign = -1.0 if info.higher_is_better else 1.0
        return {name: 1 + sum(1 for other in scored.values() if sign * other < sign * v) for name, v in scored.items()}

    def _summary(self, method: str) -> dict:
        summary = {"seconds": self.method_seconds(method), "failed_targets": len(self.method_errors(method))}
        if self.metrics:
            summary["metrics"] = {m.name: self.metric_mean(method, m.name) for m in self.metrics}
            summary["metric_intervals"] = {m.name: self.metric_interval(method, m.name) for m in self.metrics}
            verdicts = {m.name: self.metric_verdict(method, m.name) for m in self.metrics}
            summary["metric_verdicts"] = {k: v for k, v in verdicts.items() if v is not None}
            summary["metric_ranks"] = {m.name: self.metric_ranks(m.name).get(method) for m in self.metrics}
            summary["metric_errors"] = {m.name: self.metric_error(method, m.name) for m in self.metrics
                                        if self.metric_mean(method, m.name) is None}
            passed = {m.name: self.metric_passed(method, m.name) for m in self.metrics}
            summary["metric_passed"] = {k: v for k, v in passed.items() if v is not None}
        return summary

    def to_dict(self) -> dict:
        """JSON-able summary (no tensors): settings, per method and target the seconds and stats
        (and metrics, when asked for: per cell, and per method their mean over targets and rank)."""
        return {
            "agent": self.agent_name, "env_id": self.env_id, "model_sha256": self.model_sha256,
            "seed": self.seed, "created": self.created, "versions": self.versions,
            "observations": {"count": len(self.observations), "shape": list(self.observations.shape[1:]),
                             "source": self.observation_source, "policy": self.policy,
                             "facts": self.ground_truth.facts if self.ground_truth is not None else None},
            "targets": [{"spec": t.spec, "label": t.label, "kind": t.kind} for t in self.targets],
            "methods": [dataclasses.asdict(m) for m in self.methods],
            "options": self.options,
            **({"metrics": [dataclasses.asdict(m) for m in self.metrics]} if self.metrics else {}),
            "summary": {m.name: self._summary(m.name) for m in self.methods},
            "results": {m.name: {t.spec: self.cells[(m.name, t.spec)].to_dict() for t in self.targets}
                        for m in self.methods},
        }


def package_versions() -> dict[str, str]:
    """The versions a comparison records (``registry.package_versions`` of ``VERSIONED_PACKAGES``)."""
    return registry_package_versions(VERSIONED_PACKAGES)


def _identity(instance: Method | Metric, registry: Registry) -> dict:
    """What a report records of a method or metric instance: the plugin that registered its class
    (or where an unregistered class comes from) and its options."""
    classes, owners = registry.collect()
    plugin = owners.get(instance.name) if type(instance) is classes.get(instance.name) else None
    options = dataclasses.asdict(instance.options) if dataclasses.is_dataclass(instance.options) else {}
    return {"name": instance.name, "description": instance.description, "options": options,
            "plugin": plugin or f"{type(instance).__module__} (not registered)"}


def prepare_targets(agent, targets: Sequence[str | Target] | None) -> list[Target]:
    """Specs or ``Target`` objects -> targets (default: every action, then the value); ``TargetError``."""
    if targets is None:
        return default_targets(agent)
    parsed = [t if isinstance(t, Target) else parse_target(t, agent) for t in targets]
    if not parsed:
        raise ValueError("no target to explain")
    specs = [t.spec for t in parsed]
    return [t for i, t in enumerate(parsed) if t.spec not in specs[:i]]  # "action:1" and "action:FIRE" are one


def values_stats(values: torch.Tensor) -> dict:
    """Summary numbers of ``(N, *obs_shape)`` values; per-frame share for ``(N, C, H, W)``."""
    v = values.detach().double().cpu()
    stats = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()), "abs_mean": float(v.abs().mean())}
    if v.dim() == 4:
        stats["abs_mean_per_frame"] = [float(x) for x in v.abs().mean(dim=(0, 2, 3))]
    return stats




def _check_values(kind: str, values: torch.Tensor, observations: torch.Tensor) -> str | None:
    """Why an explanation breaks the contract, or None."""
    obs_shape = tuple(observations.shape[1:])
    if not torch.is_tensor(values):
        return f"values must be a tensor, got {type(values).__name__}"
    if kind == "attribution" and tuple(values.shape) != tuple(observations.shape):
        return f"attribution of shape {tuple(values.shape)}, expected {tuple(observations.shape)}"
    if kind == "synthesis" and (values.dim() != len(obs_shape) + 1 or tuple(values.shape[1:]) != obs_shape):
        return f"synthesis of shape {tuple(values.shape)}, expected (S, {', '.join(map(str, obs_shape))})"
    if not torch.isfinite(values).all():
        return "values contain NaN or infinity"
    return None


def _run_method(agent, method: Method, targets: list[Target], observations: torch.Tensor, seed: int) -> list[Cell]:
    """One cell per target. A method offering ``explain_many(agent, targets, obs)`` (optim: all targets
    in one optimisation) is called once; otherwise ``explain`` once per target."""
    batched = method.explains_many_at_once() and len(targets) > 1
    calls = [(targets, True)] if batched else [([t], False) for t in targets]
    cells = []
    for group, batched in calls:
        guard = ModelGuard(agent.network)
        given = observations.clone()  # the method's own copy: a method that mutates it harms no other
        error, explanations = None, None
        start = time.perf_counter()
        try:
            with seeded_rng(seed, agent.device):
                explanations = method.explain_many(agent, group, given)
            if len(explanations) != len(group):
                error = f"ContractError: {len(explanations)} explanations for {len(group)} targets"
        except Exception as err:  # one method's failure must not stop the comparison
            error = error_text(err)
        seconds = (time.perf_counter() - start) / len(group)
        broken = guard.changes()
        if broken:
            guard.restore()
            error = error or f"ContractError: the method {'; '.join(broken)} (restored)"
        if not torch.equal(given, observations) or given.requires_grad:
            error = error or "ContractError: the method modified its input observations"
        for i, target in enumerate(group):
            cell = Cell(method=method.name, target=target.spec, seconds=seconds, error=error, batched=batched)
            if error is None:
                explanation = explanations[i]
                cell.error = _check_values(method.kind, explanation.values, observations)
                if cell.error is None:
                    cell.explanation = explanation
                    cell.stats = values_stats(explanation.values)
                else:
                    cell.error = f"ContractError: {cell.error}"
            cells.append(cell)
    return cells


def _policy_summary(agent, observations: torch.Tensor) -> list[dict]:
    with torch.no_grad():
        logits, value = agent.network(observations)
    # A continuous policy's most likely action is its mean (logits), a discrete one's the argmax.
    actions = logits.cpu().numpy() if agent.is_continuous else chosen_actions(agent, observations).tolist()
    summary = []
    for a, row, v in zip(actions, logits, value.tolist()):
        name, strength = agent.describe_action(row, a)
        entry = {"action": name, "value": round(float(v), 4), "strength": strength}
        if not (agent.is_q_learner or agent.is_continuous):  # a softmax of Q-values is no probability
            entry["probability"] = round(float(torch.softmax(row, -1)[a]), 4)
        summary.append(entry)
    return summary


def compare(agent, methods: Sequence[str | Method], targets: Sequence[str | Target] | None = None,
            observations: torch.Tensor | None = None, frames: int = 3, seed: int = 0,
            options: dict[str, dict[str, Any]] | None = None, metrics: Sequence[str | Metric] | str | None = None,
            metric_options: dict[str, dict[str, Any]] | None = None, sample: str = "start",
            ground_truth=None) -> ComparisonResult:
    """Explain the same targets on the same observations with every method.

    :param methods: registered names (``"saliency"``) or ``Method`` instances.
    :param targets: target specs (``"action:FIRE"``, ``"value"``, ``"conv3:5"``); default: every
        action's logit, then the value.
    :param observations: ``(B, *agent.observation_shape)``; default: ``frames`` observations
        collected by playing the agent's policy with ``seed``.
    :param frames: how many observations to collect when none are given (at least 1).
    :param seed: seeds the observation collection and torch's/numpy's global RNGs around every call.
    :param options: per method, option values as text or typed: ``{"optim": {"steps": "64"}}``.
    :param metrics: metric names (``"all"``: every registered one) or ``Metric`` instances to score
        every successful cell with (``interpret_rl.metrics.evaluate_metrics``); default none (they
        cost far more than the explanations). Results land in ``Cell.metrics``.
    :param metric_options: per metric, option values: ``{"deletion": {"steps": "10"}}``.
    :param sample: where collected observations come from (``observations.SAMPLES``): ``start`` (the
        first stretch of play) or ``game`` (spread over a whole game).
    :param ground_truth: ``objects.GroundTruth`` of given ``observations`` (collected ones bring their
        own in ALE games); metrics that need it are skipped without.
    Unknown methods, metrics or targets, bad options and wrongly shaped observations raise before any work.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if sample not in SAMPLES:
        raise ValueError(f"unknown sample {sample!r}; valid: {', '.join(SAMPLES)}")
    if ground_truth is not None and (observations is None or len(ground_truth) != len(observations)):
        raise ValueError("ground_truth must come with the observations it describes, one row each")
    instances = prepare_methods(methods, options)
    scorers = prepare_metrics(metrics, metric_options)
    parsed = prepare_targets(agent, targets)
    if observations is None:
        observations, ground_truth = collect_with_ground_truth(agent, frames, seed=seed, sample=sample)
        source = (f"collected: {frames} observations playing {agent.env_id} with the stochastic policy, seed {seed}, "
                  f"sample {sample}: {SAMPLES[sample].split(':')[0]}")
    else:
        source = "given by the caller"
    observations = check_observations(observations, agent.observation_shape).to(agent.device)
    network = agent.network
    was_training = network.training
    network.eval()
    try:
        cells = {}
        for method in instances:
            for cell in _run_method(agent, method, parsed, observations, seed):
                cells[(cell.method, cell.target)] = cell
                if scorers and cell.ok:
                    target = next(t for t in parsed if t.spec == cell.target)
                    cell.metrics = evaluate_metrics(agent, method, target, observations, cell.explanation,
                                                    names=scorers, seconds=cell.seconds, seed=seed,
                                                    ground_truth=ground_truth)
        policy = _policy_summary(agent, observations)
    finally:
        network.train(was_training)
    files = agent.meta.get("files", {}) if isinstance(agent.meta, dict) else {}
    return ComparisonResult(
        agent_name=agent.name or "unnamed agent", env_id=agent.env_id, model_sha256=files.get("model.safetensors"),
        observations=observations.detach().cpu(), observation_source=source,
        observation_space=dict(agent.observation_space), targets=parsed,
        methods=[MethodInfo(kind=m.kind, **_identity(m, METHODS)) for m in instances], cells=cells, policy=policy,
        seed=seed,
        options={k: {f: str(v) for f, v in opts.items()} for k, opts in (options or {}).items()},
        versions=package_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        metrics=[MetricInfo(higher_is_better=m.higher_is_better, **_identity(m, METRICS)) for m in scorers],
        ground_truth=ground_truth)
