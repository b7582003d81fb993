"""Gym environments beyond classic control: one clear line for what cannot run, smoke runs for what can."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

from interpret_rl.envs import MissingDependencyError, UnsupportedSpaceError, make_vector_env

ODD_SPACES = {
    "interpret-rl-test/DictObs-v0": (gym.spaces.Dict({"a": gym.spaces.Box(0, 1, (2,))}), gym.spaces.Discrete(2)),
    "interpret-rl-test/MultiDiscrete-v0": (gym.spaces.Box(0, 1, (2,)), gym.spaces.MultiDiscrete([2, 3])),
    "interpret-rl-test/TupleAct-v0": (gym.spaces.Box(0, 1, (2,)),
                                      gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(2)))),
}


class OddSpaces(gym.Env):
    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


@pytest.fixture(scope="module", autouse=True)
def odd_envs():
    for env_id, (obs, act) in ODD_SPACES.items():
        gym.register(env_id, entry_point=OddSpaces, kwargs={"observation_space": obs, "action_space": act},
                     max_episode_steps=5)
    yield
    for env_id in ODD_SPACES:
        gym.registry.pop(env_id, None)


def one_line_exit_2(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("env_id,space", [("interpret-rl-test/DictObs-v0", "Dict observation space"),
                                          ("interpret-rl-test/MultiDiscrete-v0", "MultiDiscrete[2] action space"),
                                          ("interpret-rl-test/TupleAct-v0", "Tuple[] action space")])
def test_unsupported_spaces_are_one_line_exit_2_and_nothing_written(run, isolated_home, env_id, space):
    one_line_exit_2(run("train", "--env", env_id, "--steps", "100", "--quiet"), env_id, space)
    assert not (isolated_home / "models").exists() or not any((isolated_home / "models").iterdir())
    with pytest.raises(UnsupportedSpaceError):
        make_vector_env(env_id, 1)


@pytest.mark.parametrize("algo", ["pqn", "dqn"])
def test_q_learner_on_continuous_actions_is_refused(run, algo):
    one_line_exit_2(run("train", "--algo", algo, "--env", "Pendulum-v1", "--steps", "100", "--quiet"),
                    "Pendulum-v1", "--algo a2c or ppo")


@pytest.fixture
def without_box2d(monkeypatch):
    """Box2D as if not installed: its import fails, and gymnasium's LunarLander module is re-imported."""
    monkeypatch.setitem(sys.modules, "Box2D", None)
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.box2d")]:
        monkeypatch.delitem(sys.modules, name)


def test_lunar_lander_without_box2d_names_the_extra(run, without_box2d):
    one_line_exit_2(run("train", "--env", "LunarLander-v3", "--steps", "100", "--quiet"),
                    "LunarLander-v3", 'pip install "interpret-rl[box2d]"')
    with pytest.raises(MissingDependencyError, match=r"interpret-rl\[box2d\]"):
        make_vector_env("LunarLander-v3", 1)


def test_minatar_without_the_package_names_the_extra(run, monkeypatch):
    for name in [m for m in sys.modules if m == "minatar" or m.startswith("minatar.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "minatar", None)
    for env_id in [k for k in gym.registry if k.startswith("MinAtar/")]:
        monkeypatch.delitem(gym.registry, env_id)
    one_line_exit_2(run("train", "--env", "MinAtar/Breakout-v1", "--steps", "100", "--quiet"),
                    "MinAtar/Breakout-v1", 'pip install "interpret-rl[minatar]"')


@pytest.mark.slow  # about 35 s on a loaded 2-core machine
def test_lunar_lander_trains_a_little_when_box2d_is_installed():
    pytest.importorskip("Box2D")
    from interpret_rl import a2c

    config = a2c.config_from_preset(None, env_id="LunarLander-v3", num_envs=4, total_steps=2_000,
                                    log_every_steps=10**9)
    result = a2c.train(config)
    assert result.steps == 2_000 and result.agent.n_actions == 4
    assert result.agent.action_meanings == ["NOOP", "FIRE_LEFT", "FIRE_MAIN", "FIRE_RIGHT"]


@pytest.mark.slow  # about 30 s on a loaded 2-core machine, most of it importing minatar's seaborn
def test_minatar_breakout_is_channels_first_floats_and_trains_a_small_cnn():
    pytest.importorskip("minatar")
    from interpret_rl import a2c

    envs = make_vector_env("MinAtar/Breakout-v1", 2)
    obs = envs.reset(seed=0)
    assert obs.shape == (2, 4, 10, 10) and obs.dtype == np.float32 and set(np.unique(obs)) <= {0.0, 1.0}
    assert envs.action_meanings == ["NOOP", "LEFT", "RIGHT"]
    envs.close()
    result = a2c.train(a2c.config_from_preset("minatar", total_steps=800, num_envs=4, log_every_steps=10**9))
    assert result.agent.architecture == "small-cnn" and result.agent.observation_shape == (4, 10, 10)
