"""Minimal edits: the budget always holds, and the target flips where the budget allows it."""

from __future__ import annotations

import pytest
import torch

from interpret_rl.agent import Agent
from interpret_rl.methods import build_method
from interpret_rl.targets import parse_target
from interpret_rl_plugins.counterfactual import keep_largest, project_l1


class FirstTwoFeatures(torch.nn.Module):
    """Logits = the first two features: action RIGHT wins exactly when x1 > x0; value = x2."""

    def __init__(self):
        super().__init__()
        self.read = torch.nn.Linear(4, 3, bias=False)
        with torch.no_grad():
            self.read.weight.copy_(torch.eye(3, 4))

    def forward(self, obs):
        out = self.read(obs.float())
        return out[:, :2], out[:, 2]


def linear_agent() -> Agent:
    return Agent(network=FirstTwoFeatures(), env_id="x", env_settings={}, architecture="linear",
                 architecture_args={}, action_space={"n": 2}, action_meanings=["LEFT", "RIGHT"],
                 observation_space={"shape": [4], "dtype": "float32", "low": [-5.0], "high": [5.0]})


def edit(agent, target: str, observations, **options):
    method = build_method("edit", {k: str(v) for k, v in options.items()})
    return method.explain(agent, parse_target(target, agent), observations)


def test_projections_oracle():
    delta = torch.tensor([[3.0, -1.0, 0.5, -4.0]])
    assert keep_largest(delta, 2).tolist() == [[3.0, 0.0, 0.0, -4.0]]
    projected = project_l1(delta, 2.0)  # soft threshold at 2.5: |3|-2.5 + |-4|-2.5 = 2
    torch.testing.assert_close(projected, torch.tensor([[0.5, 0.0, 0.0, -1.5]]))
    assert project_l1(delta, 100.0).equal(delta)


# x0 - x1 = 1: RIGHT needs x1 raised (or x0 lowered) by just over 1, plus the 0.1 margin
@pytest.mark.parametrize("l1, flips", [(0.5, False), (1.0, False), (3.0, True)])
def test_flips_exactly_where_the_budget_allows(l1, flips):
    obs = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.5, -3.0]])
    result = edit(linear_agent(), "action:RIGHT", obs, pixels=1, l1=l1, steps=300)
    changes = result.values
    assert ((changes != 0).sum(1) <= 1).all() and (changes.abs().sum(1) <= l1 + 1e-5).all()
    assert result.extras["flipped"] == [flips, flips]
    assert result.extras["action_before"] == ["LEFT", "LEFT"]
    assert result.extras["action_after"] == (["RIGHT", "RIGHT"] if flips else ["LEFT", "LEFT"])
    if flips:  # minimal: the lead stops at the margin, so the edit is about 1.1, not the whole budget
        assert (changes.abs().sum(1) < 1.3).all()
        assert changes[:, 2:].abs().sum() == 0  # features that feed no logit are left alone


@pytest.mark.slow
def test_frames_stay_whole_grey_levels_within_budget(cnn_agent, atari_observations):
    obs = atari_observations[:2].round()
    with torch.no_grad():
        weakest = cnn_agent.network(obs)[0].argmin(1)
    target = f"action:{int(weakest[0])}"
    for pixels, l1 in ((5, 300.0), (300, 20000.0)):  # the random network's logits lie 0.001 apart: small margin
        result = edit(cnn_agent, target, obs, pixels=pixels, l1=l1, steps=100, lr=0.05, margin=0.001)
        changes, after = result.values, obs + result.values
        assert ((changes != 0).flatten(1).sum(1) <= pixels).all()
        assert (changes.abs().flatten(1).sum(1) <= l1).all()
        assert after.min() >= 0 and after.max() <= 255 and after.equal(after.round())
        assert result.extras["changed"] == (changes != 0).flatten(1).sum(1).tolist()
    assert result.extras["flipped"][0]  # a generous budget flips the random network's weakest action


def test_value_is_raised(cnn_agent, atari_observations):
    result = edit(cnn_agent, "value", atari_observations[:2], pixels=100, l1=5000.0, steps=30)
    assert all(a > b for a, b in zip(result.extras["score_after"], result.extras["score_before"]))


def test_bad_budget_is_refused():
    with pytest.raises(ValueError, match="edit.pixels=-1: must be at least 0"):
        build_method("edit", {"pixels": "-1"})


@pytest.mark.slow
def test_auto_direction_asks_what_would_change_the_choice():
    """The chosen action is lowered (a fixed 'raise' would be an empty edit: it already leads); an
    action is raised where another leads and lowered where it leads itself."""
    obs = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])  # LEFT chosen, RIGHT chosen
    chosen = edit(linear_agent(), "action", obs, pixels=1, l1=5.0, steps=300)
    assert chosen.extras["direction"] == ["lower", "lower"]
    assert chosen.extras["action_after"] == ["RIGHT", "LEFT"] and chosen.extras["flipped"] == [True, True]
    assert (chosen.values.abs().sum(1) > 0).all()
    left = edit(linear_agent(), "action:LEFT", obs, pixels=1, l1=5.0, steps=300)
    assert left.extras["direction"] == ["lower", "raise"]
    assert left.extras["action_after"] == ["RIGHT", "LEFT"]
    fixed = edit(linear_agent(), "action", obs, pixels=1, l1=5.0, steps=300, direction="raise")
    assert fixed.values.abs().sum() == 0  # already leads by more than the margin: nothing to do
