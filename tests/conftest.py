"""Shared fixtures: small agents with fixed weights, an isolated registry home."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from interpret_rl.agent import Agent
from interpret_rl.networks import MLPActorCritic, NatureCNNActorCritic

torch.set_num_threads(1)  # tests are small; one thread keeps them deterministic and out of each other's way


class ConstantRewardEnv(gym.Env):
    """Reward 1 every step, the same observation every step: only a time limit ends it.

    With correct truncation handling V -> 1 / (1 - gamma); treating the time limit as a terminal
    would teach V ~ the mean of (1 - gamma^k) / (1 - gamma) over the steps left, far lower.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


gym.register("ConstantReward-v0", entry_point=ConstantRewardEnv, max_episode_steps=5)


def make_cnn_agent(seed: int = 0) -> Agent:
    """A Breakout-shaped agent (4x84x84 uint8 input, 4 actions) with seeded random weights."""
    torch.manual_seed(seed)
    network = NatureCNNActorCritic(in_channels=4, n_actions=4)
    return Agent(
        network=network, env_id="ALE/Breakout-v5", env_settings={}, architecture="nature-cnn",
        architecture_args={"in_channels": 4, "n_actions": 4},
        observation_space={"type": "Box", "shape": [4, 84, 84], "dtype": "uint8", "low": [0.0], "high": [255.0]},
        action_space={"type": "Discrete", "n": 4}, action_meanings=["NOOP", "FIRE", "RIGHT", "LEFT"],
        name="test-cnn")


def make_mlp_agent(seed: int = 0) -> Agent:
    """A CartPole-shaped agent (4 floats in, 2 actions) with seeded random weights."""
    torch.manual_seed(seed)
    network = MLPActorCritic(obs_dim=4, n_actions=2)
    high = [4.8, None, 0.41887903, None]
    return Agent(
        network=network, env_id="CartPole-v1", env_settings={}, architecture="mlp",
        architecture_args={"obs_dim": 4, "n_actions": 2},
        observation_space={"type": "Box", "shape": [4], "dtype": "float32",
                           "low": [None if h is None else -h for h in high], "high": high},
        action_space={"type": "Discrete", "n": 2}, action_meanings=["LEFT", "RIGHT"], name="test-mlp")


@pytest.fixture
def cnn_agent() -> Agent:
    return make_cnn_agent()


@pytest.fixture
def mlp_agent() -> Agent:
    return make_mlp_agent()


@pytest.fixture
def atari_observations() -> torch.Tensor:
    """Three frame stacks with a little structure (a bright square moving right), uint8 range."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 40, size=(3, 4, 84, 84)).astype(np.float32)
    for i in range(3):
        for f in range(4):
            x = 10 + 5 * f + 3 * i
            frames[i, f, 40:46, x:x + 6] = 200.0
    return torch.tensor(frames)


@pytest.fixture
def run():
    """Invoke the ``interpret-rl`` CLI in-process: ``run("models")`` -> click's Result."""
    from click.testing import CliRunner

    from interpret_rl.cli import cli

    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def registered():
    """Register throwaway plugins for one test: ``registered(plugin, name)``; unregistered after."""
    from interpret_rl.plugin_manager import get_plugin_manager

    pm, names = get_plugin_manager(), []

    def register(plugin, name):
        pm.register(plugin, name=name)
        names.append(name)

    yield register
    for name in names:
        pm.unregister(name=name)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own registry home, so no test sees or touches ~/.interpret-rl."""
    home = tmp_path / "interpret-rl-home"
    monkeypatch.setenv("INTERPRET_RL_HOME", str(home))
    return home
