"""Metrics: deletion/insertion on a linear model whose best ordering is known, the randomization
check separating weight-dependent from weight-independent methods, captum's infidelity and
sensitivity, run time, and the metric registry (``register_metrics``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from interpret_rl.agent import Agent
from interpret_rl.blur import gaussian_blur
from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Explanation, Method, build_method
from interpret_rl.metrics import (
    Metric,
    MetricResult,
    build_metric,
    evaluate_metrics,
    explain_holding_actions,
    get_metric,
    metric_plugins,
    registered_metrics,
)
from interpret_rl.names import DuplicateNameError, UnknownNameError
from interpret_rl.plugin_manager import STRICT_ENV, PluginLoadWarning
from interpret_rl.targets import chosen_actions, parse_target
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
        return self.explanation(target, self.values)


class FrameEdges(Method):
    """|horizontal difference| of the observation: looks plausible, never reads the weights."""

    name = "frame-edges"
    description = "edge detector of the frame"

    def explain(self, agent, target, observations):
        x = observations.detach().float()
        edges = torch.zeros_like(x)
        edges[..., 1:] = (x[..., 1:] - x[..., :-1]).abs()
        return self.explanation(target, edges)


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
    areas = torch.trapezoid(expected, fractions)
    assert result.value == pytest.approx(float(areas.mean()), abs=1e-4)
    assert result.per_observation == pytest.approx(areas.tolist(), abs=1e-4)
    assert result.details["undefined"] == {} and result.details["clamped_share"] == 0
    assert result.higher_is_better is (mode == "insertion")


@pytest.fixture
def ball_model():
    """A linear model that reads a 4x4 patch of the newest frame, where a bright object sits on a
    dim noisy background, on eight observations (enough for a bootstrap interval). Blurring moves
    the object's light off the patch, so the blur baseline has a clear gap to the observation."""
    generator = torch.Generator().manual_seed(3)
    weight = torch.zeros(4, 84, 84)
    weight[3, 40:44, 40:44] = torch.linspace(0.5, 1.0, 16).view(4, 4)
    frames = torch.randint(0, 30, (8, 4, 84, 84), generator=generator).float()
    frames[:, 3, 40:44, 40:44] = torch.randint(150, 256, (8, 4, 4), generator=generator).float()
    return linear_agent(weight), weight, frames


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["zero", "blur"])
def test_oracle_beats_random_at_chance_which_beats_reversed(ball_model, baseline):
    """On a linear model the exact contributions are the oracle order; a random map must land on
    the chance level within its own interval (0.5 on a linear model), a reversed map is worst."""
    agent, weight, frames = ball_model
    reference = torch.zeros_like(frames) if baseline == "zero" else gaussian_blur(frames, 5.0)
    oracle = weight * (frames - reference)  # exact contributions relative to this baseline
    maps = {"oracle": oracle, "random": torch.rand(oracle.shape, generator=torch.Generator().manual_seed(1)),
            "reversed": -oracle}
    for mode, better in (("deletion", -1), ("insertion", 1)):
        results = {k: score(mode, agent, v, frames, baseline=baseline, chance_orders=8) for k, v in maps.items()}
        values = {k: better * r.value for k, r in results.items()}
        assert values["oracle"] > values["random"] > values["reversed"], (mode, values)
        assert all(0 <= r.value <= 1 and r.details["undefined"] == {} for r in results.values())
        chance, (low, high) = results["random"].details["chance"]["value"], results["random"].interval
        assert low <= chance <= high, (mode, chance, results["random"].interval)
        assert low <= 0.5 <= high and chance == pytest.approx(0.5, abs=0.02)
        # the intervals separate the oracle from chance: the metric can tell them apart on 8 frames
        oracle_low, oracle_high = results["oracle"].interval
        assert (oracle_high < chance) if mode == "deletion" else (oracle_low > chance)
        # Greedy removal of the largest contributions is optimal for a linear model at every point.
        for other in ("random", "reversed"):
            assert all(better * (t - o) >= -1e-6 for t, o in zip(results["oracle"].details["curve"],
                                                                 results[other].details["curve"]))
        if mode == "deletion":  # the patch is 0.06 % of the pixels: the oracle removes it at once
            assert results["oracle"].value < 0.05 and results["reversed"].value > 0.95


