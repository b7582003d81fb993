"""Shared fixtures: small agents with fixed weights, an isolated registry home."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from interpret_rl.agent import Agent
from interpret_rl.testing import atari_observations as sample_observations
from interpret_rl.testing import make_cnn_agent, make_mlp_agent  # noqa: F401 (tests import them from here)

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


@pytest.fixture
def cnn_agent() -> Agent:
    return make_cnn_agent()


@pytest.fixture
def mlp_agent() -> Agent:
    return make_mlp_agent()


@pytest.fixture
def atari_observations() -> torch.Tensor:
    """Three frame stacks with a little structure (a bright square moving right), uint8 range."""
    return sample_observations()


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
