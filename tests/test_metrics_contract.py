"""The metric contract, checked on every registered metric (built-in or not) with two methods on
both agents: a finite value, JSON-able details, same seed -> same value, and the agent left as
found (weights bit-identical, no torch hooks, no .grad written, observations untouched)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_methods_contract import Snapshot

from interpret_rl.methods import build_method
from interpret_rl.metrics import MetricResult, build_metric, evaluate_metrics, registered_metrics
from interpret_rl.targets import parse_target

# Cheap settings so the matrix runs in seconds; every code path is still taken.
FAST_METRICS = {"deletion": {"steps": "5"}, "insertion": {"steps": "5"}, "infidelity": {"samples": "3"},
                "sensitivity": {"samples": "2"}}
FAST_METHODS = {"saliency": {}, "perturbation": {"stride": "14"}}
NOT_DETERMINISTIC = {"runtime"}  # wall time

METRICS = sorted(registered_metrics())


def ground_truth_for(agent, observations):
    """Real emulator ground truth for metrics that need it (``needs``), one row per observation:
    collected in the agent's game (the CNN agent plays Breakout); None where the env has no
    detector, and such metrics must then say they were skipped."""
    from interpret_rl.observations import collect_with_ground_truth

    return collect_with_ground_truth(agent, len(observations), warmup=40, stride=4)[1]


@pytest.fixture(params=["cnn", "mlp"])
def setup(request, cnn_agent, mlp_agent, atari_observations):
    """(agent, observations): one uint8 frame stack; two float vectors that require grad, to check
    the flag survives."""
    if request.param == "cnn":
        return cnn_agent, atari_observations[:1].to(torch.uint8)
    return mlp_agent, torch.tensor([[0.1, -0.5, 0.05, 0.8], [-1.0, 0.3, -0.1, -0.2]]).requires_grad_(True)


@pytest.mark.parametrize("method_name", sorted(FAST_METHODS))
@pytest.mark.parametrize("name", METRICS)
def test_contract(name, method_name, setup):
    agent, observations = setup
    method = build_method(method_name, FAST_METHODS[method_name])
    target = parse_target("action", agent)
    explanation = method.explain(agent, target, observations)
    metric_class = registered_metrics()[name]
    truth = ground_truth_for(agent, observations) if metric_class.needs else None
    if metric_class.needs and truth is None:
        skipped = evaluate_metrics(agent, method, target, observations, explanation, [name])[name]
        assert skipped.startswith(f"NotApplicableError: metric {name} needs game ground truth"), skipped
        return
    extra = {"ground_truth": truth} if truth is not None else {}
    snapshot = Snapshot(agent, observations)
    first = build_metric(name, FAST_METRICS.get(name)).evaluate(agent, method, target, observations, explanation,
                                                                **extra)
    snapshot.check()
    again = evaluate_metrics(agent, method, target, observations, explanation, [name],
                             {name: FAST_METRICS.get(name, {})}, ground_truth=truth)
    snapshot.check()
    assert isinstance(again[name], MetricResult), again[name]
    assert first.metric == name and first.higher_is_better == metric_class.higher_is_better
    assert isinstance(first.value, float) and math.isfinite(first.value)
    json.dumps(first.to_dict(), allow_nan=False)
    if name not in NOT_DETERMINISTIC:
        assert again[name].value == first.value and again[name].details == first.details


def test_every_builtin_is_registered():
    assert {"deletion", "insertion", "randomization", "infidelity", "sensitivity", "runtime"} <= set(METRICS)