def test_a_map_that_tells_no_unit_apart_scores_at_chance():
    """An all-zero or constant map carries no order; ties go in a seeded random order, so it lands
    at chance (the object sits at index 0, where index order would have scored it perfect)."""
    generator = torch.Generator().manual_seed(4)
    weight = torch.zeros(4, 84, 84)
    weight[3, 0:4, 0:4] = 1.0
    frames = torch.randint(0, 30, (8, 4, 84, 84), generator=generator).float()
    frames[:, 3, 0:4, 0:4] = 200.0
    agent = linear_agent(weight)
    for values in (torch.zeros_like(frames), torch.full_like(frames, 0.3)):
        result = score("deletion", agent, values, frames, baseline="zero", chance_orders=8)
        chance, (low, high) = result.details["chance"]["value"], result.interval
        assert low <= chance <= high and result.value > 0.2, (result.value, result.interval, chance)
        again = score("deletion", agent, values, frames, baseline="zero", chance_orders=8)
        assert again.value == result.value  # seeded: deterministic


def test_which_observations_are_undefined_does_not_depend_on_the_map():
    """Ten features worth +1, ten worth -1 and one worth 0.6 (the whole gap). A map that removes the
    +1s first swings the score by 10, far beyond what random orders reach; whether the
    observation is defined must not depend on that, or methods would be scored on different
    observations."""
    agent = linear_agent(torch.tensor([1.0] * 10 + [-1.0] * 10 + [0.6]))
    x = torch.ones(1, 21)
    positives_first = torch.tensor([[1.0] * 10 + [-1.0] * 10 + [0.0]])
    noise = torch.rand(1, 21, generator=torch.Generator().manual_seed(2))
    for mode in ("deletion", "insertion"):
        results = [score(mode, agent, m, x, baseline="zero") for m in (positives_first, noise)]
        assert results[0].details["undefined"] == results[1].details["undefined"] == {}
        curve = results[0].details["scores"][0]
        assert max(curve) - min(curve) > 9  # the map's own curve swings ten times the gap


def test_a_gap_tiny_next_to_the_random_order_swings_is_undefined():
    """Score 1 on the observation, 0.95 on the baseline, but removing random features swings it by
    10 either way: normalising by 0.05 would blow the curve up 20 times."""
    agent = linear_agent(torch.tensor([10.0, -10.0, 0.05, 0.0]))
    x = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    method, target = Given(torch.tensor([[1.0, 2.0, 3.0, 4.0]])), parse_target("action:0", agent)
    outcome = evaluate_metrics(agent, method, target, x, method.explain(agent, target, x), ["insertion"],
                               {"insertion": {"baseline": "zero"}})
    assert "under min_gap=0.1 of the score's range on random-order curves" in outcome["insertion"]


def test_a_curve_that_overshoots_is_clamped_and_the_raw_area_kept():
    agent = linear_agent(torch.tensor([3.0, 0.0, 1.0, -2.0]))
    x = torch.tensor([[1.0, 5.0, 2.0, 1.0]])  # contributions 3, 0, 2, -2; score 3, baseline (zero) 0
    result = score("deletion", agent, torch.tensor([[3.0, 0.0, 2.0, -2.0]]), x)
    assert result.details["fractions"] == [0.0, 0.25, 0.5, 0.75, 1.0]  # steps capped at 4 features
    # remove 3 -> score 0, then 2 -> -2, then 0 -> -2, then -2 -> 0; in units of the gap 3 - 0
    assert result.details["scores"][0] == pytest.approx([3.0, 0.0, -2.0, -2.0, 0.0])
    assert result.details["curve"] == pytest.approx([1.0, 0.0, 0.0, 0.0, 0.0])
    assert result.details["clamped_share"] == pytest.approx(2 / 5)
    assert result.details["raw_areas"] == pytest.approx([0.25 * (0.5 - 1 / 3 - 2 / 3 - 1 / 3)])
    assert result.value == pytest.approx(0.125) and result.interval is None  # one observation: no interval


