"""Metrics: deletion/insertion on a linear model whose best ordering is known, the randomization
check separating weight-dependent from weight-independent methods, captum's infidelity and
sensitivity, run time, and the metric registry (``register_metrics``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from interpret_rl.agent import Agent
from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Explanation, Method, build_method
from interpret_rl.metrics import (
    DuplicateMetricError,
    Metric,
    MetricResult,
    UnknownMetricError,
    build_metric,
    evaluate_metrics,
    explain_holding_actions,
    get_metric,
    metric_plugins,
    registered_metrics,
)
from interpret_rl.plugin_manager import STRICT_ENV, PluginLoadWarning
from interpret_rl.targets import chosen_actions, parse_target
from interpret_rl_plugins.perturbation import gaussian_blur
from interpret_rl_plugins.randomization import cascade, rank_correlation

BUILTINS = {"deletion", "insertion", "randomization", "infidelity", "sensitivity", "runtime"}


class LinearNet(nn.Module):
    """logit 0 = value = w . x, logit 1 = 0: the contribution of each input is exactly w_i x_i."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.policy = nn.Linear(weight.numel(), 2, bias=False)
        self.value = nn.Linear(weight.numel(), 1, bias=False)
        with torch.no_grad():
            self.policy.weight.zero_()
            self.policy.weight[0] = weight.flatten()
            self.value.weight[0] = weight.flatten()

    def forward(self, obs):
        x = obs.float().flatten(1)
        return self.policy(x), self.value(x).squeeze(-1)


def linear_agent(weight: torch.Tensor) -> Agent:
    return Agent(network=LinearNet(weight), env_id="Linear-v0", env_settings={}, architecture="linear",
                 architecture_args={}, action_space={"type": "Discrete", "n": 2}, action_meanings=["ON", "OFF"],
                 observation_space={"type": "Box", "shape": list(weight.shape), "dtype": "float32",
                                    "low": [None], "high": [None]})


class Given(Method):
    """Returns the attribution it was built with (orderings chosen by the test)."""

    name = "given"
    description = "a fixed attribution"

    def __init__(self, values: torch.Tensor):
        super().__init__()
        self.values = values

    def explain(self, agent, target, observations):
        return self._explanation(target, self.values)


class FrameEdges(Method):
    """|horizontal difference| of the observation: looks plausible, never reads the weights."""

    name = "frame-edges"
    description = "edge detector of the frame"

    def explain(self, agent, target, observations):
        x = observations.detach().float()
        edges = torch.zeros_like(x)
        edges[..., 1:] = (x[..., 1:] - x[..., :-1]).abs()
        return self._explanation(target, edges)


def score(metric: str, agent, values: torch.Tensor, observations: torch.Tensor, spec: str = "action:0",
          **options) -> MetricResult:
    method, target = Given(values), parse_target(spec, agent)
    return build_metric(metric, options).evaluate(agent, method, target, observations,
                                                  method.explain(agent, target, observations))


@pytest.fixture
def frames_model():
    """A linear model reading only a 20x40 region of the newest frame, and two random frame stacks."""
    weight = torch.zeros(4, 84, 84)
    weight[3, 30:50, 20:60] = torch.linspace(0.1, 1.0, 800).view(20, 40)
    frames = torch.randint(1, 256, (2, 4, 84, 84), generator=torch.Generator().manual_seed(0)).float()
    return linear_agent(weight), weight, frames


# --- deletion and insertion ---------------------------------------------------------------------

