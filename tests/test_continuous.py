"""Continuous (Box) actions: the Gaussian policy, its training, its targets and its saved normaliser."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from interpret_rl import a2c, ppo, registry
from interpret_rl.agent import Agent
from interpret_rl.envs import make_vector_env
from interpret_rl.networks import MLPActorCritic, ObservationNormalizer
from interpret_rl.policy import gaussian_entropy, gaussian_log_prob, log_prob_and_entropy, sample_actions
from interpret_rl.targets import TargetError, parse_target, target_scores

TARGET_ENV = "interpret-rl-test/Reach1D-v0"


class Reach1D(gym.Env):
    """One-step episodes: the observation is a point x in [-1, 1], the reward -(action - x)^2;
    the best policy's mean is x itself."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self._x = self.np_random.uniform(-1, 1, size=1).astype(np.float32)
        return self._x.copy(), {}

    def step(self, action):
        reward = -float((np.asarray(action).reshape(-1)[0] - self._x[0]) ** 2)
        return self._x.copy(), reward, True, False, {}


@pytest.fixture(scope="module", autouse=True)
def reach_env():
    gym.register(TARGET_ENV, entry_point=Reach1D, max_episode_steps=1)
    yield
    gym.registry.pop(TARGET_ENV, None)


def gaussian_agent(action_dims: int = 1, seed: int = 0) -> Agent:
    torch.manual_seed(seed)
    network = MLPActorCritic(observation_shape=[3], n_actions=action_dims, continuous=True, normalize_observations=True)
    with torch.no_grad():
        network.log_std.fill_(-0.5)
    return Agent(network=network, env_id="Pendulum-v1", env_settings={}, architecture="mlp",
                 architecture_args={"observation_shape": [3], "n_actions": action_dims, "continuous": True,
                                    "normalize_observations": True},
                 observation_space={"type": "Box", "shape": [3], "dtype": "float32", "low": [-8.0], "high": [8.0]},
                 action_space={"type": "Box", "shape": [action_dims], "dtype": "float32", "low": [-2.0],
                               "high": [2.0]},
                 action_meanings=["TORQUE"] if action_dims == 1 else [str(i) for i in range(action_dims)],
                 name="test-gauss")


def test_gaussian_log_prob_and_entropy_match_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(6, 3, generator=gen), torch.randn(3, generator=gen)
    actions = torch.randn(6, 3, generator=gen) * 3
    oracle = torch.distributions.Normal(mean, log_std.exp())
    assert torch.allclose(gaussian_log_prob(mean, log_std, actions), oracle.log_prob(actions).sum(-1), atol=1e-5)
    assert torch.allclose(gaussian_entropy(log_std, 6), oracle.entropy().sum(-1), atol=1e-5)


def test_categorical_log_prob_and_entropy_match_torch_distributions():
    gen = torch.Generator().manual_seed(1)
    logits, actions = torch.randn(5, 4, generator=gen), torch.tensor([0, 3, 1, 2, 3])
    oracle = torch.distributions.Categorical(logits=logits)
    log_prob, entropy = log_prob_and_entropy(logits, actions)
    assert torch.allclose(log_prob, oracle.log_prob(actions), atol=1e-6)
    assert torch.allclose(entropy, oracle.entropy(), atol=1e-6)


def test_gaussian_samples_have_the_policy_mean_and_std_and_follow_the_seed():
    mean, log_std = torch.tensor([[0.5, -1.0]]).expand(20_000, 2), torch.tensor([0.0, -1.0])
    samples = sample_actions(mean, torch.Generator().manual_seed(3), log_std)
    assert torch.allclose(samples.mean(0), torch.tensor([0.5, -1.0]), atol=0.03)
    assert torch.allclose(samples.std(0), log_std.exp(), atol=0.02)
    assert torch.equal(samples, sample_actions(mean, torch.Generator().manual_seed(3), log_std))


def test_observation_normalizer_matches_numpy_statistics_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2)) for n in (7, 50, 13)]
    norm = ObservationNormalizer((2,))
    for batch in batches:
        norm.update(torch.tensor(batch, dtype=torch.float32))
    data = np.concatenate(batches)
    assert np.allclose(norm.mean.numpy(), data.mean(0), atol=1e-3)
    assert np.allclose(norm.var.numpy(), data.var(0), rtol=1e-3)
    x = torch.tensor(data[:4], dtype=torch.float32)
    assert torch.allclose(norm(x), (x - norm.mean) / norm.var.sqrt(), atol=1e-4)


