"""The control methods (plugins/controls.py) and the judges regression-tested against them: the
``random`` map must come out last or at chance on every faithfulness metric of the bundled
breakout-a2c agent, and guided backprop must be what captum computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interpret_rl.agent import Agent
from interpret_rl.compare import compare
from interpret_rl.methods import build_method
from interpret_rl.registry import load_agent
from interpret_rl.targets import parse_target


class OneHiddenLayer(nn.Module):
    """logit 0 = value = w2 . relu(W1 x): guided backprop has a closed form on it."""

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.hidden = nn.Linear(4, 6, bias=False)
        self.relu = nn.ReLU()
        self.policy = nn.Linear(6, 2, bias=False)
        self.value = nn.Linear(6, 1, bias=False)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.randn(6, 4, generator=generator))
            self.policy.weight.copy_(torch.randn(2, 6, generator=generator))
            self.policy.weight[0] = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0])  # both signs on logit A
            self.value.weight.copy_(self.policy.weight[:1])

    def forward(self, obs):
        features = self.relu(self.hidden(obs.float()))
        return self.policy(features), self.value(features).squeeze(-1)


def small_agent() -> Agent:
    return Agent(network=OneHiddenLayer(), env_id="Toy-v0", env_settings={}, architecture="toy",
                 architecture_args={}, action_space={"type": "Discrete", "n": 2}, action_meanings=["A", "B"],
                 observation_space={"type": "Box", "shape": [4], "dtype": "float32", "low": [None], "high": [None]})


def test_guided_backprop_keeps_only_positive_gradients_through_each_relu():
    agent, x = small_agent(), torch.tensor([[0.5, -1.0, 2.0, 0.3], [-0.2, 0.4, 0.1, -1.5]])
    net = agent.network
    values = build_method("guided-backprop").explain(agent, parse_target("action:A", agent), x).values
    active = (net.hidden(x) > 0).float()  # the forward pass's ReLU gate
    expected = (active * net.policy.weight[0].clamp_min(0)) @ net.hidden.weight  # negative gradients stopped
    torch.testing.assert_close(values, expected.detach())
    plain = (active * net.policy.weight[0]) @ net.hidden.weight
    assert not torch.allclose(values, plain.detach())  # not the plain gradient: the guided rule did something


def test_random_is_seeded_noise_that_ignores_agent_and_observation(cnn_agent, atari_observations):
    def explain(seed, agent, obs, spec="action"):
        method = build_method("random", {"seed": str(seed)})
        return method.explain(agent, parse_target(spec, agent), obs).values

    first = explain(0, cnn_agent, atari_observations)
    assert first.shape == atari_observations.shape and 0 <= float(first.min()) and float(first.max()) < 1
    assert torch.equal(first, explain(0, cnn_agent, atari_observations * 0 + 7, "value"))
    assert not torch.equal(first, explain(1, cnn_agent, atari_observations))


@pytest.mark.slow
def test_random_is_last_or_at_chance_on_every_faithfulness_metric_of_breakout():
    """Three real Breakout states, the chosen action: a judge that ranks noise above a real method
    without noise being at chance is broken. Randomization must fail noise (it ignores the weights)."""
    torch.set_num_threads(1)
    agent = load_agent("breakout-a2c")
    methods = ["saliency", "gradcam", "guided-backprop", "random"]
    result = compare(agent, methods, targets=["action"], frames=3, seed=0,
                     metrics=["deletion", "insertion", "randomization"],
                     metric_options={"deletion": {"steps": "10"}, "insertion": {"steps": "10"}})
    for metric in ("deletion", "insertion"):
        scored = result.cell("random", "action").metrics[metric]
        assert not isinstance(scored, str), scored
        chance = scored.details["chance"]["value"]
        low, high = scored.interval
        others = [result.metric_mean(m, metric) for m in methods if m != "random"]
        last = max(others) <= scored.value if metric == "deletion" else min(others) >= scored.value
        assert last or low <= chance <= high, (metric, scored.value, scored.interval, chance, others)
    randomization = result.cell("random", "action").metrics["randomization"]
    assert randomization.details["passed"] is False and randomization.value == pytest.approx(1.0)
    assert result.metric_ranks("randomization")["random"] == len(methods)