@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_curve_of_a_linear_model_is_the_hand_computed_one(frames_model, mode, per_frame):
    agent, weight, frames = frames_model
    contributions = weight * frames  # with a zero baseline, each element's exact share of the logit
    units = contributions.flatten(1) if per_frame else contributions.sum(1).flatten(1)
    n = units.shape[1]
    counts = [k * n // 20 for k in range(21)]
    cumulative = torch.cat([torch.zeros(2, 1), units.sort(1, descending=True).values.double().cumsum(1)], 1)
    share = cumulative[:, counts] / cumulative[:, -1:]  # of the logit, carried by the top n_k units
    expected = 1 - share if mode == "deletion" else share
    fractions = torch.tensor(counts, dtype=torch.float64) / n

    result = score(mode, agent, contributions, frames, baseline="zero", per_frame=per_frame)

    assert result.details["fractions"] == pytest.approx(fractions.tolist())
    assert result.details["curve"] == pytest.approx(expected.mean(0).tolist(), abs=1e-4)
    assert result.value == pytest.approx(float(torch.trapezoid(expected, fractions).mean()), abs=1e-4)
    assert result.details["skipped"] == 0 and result.higher_is_better is (mode == "insertion")


@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_true_ordering_beats_random_which_beats_reversed(frames_model, baseline):
    agent, weight, frames = frames_model
    reference = torch.zeros_like(frames) if baseline == "zero" else gaussian_blur(frames, 5.0)
    true = weight * (frames - reference)  # exact contributions relative to this baseline
    orders = {"true": true, "random": torch.randn(true.shape, generator=torch.Generator().manual_seed(1)),
              "reversed": -true}
    deletion = {k: score("deletion", agent, v, frames, baseline=baseline) for k, v in orders.items()}
    insertion = {k: score("insertion", agent, v, frames, baseline=baseline) for k, v in orders.items()}
    assert deletion["true"].value < deletion["random"].value < deletion["reversed"].value
    assert insertion["true"].value > insertion["random"].value > insertion["reversed"].value
    # Greedy removal of the largest contributions is optimal for a linear model at every point.
    for other in ("random", "reversed"):
        assert all(t <= o + 1e-6 for t, o in zip(deletion["true"].details["curve"], deletion[other].details["curve"]))
        assert all(t >= o - 1e-6 for t, o in zip(insertion["true"].details["curve"], insertion[other].details["curve"]))
    if baseline == "zero":  # the region is 11% of the pixels: the right order removes it almost at once
        assert deletion["true"].value < 0.1 and insertion["true"].value > 0.9
        assert 0.35 < deletion["random"].value < 0.65


def test_blur_baseline_needs_the_blur_aware_ordering(frames_model):
    """The baseline is part of the question: w*x is the right order for a zero baseline, not for blur."""
    agent, weight, frames = frames_model
    blur_aware = score("deletion", agent, weight * (frames - gaussian_blur(frames, 5.0)), frames)
    zero_aware = score("deletion", agent, weight * frames, frames)
    assert blur_aware.value < zero_aware.value


def test_vector_features_are_ordered_and_the_curve_may_overshoot():
    agent = linear_agent(torch.tensor([3.0, 0.0, 1.0, -2.0]))
    x = torch.tensor([[1.0, 5.0, 2.0, 1.0]])  # contributions 3, 0, 2, -2; score 3, baseline (zero) 0
    result = score("deletion", agent, torch.tensor([[3.0, 0.0, 2.0, -2.0]]), x)
    assert result.details["fractions"] == [0.0, 0.25, 0.5, 0.75, 1.0]  # steps capped at 4 features
    # remove 3 -> score 0, then 2 -> -2, then 0 -> -2, then -2 -> 0; in units of |3 - 0|
    assert result.details["curve"] == pytest.approx([1.0, 0.0, -2 / 3, -2 / 3, 0.0])
    assert result.details["scores"][0] == pytest.approx([3.0, 0.0, -2.0, -2.0, 0.0])


def test_baseline_scoring_higher_keeps_the_direction():
    """Observation score -3 < baseline 0: the curve runs from -1, and removing the negative evidence
    first (the signed ordering puts it last) is still what "lower is better" rewards correctly."""
    agent = linear_agent(torch.tensor([-1.0, -1.0, 0.0, 1.0]))
    x = torch.tensor([[1.0, 3.0, 1.0, 1.0]])  # contributions -1, -3, 0, 1
    right = score("deletion", agent, torch.tensor([[-1.0, -3.0, 0.0, 1.0]]), x)
    wrong = score("deletion", agent, torch.tensor([[1.0, 3.0, 0.0, -1.0]]), x)
    assert right.details["curve"][0] == pytest.approx(-1.0) and right.details["curve"][-1] == pytest.approx(0.0)
    assert right.value < wrong.value


def test_an_observation_the_baseline_does_not_change_is_skipped():
    agent = linear_agent(torch.tensor([1.0, 2.0, 0.0, 0.0]))
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 5.0, 5.0]])  # the second scores 0 = baseline
    result = score("insertion", agent, torch.ones(2, 4), x)
    assert result.details["skipped"] == 1 and result.details["auc_per_observation"][1] is None
    assert result.value == pytest.approx(result.details["auc_per_observation"][0])
    method = Given(torch.ones(1, 4))
    target = parse_target("action:0", agent)
    outcome = evaluate_metrics(agent, method, target, x[1:], method.explain(agent, target, x[1:]), ["deletion"])
    assert outcome["deletion"].startswith("ValueError: the target scores the same on the observations and on the "
                                          "baseline")