@given(weights=arrays(np.float32, 6, elements=st.floats(-3, 3, width=32)),
       rows=arrays(np.float32, (3, 6), elements=st.floats(-3, 3, width=32)),
       attributions=arrays(np.float32, (3, 6), elements=st.floats(-1, 1, width=32)),
       mode=st.sampled_from(["deletion", "insertion"]))
@settings(max_examples=40, deadline=None)
def test_every_area_and_its_interval_stay_in_0_1(weights, rows, attributions, mode):
    """Whatever the model, the map and the observations: areas in [0, 1] or undefined, never a division by ~0."""
    agent = linear_agent(torch.from_numpy(weights))
    try:
        result = score(mode, agent, torch.from_numpy(attributions), torch.from_numpy(rows))
    except ValueError as err:
        assert "undefined on every observation" in str(err)
        return
    defined = [v for v in result.per_observation if v is not None]
    assert defined and all(0 <= v <= 1 for v in defined) and 0 <= result.value <= 1
    assert len(defined) + len(result.details["undefined"]) == 3
    if result.interval is not None:
        assert 0 <= result.interval[0] <= result.value <= result.interval[1] <= 1


def test_a_baseline_scoring_as_high_or_a_tiny_gap_is_undefined_and_said_why():
    agent = linear_agent(torch.tensor([-1.0, -1.0, 0.0, 1.0]))
    x = torch.tensor([[1.0, 3.0, 1.0, 1.0],  # score -3 < baseline 0: deleting cannot lower it
                      [0.0, 0.0, 0.0, 2.0],  # score 2 > 0: defined
                      [0.0, 0.0, 0.0, 0.0]])  # score 0 = baseline
    result = score("deletion", agent, torch.tensor([[0.0, 0.0, 0.0, 1.0]]).expand(3, 4), x)
    assert set(result.details["undefined"]) == {"0", "2"} and "not lower" in result.details["undefined"]["0"]
    assert result.per_observation[0] is None and result.per_observation[2] is None
    assert result.value == pytest.approx(result.per_observation[1])
    offset = linear_agent(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    offset.network.policy.bias = nn.Parameter(torch.tensor([100.0, 0.0]))  # scores 100.5 vs 100 on the baseline
    tiny = torch.tensor([[0.5, 1.0, 0.0, 0.0]])
    method, target = Given(torch.ones(1, 4)), parse_target("action:0", offset)
    outcome = evaluate_metrics(offset, method, target, tiny, method.explain(offset, target, tiny), ["deletion"],
                               {"deletion": {"chance_orders": "0"}})
    assert outcome["deletion"].startswith("ValueError: undefined on every observation (gap 0.5 between "
                                          "observation (100.5) and baseline (100) is under min_gap=0.1 of the score")
    loose = score("deletion", offset, torch.ones(1, 4), tiny, min_gap=0.001, chance_orders=0)
    assert loose.details["undefined"] == {} and 0 <= loose.value <= 1


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
    assert saliency.details["top"] < 0.5 and saliency.details["area"] < 0.5
    assert edges.details["passed"] is False
    assert edges.details["correlations"] == pytest.approx([1.0] * 5)
    assert edges.value == pytest.approx(1.0) and edges.details["top"] == pytest.approx(1.0)
    assert saliency.value < edges.value - 0.5
    # the verdict is read off the numbers it shows; the value is the area, with its interval
    assert saliency.details["verdict"] == {"statistics": {"area": saliency.value, "top": saliency.details["top"]},
                                           "below": 0.5}
    assert saliency.value == pytest.approx(sum(saliency.details["correlations"]) / 5)
    low, high = saliency.interval
    assert low <= saliency.value <= high


def test_randomization_fails_a_map_that_survives_the_top_layers_even_if_the_bottom_breaks_it(
        cnn_agent, atari_observations):
    """Adebayo et al.'s point: the top layers decide. A map that ignores the heads and fc and only
    changes once conv1 is randomised (guided backprop's pattern) passed the old last-step verdict."""

    class BottomOnly(Method):
        name = "bottom-only"
        description = "|conv1's response|, summed: ignores every layer above conv1"

        def explain(self, agent, target, observations):
            conv1 = agent.network.trunk[0]
            x = observations.detach().float()
            with torch.no_grad():
                response = conv1(agent.network.preprocess(x)).abs().sum(1, keepdim=True)
            return self.explanation(target, torch.nn.functional.interpolate(response, x.shape[2:]).expand_as(x))

    target, x = parse_target("action", cnn_agent), atari_observations[:2]
    method = BottomOnly()
    result = build_metric("randomization").evaluate(cnn_agent, method, target, x, method.explain(cnn_agent, target, x))
    correlations = result.details["correlations"]
    assert correlations[:4] == pytest.approx([1.0] * 4) and correlations[4] < 0.9  # only conv1 changes it
    assert result.details["top"] == pytest.approx(1.0) and result.details["passed"] is False


def test_a_layer_target_only_changes_once_the_cascade_reaches_its_layer(cnn_agent, atari_observations):
    target, method = parse_target("conv2:3", cnn_agent), build_method("saliency")
    x = atari_observations[:1]
    result = build_metric("randomization").evaluate(cnn_agent, method, target, x, method.explain(cnn_agent, target, x))
    correlations = result.details["correlations"]
    # the heads, fc and conv3 sit above conv2: randomising them cannot change its map, so they are left out
    assert result.details["skipped_layers"] == ["policy+value", "trunk.fc", "trunk.conv3"]
    assert result.details["layers"] == ["trunk.conv2", "trunk.conv1"]
    assert correlations[0] < 0.5 and result.details["passed"] is True


def test_randomised_copies_explain_the_action_the_trained_agent_chose(cnn_agent, atari_observations):
    calls = []

    class Recording(Method):
        name = "recording"
        description = "records what it is asked"

        def explain(self, agent, target, observations):
            calls.append((agent.network is cnn_agent.network, target.spec, len(observations)))
            return self.explanation(target, observations.float() * (1 + len(calls)))

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
    assert exact.higher_is_better is False and len(exact.per_observation) == 2


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
        return self.result(self.options.scale * explanation.values.abs().mean(), observations=len(observations))


class Throwaway:
    @staticmethod
    @hookimpl
    def register_metrics(register):
        register(MeanAbs)


def test_builtins_are_registered_by_their_own_plugins():
    assert BUILTINS <= set(registered_metrics())
    assert {name: metric_plugins()[name] for name in BUILTINS} == {
        "deletion": "metrics", "insertion": "metrics", "runtime": "metrics", "randomization": "randomization",
        "infidelity": "captum_metrics", "sensitivity": "captum_metrics"}


def test_a_plugin_adds_a_metric(registered, mlp_agent):
    registered(Throwaway, "throwaway-metric")
    assert get_metric("mean-abs") is MeanAbs and metric_plugins()["mean-abs"] == "throwaway-metric"
    saliency, target, x = build_method("saliency"), parse_target("value", mlp_agent), torch.ones(2, 4)
    explanation = saliency.explain(mlp_agent, target, x)
    result = evaluate_metrics(mlp_agent, saliency, target, x, explanation, ["mean-abs"],
                              options={"mean-abs": {"scale": "2"}})["mean-abs"]
    assert result.value == pytest.approx(2 * float(explanation.values.abs().mean()))
    assert result.to_dict() == {"metric": "mean-abs", "value": result.value, "higher_is_better": None,
                                "interval": None, "confidence": None, "per_observation": None,
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
    with pytest.raises(DuplicateNameError, match="'clasher'"):
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
    with pytest.raises(UnknownNameError) as error:
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
    with pytest.raises(UnknownNameError):  # a typo is the caller's error: nothing runs
        evaluate_metrics(cnn_agent, saliency, target, x, None, ["mean-abs", "nope"])


def test_synthesis_methods_get_only_the_metrics_that_apply(mlp_agent):
    optim, target = build_method("optim", {"steps": "2", "pool": "0"}), parse_target("value", mlp_agent)
    x = torch.zeros(1, 4)
    results = evaluate_metrics(mlp_agent, optim, target, x, optim.explain(mlp_agent, target, x),
                               ["deletion", "runtime"], seconds=0.5)
    assert results["deletion"] == "NotApplicableError: metric deletion scores attribution methods, not synthesis"
    assert results["runtime"].value == 0.5
