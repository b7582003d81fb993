"""Greydanus perturbation saliency: the batched method equals the plain loop, and finds the region
a hand-built model looks at."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interpret_rl.agent import Agent
from interpret_rl.methods import build_method
from interpret_rl.targets import parse_target
from interpret_rl_plugins.perturbation import gaussian_blur, mask_grid, perturbation_saliency_loop, upsample_scores


def batched(agent, spec, observations, **options):
    method = build_method("perturbation", {k: str(v) for k, v in options.items()})
    return method.explain(agent, parse_target(spec, agent), observations).values


def assert_maps_close(ours, reference):
    assert reference.abs().max() > 0
    torch.testing.assert_close(ours, reference, rtol=1e-3, atol=1e-4 * float(reference.abs().max()))


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["action", "value", "conv3:5"])
def test_batched_equals_loop_default_grid(cnn_agent, atari_observations, spec):
    obs = atari_observations[:1]
    reference = perturbation_saliency_loop(cnn_agent, parse_target(spec, cnn_agent), obs)
    assert_maps_close(batched(cnn_agent, spec, obs, chunk=100), reference)  # chunks of 100 split the 289 masks


@pytest.mark.slow
def test_batched_equals_loop_per_frame(cnn_agent, atari_observations):
    target = parse_target("action:1", cnn_agent)
    ours = batched(cnn_agent, "action:1", atari_observations[:2], stride=12, radius=4, per_frame="true")
    reference = perturbation_saliency_loop(cnn_agent, target, atari_observations[:2], stride=12, radius=4,
                                           per_frame=True)
    assert_maps_close(ours, reference)
    assert not torch.allclose(ours[:, 0], ours[:, 3], rtol=0.1, atol=0)  # really one map per frame


@pytest.mark.parametrize("baseline", ["zero", "mean"])
def test_batched_equals_loop_vectors(mlp_agent, baseline):
    obs = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    target = parse_target("action", mlp_agent)
    assert_maps_close(batched(mlp_agent, "action", obs, baseline=baseline),
                      perturbation_saliency_loop(mlp_agent, target, obs, baseline=baseline))


def test_vector_scores_by_hand(mlp_agent):
    obs = torch.tensor([[0.5, -1.0, 0.2, 0.7]])
    with torch.no_grad():
        f0 = mlp_agent.network(obs)[1]
        expected = torch.stack([0.5 * (f0 - mlp_agent.network(obs * (torch.arange(4) != j))[1]) ** 2
                                for j in range(4)], 1)
    torch.testing.assert_close(batched(mlp_agent, "value", obs), expected)


class RegionNet(nn.Module):
    """The value reads a textured patch at rows 50..59, cols 20..29 of the newest frame, nothing else."""

    def __init__(self):
        super().__init__()
        weights = torch.zeros(84, 84)
        weights[50:60, 20:30] = 1.0
        self.register_buffer("weights", weights)
        self.policy = nn.Identity()

    def forward(self, obs):
        frame = obs.float()[:, -1] / 255
        value = (frame * self.weights).pow(2).sum((1, 2))  # blurring texture lowers the sum of squares
        return torch.zeros(len(obs), 2), value


def test_finds_the_region_the_model_reads():
    agent = Agent(network=RegionNet(), env_id="x", env_settings={}, architecture="region", architecture_args={},
                  observation_space={"shape": [4, 84, 84], "low": [0.0], "high": [255.0]},
                  action_space={"n": 2}, action_meanings=["A", "B"])
    obs = torch.randint(0, 256, (1, 4, 84, 84), generator=torch.Generator().manual_seed(0)).float()
    saliency = batched(agent, "value", obs)[0, -1]
    y, x = divmod(int(saliency.argmax()), 84)
    assert 50 <= y < 60 and 20 <= x < 30
    inside, outside = saliency[50:60, 20:30].mean(), saliency[:, 50:].mean()
    assert inside > 100 * outside
    per_frame = batched(agent, "value", obs, per_frame="true")[0]
    assert per_frame[:3].abs().max() == 0 and per_frame[3].max() > 0  # only the newest frame matters


def test_upsample_puts_scores_on_their_centres():
    coarse = torch.arange(17 * 17, dtype=torch.float32).view(17, 17)
    full = upsample_scores(coarse, 5, (84, 84))
    assert full.shape == (84, 84)
    torch.testing.assert_close(full[::5, ::5], coarse)
    torch.testing.assert_close(full[83, 83], coarse[16, 16])


def test_masks_and_blur():
    masks = mask_grid(84, 84, 5, 5.0)
    assert masks.shape == (17, 17, 84, 84)
    assert masks[3, 4, 15, 20] == 1.0 and masks[3, 4].max() == 1.0
    flat = torch.full((2, 4, 84, 84), 7.0)
    torch.testing.assert_close(gaussian_blur(flat, 3.0), flat)
    noisy = torch.rand(1, 1, 84, 84, generator=torch.Generator().manual_seed(0))
    assert gaussian_blur(noisy, 3.0).std() < noisy.std() / 3