# --- randomization ------------------------------------------------------------------------------

def test_rank_correlation_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (500,), generator=generator).float()  # many ties
    b = a + torch.randint(0, 4, (500,), generator=generator).float()
    assert rank_correlation(a, b) == pytest.approx(stats.spearmanr(a.numpy(), b.numpy())[0], abs=1e-12)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation(torch.ones(5), a[:5]))


def test_cascade_goes_from_the_heads_down(cnn_agent, mlp_agent):
    assert [label for label, _ in cascade(cnn_agent.network)] == [
        "policy+value", "trunk.fc", "trunk.conv3", "trunk.conv2", "trunk.conv1"]
    assert [label for label, _ in cascade(mlp_agent.network)] == ["policy+value", "trunk.fc2", "trunk.fc1"]


@pytest.mark.parametrize("spec", ["action", "value"])
def test_randomization_passes_gradient_saliency_and_fails_a_weight_independent_method(
        cnn_agent, atari_observations, spec):
    target, metric = parse_target(spec, cnn_agent), build_metric("randomization")
    x = atari_observations[:2]
    results = {}
    for method in (build_method("saliency"), FrameEdges()):
        results[method.name] = metric.evaluate(cnn_agent, method, target, x, method.explain(cnn_agent, target, x))
    saliency, edges = results["saliency"], results["frame-edges"]
    assert saliency.details["passed"] is True and saliency.details["correlations"][-1] < 0.4
    assert edges.details["passed"] is False
    assert edges.details["correlations"] == pytest.approx([1.0] * 5)
    assert saliency.value < edges.value - 0.5


def test_a_layer_target_only_changes_once_the_cascade_reaches_its_layer(cnn_agent, atari_observations):
    target, method = parse_target("conv2:3", cnn_agent), build_method("saliency")
    x = atari_observations[:1]
    result = build_metric("randomization").evaluate(cnn_agent, method, target, x, method.explain(cnn_agent, target, x))
    correlations = result.details["correlations"]
    assert result.details["layers"][:4] == ["policy+value", "trunk.fc", "trunk.conv3", "trunk.conv2"]
    assert correlations[:3] == pytest.approx([1.0, 1.0, 1.0])  # the heads, fc and conv3 sit above conv2
    assert correlations[3] < 0.5 and result.details["passed"] is True


def test_randomised_copies_explain_the_action_the_trained_agent_chose(cnn_agent, atari_observations):
    calls = []

    class Recording(Method):
        name = "recording"
        description = "records what it is asked"

        def explain(self, agent, target, observations):
            calls.append((agent.network is cnn_agent.network, target.spec, len(observations)))
            return self._explanation(target, observations.float() * (1 + len(calls)))

    x = atari_observations
    chosen = chosen_actions(cnn_agent, x)
    target = parse_target("action", cnn_agent)
    explanation = Explanation("recording", "action", "attribution", x)
    build_metric("randomization").evaluate(cnn_agent, Recording(), target, x, explanation)
    asked = {spec for on_trained, spec, _ in calls if not on_trained}
    assert asked == {f"action:{cnn_agent.action_meanings[a]}" for a in chosen.tolist()}
    assert sum(n for on_trained, _, n in calls if on_trained) == len(x)


def test_explain_holding_actions_puts_each_rows_action_map_in_place(cnn_agent, atari_observations):
    saliency, x = build_method("saliency"), atari_observations
    actions = torch.tensor([2, 0, 2])
    maps = explain_holding_actions(saliency, cnn_agent, parse_target("action", cnn_agent), x, actions)
    for i, a in enumerate(actions.tolist()):
        expected = saliency.explain(cnn_agent, parse_target(f"action:{a}", cnn_agent), x[i:i + 1]).values[0]
        assert torch.allclose(maps[i], expected)


# --- infidelity and sensitivity -----------------------------------------------------------------

