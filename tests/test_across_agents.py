"""Several agents side by side: CKA and rank correlation against oracles, agreement and per-frame
shares on constructed maps, the CLI on two CartPole agents, the report in a browser."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import make_cnn_agent

from interpret_rl.across_agents import compare_agents, penultimate
from interpret_rl.methods import Explanation, Method
from interpret_rl.similarity import cka_chance, cka_interval, linear_cka, rank_correlation


def _random_orthogonal(size: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    return q


def test_cka_of_a_representation_with_itself_is_one():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_ignores_rotation_and_isotropic_scaling_but_not_other_scaling():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(40, 6, generator=generator, dtype=torch.float64)
    y = torch.randn(40, 5, generator=generator, dtype=torch.float64)
    q6, q5 = _random_orthogonal(6, generator), _random_orthogonal(5, generator)
    assert linear_cka(x, 3.5 * x @ q6) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(x @ q6 * 0.2, y @ q5 * 7.0) == pytest.approx(linear_cka(x, y), abs=1e-12)
    stretched = x * torch.tensor([10.0, 1, 1, 1, 1, 1], dtype=torch.float64)  # anisotropic: not the same
    assert linear_cka(x, stretched) < 0.9


def test_cka_hand_computed_examples():
    # one feature each: CKA is the squared Pearson correlation; x = 1, 2, 3 and y = 1, 3, 2 have r = 0.5
    assert linear_cka(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1.0], [3.0], [2.0]])) == pytest.approx(0.25)
    # X'X = diag(2, 2) (norm 2 sqrt 2), Y'Y = 2, Y'X = (2, 0): CKA = 4 / (2 sqrt 2 * 2) = 1 / sqrt 2
    x = torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    y = torch.tensor([[1.0], [-1], [0], [0]])
    assert linear_cka(x, y) == pytest.approx(1 / math.sqrt(2))


def test_cka_through_gram_matrices_equals_the_feature_space_formula():
    generator = torch.Generator().manual_seed(5)
    x, y = torch.randn(10, 30, generator=generator, dtype=torch.float64), torch.randn(10, 7, generator=generator,
                                                                                       dtype=torch.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)  # eq. 4 of Kornblith et al., written out
    expected = (yc.T @ xc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert linear_cka(x, y) == pytest.approx(float(expected), rel=1e-10)


def test_cka_of_independent_features_is_near_zero_with_many_samples_and_its_chance_level_says_so():
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(20_000, 5, generator=generator), torch.randn(20_000, 5, generator=generator)
    assert linear_cka(x, y) < 0.01
    # few samples, many features: unrelated representations look alike, which the shuffled level exposes
    wide_x, wide_y = torch.randn(20, 500, generator=generator), torch.randn(20, 500, generator=generator)
    assert linear_cka(wide_x, wide_y) > 0.5
    assert cka_chance(wide_x, wide_y) == pytest.approx(linear_cka(wide_x, wide_y), abs=0.05)
    assert math.isnan(linear_cka(torch.ones(5, 3), wide_x[:5]))


def test_cka_jackknife_interval_holds_the_value_and_narrows_with_more_inputs():
    generator = torch.Generator().manual_seed(6)
    widths = []
    for n in (20, 200):
        x = torch.randn(n, 8, generator=generator, dtype=torch.float64)
        y = x[:, :4] + torch.randn(n, 4, generator=generator, dtype=torch.float64)  # related, not equal
        low, high = cka_interval(x, y)
        assert low < linear_cka(x, y) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    assert cka_interval(x, 2 * x) == pytest.approx((1.0, 1.0))
    assert cka_interval(x[:2], y[:2]) is None


def test_rank_correlation_of_monotone_and_reversed_maps():
    a = torch.rand(4, 84, 84, generator=torch.Generator().manual_seed(3))
    assert rank_correlation(a, a ** 3 + 2) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)


class Constructed(Method):
    """Hands back a map chosen per agent: the test decides what each agent 'looks at'."""

    name = "constructed"
    description = "a map given by the test"
    kind = "attribution"

    @dataclass
    class Options:
        pass

    def __init__(self, maps: dict[str, torch.Tensor], fails: frozenset = frozenset(), value_reversed: bool = False):
        super().__init__()
        self.maps, self.fails, self.value_reversed = maps, fails, value_reversed

    def explain(self, agent, target, observations):
        if (agent.name, target.spec) in self.fails:
            raise RuntimeError(f"no map for {agent.name} {target.spec}")
        values = self.maps[agent.name].clone()
        if self.value_reversed and target.spec == "value":
            values = values.max() - values
        return Explanation(self.name, target.spec, self.kind, values, {})


def _named_agents(*names):
    agents = []
    for seed, name in enumerate(names):
        agent = make_cnn_agent(seed)
        agent.name = name
        agents.append(agent)
    return agents


def test_agreement_and_frame_shares_on_constructed_maps(atari_observations):
    base = torch.rand(3, 4, 84, 84, generator=torch.Generator().manual_seed(4))
    frame_mass = torch.tensor([1.0, 1.0, 2.0, 4.0]).view(1, 4, 1, 1)
    maps = {"same-a": base * frame_mass, "same-b": (base * frame_mass) ** 2, "reversed": 1.0 - base}
    agents = _named_agents("same-a", "same-b", "reversed")
    result = compare_agents(agents, [Constructed(maps)], targets=["action", "value"], observations=atari_observations)
    pairs = {tuple(p["agents"]): p for p in result.agreement["constructed"]}
    assert pairs[("same-a", "same-b")]["mean"] == pytest.approx(1.0)  # a monotone function of the same map
    assert pairs[("same-a", "same-b")]["observations"] == 3
    # 1 - base reverses base's ranks within each frame; the frame weights make it only partly reversed
    assert pairs[("same-b", "reversed")]["mean"] < -0.3
    # on mismatched observations the noise is independent, but the frame weights (a layout every
    # observation shares) still agree: the chance level catches exactly that part
    assert 0.1 < pairs[("same-a", "same-b")]["chance"] < 0.9
    unweighted = compare_agents(_named_agents("a", "b"), [Constructed({"a": base, "b": base.sqrt()})],
                                observations=atari_observations).agreement["constructed"][0]
    assert unweighted["mean"] == pytest.approx(1.0) and abs(unweighted["chance"]) < 0.05
    share = result.frame_share["same-a"]["constructed"]
    weighted = (base * frame_mass).double()
    expected = weighted.sum(dim=(2, 3)) / weighted.sum(dim=(1, 2, 3))[:, None]
    assert sum(share["mean"]) == pytest.approx(1.0)
    assert share["mean"] == pytest.approx(expected.mean(0).tolist(), abs=1e-7)  # the maps are float32
    assert share["mean"][3] > share["mean"][2] > share["mean"][0]
    assert result.frame_share["reversed"]["constructed"]["mean"] == pytest.approx([0.25] * 4, abs=0.01)
    assert [p["agents"] for p in result.cka["pairs"]] == [["same-a", "same-b"], ["same-a", "reversed"],
                                                          ["same-b", "reversed"]]


def test_agreement_pairs_the_same_targets_when_a_method_fails_on_some(atari_observations):
    base = torch.rand(3, 4, 84, 84, generator=torch.Generator().manual_seed(7))
    maps = {"a": base, "b": base.sqrt()}  # same ranks on "action"; "value" maps reversed on both agents

    def pair(fails):
        method = Constructed(maps, fails=frozenset(fails), value_reversed=True)
        return compare_agents(_named_agents("a", "b"), [method], targets=["action", "value"],
                              observations=atari_observations).agreement["constructed"][0]

    assert pair([])["mean"] == pytest.approx(1.0)
    assert pair([("b", "value")])["mean"] == pytest.approx(1.0)  # only "action" is left to compare
    # a has only its value map, b only its action map: nothing to set side by side (not a's value
    # map against b's action map, which would read as rho = -1)
    nothing = pair([("a", "action"), ("b", "value")])
    assert nothing["mean"] is None and nothing["observations"] == 0


def test_frame_share_only_for_stacked_atari_frames(atari_observations):
    agents = _named_agents("a", "b")
    agents[1].env_id = agents[0].env_id = "MinAtar/Breakout-v1"  # (C, 10, 10): object channels, not frames
    maps = {"a": torch.rand(3, 4, 84, 84), "b": torch.rand(3, 4, 84, 84)}
    result = compare_agents(agents, [Constructed(maps)], observations=atari_observations)
    assert result.frame_share == {"a": {"constructed": None}, "b": {"constructed": None}}


def test_penultimate_reads_the_heads_input_and_leaves_no_hook(atari_observations):
    agent = make_cnn_agent(0)
    layer, features = penultimate(agent, atari_observations)
    with torch.no_grad():
        expected = agent.network.trunk(agent.network.preprocess(atari_observations))
    assert layer == "input of policy" and torch.allclose(features, expected)
    assert not agent.network.policy._forward_pre_hooks
    agents = _named_agents("a", "b")
    result = compare_agents(agents, ["saliency"], observations=atari_observations)
    cka = result.cka["pairs"][0]
    assert cka["value"] == pytest.approx(linear_cka(penultimate(agents[0], atari_observations)[1],
                                                    penultimate(agents[1], atari_observations)[1]))


def test_agents_of_different_games_are_refused(mlp_agent, cnn_agent):
    with pytest.raises(ValueError, match="share env and observation shape"):
        compare_agents([cnn_agent, mlp_agent], ["saliency"])
    with pytest.raises(ValueError, match="at least two"):
        compare_agents([cnn_agent], ["saliency"])


@pytest.mark.slow  # trains a tiny Q-learner and plays both agents: about 20 s alone, a minute on busy cores
def test_cli_compares_two_cartpole_agents(run, tmp_path):
    trained = run("train", "--algo", "pqn", "--env", "CartPole-v1", "--steps", "1024", "--name", "tiny-q", "--quiet",
                  "--eval-episodes", "0")
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "agents"
    result = run("compare", "--models", "cartpole-a2c,tiny-q", "--methods", "saliency,perturbation", "--frames", "4",
                 "--sample", "start", "--targets", "action,value", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert [a["name"] for a in data["agents"]] == ["cartpole-a2c", "tiny-q"]
    assert [a["algo"] for a in data["agents"]] == ["a2c", "pqn"] and data["agents"][1]["steps"] == 1024
    assert data["observations"]["origins"] == ["cartpole-a2c"] * 2 + ["tiny-q"] * 2
    assert data["cka"]["layer"] == {"cartpole-a2c": "input of policy", "tiny-q": "input of q"}
    assert 0 <= data["cka"]["pairs"][0]["value"] <= 1
    for method in ("saliency", "perturbation"):
        (pair,) = data["agreement"][method]
        assert pair["observations"] == 4 and -1 <= pair["mean"] <= 1
        assert set(data["per_agent"]["tiny-q"]["results"][method]) == {"action", "value"}
    lacking = run("compare", "--models", "cartpole-a2c,tiny-q", "--targets", "q:0", "--out", str(tmp_path / "no"))
    assert lacking.exit_code == 2 and "cartpole-a2c: unknown layer 'q'" in lacking.output  # only the Q-net has q
    page = (out / "report.html").read_text()
    assert "Agreement between agents" in page and "linear CKA" in page and "tiny-q" in page
    again = run("compare", "--models", "cartpole-a2c,tiny-q", "--methods", "saliency", "--targets", "action,value",
                "--observations", str(out / "observations.npz"), "--out", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    rerun = json.loads((tmp_path / "again" / "results.json").read_text())
    assert rerun["agreement"]["saliency"][0]["mean"] == pytest.approx(data["agreement"]["saliency"][0]["mean"])


@pytest.mark.parametrize("args, message", [
    (["--models", "cartpole-a2c"], "at least two agents"),
    (["--models", "cartpole-a2c,breakout-a2c"], "share env and observation shape"),
    (["--models", "cartpole-a2c,cartpole-a2c"], "given more than once"),
    (["--models", "cartpole-a2c,nope"], "unknown model 'nope'"),
    (["--models", "cartpole-a2c,cartpole-a2c", "--model", "cartpole-a2c"], "excludes --model"),
])
def test_cli_refuses_bad_agent_lists_in_one_line(run, args, message):
    result = run("compare", "--methods", "saliency", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_says_which_metrics_and_cka_have_no_value(run, tmp_path):
    from interpret_rl import registry
    from interpret_rl.testing import make_mlp_agent

    other = make_mlp_agent(1)
    registry.save_agent(other, registry.user_models_dir() / "other-cartpole")
    result = run("compare", "--models", "cartpole-a2c,other-cartpole", "--methods", "saliency", "--frames", "2",
                 "--sample", "start", "--metrics", "objects", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    # CartPole has no emulator ground truth: said once for both agents, not left as a silent empty table
    assert "objects: n/a for cartpole-a2c saliency, other-cartpole saliency: NotApplicableError" in result.output
    # two centred states are v and -v in any representation: CKA would be 1 for any two agents
    assert "CKA cartpole-a2c vs other-cartpole: n/a (needs at least 3 states)" in result.output
    (pair,) = json.loads((tmp_path / "out" / "results.json").read_text())["cka"]["pairs"]
    assert pair["value"] is None and pair["observations"] == 2


@pytest.mark.slow
def test_agents_report_opens_in_a_browser(atari_observations, tmp_path):
    pytest.importorskip("PIL")
    from test_report_browser import CHROMIUM, images_in_browser

    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    from interpret_rl.report_agents import write_agents_report

    agents = _named_agents("left", "right")
    comparison = compare_agents(agents, ["saliency", "perturbation"], observations=atari_observations,
                                options={"perturbation": {"stride": "12"}})
    page = write_agents_report(comparison, tmp_path / "report")["html"].read_text()
    images, broken = images_in_browser(page, tmp_path)
    assert images == page.count("<img ") and images == 3 * (1 + 2 * 2)  # rows x (observation + agents x methods)
    assert broken == 0
    assert np.isfinite(comparison.cka["pairs"][0]["value"])