def test_env_gets_clipped_actions_while_the_learner_keeps_the_sample():
    envs = make_vector_env("Pendulum-v1", 1)
    envs.reset(seed=0)
    state = envs._env.envs[0].unwrapped.state.copy()
    envs.step(np.array([[50.0]], dtype=np.float32))  # far outside [-2, 2]
    after_big = envs._env.envs[0].unwrapped.state.copy()
    envs._env.envs[0].unwrapped.state = state
    envs.step(np.array([[2.0]], dtype=np.float32))
    assert np.allclose(after_big, envs._env.envs[0].unwrapped.state)
    envs.close()


@pytest.mark.slow  # 45-80 s on a loaded 2-core machine (a third of it importing torch's compiler once)
@pytest.mark.parametrize("module", [ppo, a2c])
def test_gaussian_policy_learns_to_reach_its_observation(module):
    """A 1-D task whose best action is the observation: the trained mean follows it."""
    if module is ppo:
        config = ppo.config_from_preset(None, env_id=TARGET_ENV, num_envs=8, n_steps=32, epochs=4,
                                        num_minibatches=4, lr=3e-3, lr_schedule="constant", ent_coef=0.0,
                                        clip_schedule="constant", clip_coef=0.2, total_steps=12_000,
                                        log_every_steps=10**9)
    else:
        config = a2c.config_from_preset(None, env_id=TARGET_ENV, num_envs=16, n_steps=1, optimizer="adam",
                                        lr=3e-3, normalize_advantage=True, total_steps=12_000,
                                        log_every_steps=10**9)
    result = module.train(config)
    agent = result.agent
    assert agent.is_continuous and agent.network.log_std is not None
    xs = np.linspace(-0.9, 0.9, 7, dtype=np.float32)[:, None]
    means = agent.act(xs, deterministic=True)
    assert means.shape == (7, 1)
    assert np.abs(means - xs).max() < 0.25, (means.ravel(), xs.ravel())
    assert result.mean_return > -0.1  # an untrained policy (std 1) scores about -1.3


def test_continuous_agent_saves_and_loads_with_its_normalizer(tmp_path):
    agent = gaussian_agent()
    agent.network.obs_norm.update(torch.randn(100, 3) * 4 + 1)
    path = registry.save_agent(agent, registry.user_models_dir() / "gauss")
    loaded = registry.load_agent(path)
    assert loaded.is_continuous and loaded.n_actions == 1
    obs = torch.randn(5, 3)
    assert torch.equal(loaded.network(obs)[0], agent.network(obs)[0])
    assert torch.equal(loaded.network.obs_norm.mean, agent.network.obs_norm.mean)
    assert torch.equal(loaded.network.log_std, agent.network.log_std)


def test_action_targets_of_a_continuous_agent_are_the_means():
    agent = gaussian_agent(action_dims=2)
    obs = torch.randn(4, 3)
    means, value = agent.network(obs)
    for k in range(2):
        target = parse_target(f"action:{k}", agent)
        assert torch.allclose(target_scores(agent, target, obs), means[:, k])
    assert torch.allclose(target_scores(agent, parse_target("value", agent), obs), value)
    with pytest.raises(TargetError, match="action:0..action:1"):
        parse_target("action", agent)
    one = gaussian_agent(action_dims=1)
    assert parse_target("action", one).spec == "action:TORQUE"
    assert one.describe_action(one.network(obs)[0][0], np.array([2.5]))[0] == "TORQUE=+2.5"


def _method_names() -> list[str]:
    from interpret_rl.methods import registered_methods

    return sorted(registered_methods())


@pytest.mark.parametrize("method", _method_names())
def test_every_method_explains_a_continuous_action_or_says_why_not(method):
    from interpret_rl.methods import NotApplicableError, build_method

    agent = gaussian_agent()
    obs = torch.randn(2, 3)
    options = {"optim": {"steps": "4", "pool": "0"}, "edit": {"steps": "5"}}.get(method)
    try:
        explanation = build_method(method, options).explain(agent, parse_target("action:0", agent), obs)
    except NotApplicableError as err:
        assert len(str(err).splitlines()) == 1 and str(err)
        return
    assert torch.isfinite(explanation.values).all()