def test_infidelity_is_zero_for_the_exact_gradient_of_a_linear_model():
    weight = torch.tensor([3.0, -1.0, 0.5, 2.0])
    agent, x = linear_agent(weight), torch.tensor([[0.1, -0.5, 0.05, 0.8], [1.0, 0.3, -0.1, -0.2]])
    exact = score("infidelity", agent, weight.expand(2, 4), x)
    wrong = score("infidelity", agent, torch.tensor([[1.0, 1.0, 1.0, 1.0]] * 2), x)
    assert exact.value < 1e-6 * wrong.value and wrong.value > 0
    assert exact.higher_is_better is False and len(exact.details["per_observation"]) == 2


def test_sensitivity_is_zero_for_a_constant_map_and_positive_for_a_cnn(cnn_agent, atari_observations):
    agent, x = linear_agent(torch.tensor([3.0, -1.0, 0.5, 2.0])), torch.tensor([[0.1, -0.5, 0.05, 0.8]])
    gradient = build_method("saliency", {"absolute": "false"})
    target = parse_target("action:0", agent)
    linear = build_metric("sensitivity").evaluate(agent, gradient, target, x, gradient.explain(agent, target, x))
    assert linear.value == pytest.approx(0.0, abs=1e-6)  # the gradient of a linear model never changes
    target = parse_target("action", cnn_agent)
    frames = atari_observations[:1]
    cnn = build_metric("sensitivity", {"samples": "3"}).evaluate(
        cnn_agent, gradient, target, frames, gradient.explain(cnn_agent, target, frames))
    assert 0 < cnn.value < math.inf


@pytest.mark.parametrize("name, options", [("infidelity", {"samples": "4"}), ("sensitivity", {"samples": "3"})])
def test_same_seed_same_value(cnn_agent, atari_observations, name, options):
    saliency, target, x = build_method("saliency"), parse_target("value", cnn_agent), atari_observations[:2]
    explanation = saliency.explain(cnn_agent, target, x)
    values = [build_metric(name, {**options, "seed": seed}).evaluate(cnn_agent, saliency, target, x, explanation).value
              for seed in (0, 0, 1)]
    assert all(math.isfinite(v) for v in values)
    assert values[0] == values[1] and values[0] != values[2]


# --- runtime ------------------------------------------------------------------------------------

def test_runtime_uses_the_callers_timing_or_times_a_rerun(mlp_agent):
    saliency, target, x = build_method("saliency"), parse_target("value", mlp_agent), torch.zeros(4, 4)
    explanation = saliency.explain(mlp_agent, target, x)
    given = evaluate_metrics(mlp_agent, saliency, target, x, explanation, ["runtime"], seconds=2.0)["runtime"]
    assert given.value == 0.5 and given.details["source"] == "measured by the caller"
    assert "seconds" not in explanation.extras  # the caller's explanation is left alone
    rerun = evaluate_metrics(mlp_agent, saliency, target, x, explanation, ["runtime"])["runtime"]
    assert rerun.details["source"] == "timed re-run" and 0 < rerun.value < 1


# --- registry and evaluate_metrics --------------------------------------------------------------

class MeanAbs(Metric):
    """A throwaway metric: the mean |attribution|."""

    name = "mean-abs"
    description = "mean absolute attribution"
    higher_is_better = None

    @dataclass
    class Options:
        scale: float = 1.0

    def evaluate(self, agent, method, target, observations, explanation):
        return self._result(self.options.scale * explanation.values.abs().mean(), observations=len(observations))


class Throwaway:
    @staticmethod
    @hookimpl
    def register_metrics(register):
        register(MeanAbs)


def test_builtins_are_registered_by_the_metrics_plugin():
    assert BUILTINS <= set(registered_metrics())
    assert {metric_plugins()[name] for name in BUILTINS} == {"metrics"}


def test_a_plugin_adds_a_metric(registered, mlp_agent):
    registered(Throwaway, "throwaway-metric")
    assert get_metric("mean-abs") is MeanAbs and metric_plugins()["mean-abs"] == "throwaway-metric"
    saliency, target, x = build_method("saliency"), parse_target("value", mlp_agent), torch.ones(2, 4)
    explanation = saliency.explain(mlp_agent, target, x)
    result = evaluate_metrics(mlp_agent, saliency, target, x, explanation, ["mean-abs"],
                              options={"mean-abs": {"scale": "2"}})["mean-abs"]
    assert result.value == pytest.approx(2 * float(explanation.values.abs().mean()))
    assert result.to_dict() == {"metric": "mean-abs", "value": result.value, "higher_is_better": None,
                                "details": {"observations": 2}}


