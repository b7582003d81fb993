"""The metric contract (interpret_rl.testing.check_metric, shipped for plugin authors), checked on
every registered metric, built-in or not, with two methods on both sample agents."""

from __future__ import annotations

import pytest

from interpret_rl.metrics import registered_metrics
from interpret_rl.testing import check_metric, sample_agents

# Cheap settings so the matrix runs in seconds; every code path is still taken.
FAST_METRICS = {"deletion": {"steps": "5"}, "insertion": {"steps": "5"}, "infidelity": {"samples": "3"},
                "sensitivity": {"samples": "2"}}
NOT_DETERMINISTIC = {"runtime"}  # wall time

METRICS = sorted(registered_metrics())


def ground_truth_for(agent, observations):
    """Real emulator ground truth for metrics that need it, one row per observation: collected in
    the agent's game (the CNN agent plays Breakout); None where the env has no detector."""
    from interpret_rl.observations import collect_with_ground_truth

    return collect_with_ground_truth(agent, len(observations), warmup=40, stride=4)[1]


@pytest.mark.parametrize("method_name", ["saliency", "perturbation"])
@pytest.mark.parametrize("name", METRICS)
def test_contract(name, method_name):
    from interpret_rl.methods import build_method

    method = build_method(method_name, {"stride": "14"} if method_name == "perturbation" else None)
    outcomes = check_metric(name, method, FAST_METRICS.get(name), deterministic=name not in NOT_DETERMINISTIC,
                            ground_truth=ground_truth_for)
    for label, outcome in outcomes.items():
        if registered_metrics()[name].needs and label == "mlp":  # CartPole has no object detector
            assert outcome.startswith(f"skipped: NotApplicableError: metric {name} needs game ground truth"), outcome
        else:
            assert outcome == "ok", (label, outcome)


def test_every_builtin_is_registered():
    assert {"deletion", "insertion", "randomization", "infidelity", "sensitivity", "runtime"} <= set(METRICS)


def test_sample_agents_are_the_shapes_the_docs_promise():
    samples = {s.label: s for s in sample_agents()}
    assert samples["cnn"].observations.shape == (2, 4, 84, 84) and samples["mlp"].observations.shape == (3, 4)