def test_duplicate_metric_names_both_plugins_and_keeps_the_first(registered, monkeypatch):
    class Clash:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register(type("FakeDeletion", (MeanAbs,), {"name": "deletion"}))

    registered(Clash, "clasher")
    with pytest.warns(PluginLoadWarning, match="'deletion' is registered by both plugin") as caught:
        assert registered_metrics()["deletion"].__name__ != "FakeDeletion"  # the first one stays
    assert "'metrics'" in str(caught[0].message) and "'clasher'" in str(caught[0].message)
    monkeypatch.setenv(STRICT_ENV, "1")  # plugin authors can make it fatal
    with pytest.raises(DuplicateMetricError, match="'clasher'"):
        registered_metrics()


def test_invalid_metric_class_is_refused(registered):
    class Bad:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            register(type("Odd", (MeanAbs,), {"applies_to": {"pictures"}}))

    registered(Bad, "bad-metric")
    with pytest.raises(TypeError, match="plugin 'bad-metric' registered an invalid metric .* applies_to"):
        registered_metrics()


def test_unknown_metric_suggests_close_names():
    with pytest.raises(UnknownMetricError) as error:
        get_metric("deletoin")
    assert isinstance(error.value, KeyError)
    assert str(error.value).startswith("unknown metric 'deletoin'; did you mean deletion?")
    with pytest.raises(ValueError, match="unknown option 'stpes' for metric deletion; options: steps"):
        build_metric("deletion", {"stpes": "3"})
    with pytest.raises(ValueError, match="option deletion.steps: expected int"):
        build_metric("deletion", {"steps": "many"})


def test_one_failing_or_contract_breaking_metric_does_not_stop_the_others(registered, cnn_agent, atari_observations):
    class Broken(MeanAbs):
        name = "broken"

        def evaluate(self, agent, method, target, observations, explanation):
            raise RuntimeError("boom\nsecond line")

    class Vandal(MeanAbs):
        name = "vandal"

        def evaluate(self, agent, method, target, observations, explanation):
            with torch.no_grad():
                agent.network.trunk.conv1.weight.mul_(2)
            agent.network.trunk.conv3.register_forward_hook(lambda *args: None)
            return super().evaluate(agent, method, target, observations, explanation)

    class Plugin:
        @staticmethod
        @hookimpl
        def register_metrics(register):
            for metric in (Broken, Vandal, MeanAbs):
                register(metric)

    registered(Plugin, "misbehaving")
    weights = {k: v.clone() for k, v in cnn_agent.network.state_dict().items()}
    saliency, target, x = build_method("saliency"), parse_target("action", cnn_agent), atari_observations[:1]
    results = evaluate_metrics(cnn_agent, saliency, target, x, saliency.explain(cnn_agent, target, x),
                               ["broken", "vandal", "mean-abs"])
    assert results["broken"] == "RuntimeError: boom"
    assert results["vandal"].startswith("ContractError: the metric changed weights trunk.conv1.weight")
    assert "left 1 torch forward hook on trunk.conv3" in results["vandal"]
    assert isinstance(results["mean-abs"], MetricResult)
    state = cnn_agent.network.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    assert not cnn_agent.network.trunk.conv3._forward_hooks
    with pytest.raises(UnknownMetricError):  # a typo is the caller's error: nothing runs
        evaluate_metrics(cnn_agent, saliency, target, x, None, ["mean-abs", "nope"])


def test_synthesis_methods_get_only_the_metrics_that_apply(mlp_agent):
    optim, target = build_method("optim", {"steps": "2"}), parse_target("value", mlp_agent)
    x = torch.zeros(1, 4)
    results = evaluate_metrics(mlp_agent, optim, target, x, optim.explain(mlp_agent, target, x),
                               ["deletion", "runtime"], seconds=0.5)
    assert results["deletion"] == "NotApplicableError: metric deletion scores attribution methods, not synthesis"
    assert results["runtime"].value == 0.5
