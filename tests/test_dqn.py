"""DQN: Double DQN targets by hand, the replay ring, what enters the buffer, the target network."""

from __future__ import annotations

import json

import pytest
import torch

from interpret_rl import rollout
from interpret_rl.dqn import (
    DQN,
    DQNConfig,
    ReplayBuffer,
    config_from_preset,
    double_q_targets,
    replay_transitions,
    train,
)
from interpret_rl.networks import MLPQNetwork


def test_double_q_targets_value_the_online_choice_with_the_target_network():
    rewards, dones = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    online = torch.tensor([[1.0, 5.0], [3.0, 0.0]])  # online picks action 1, then action 0
    target = torch.tensor([[4.0, 2.0], [7.0, 9.0]])
    # sample 0: 1 + .5 * target[0, 1] = 2; sample 1 ended its episode: 2
    torch.testing.assert_close(double_q_targets(rewards, dones, online, target, 0.5), torch.tensor([2.0, 2.0]))
    # plain DQN takes the target network's own maximum: 1 + .5 * 4 = 3
    torch.testing.assert_close(double_q_targets(rewards, dones, online, target, 0.5, double_q=False),
                               torch.tensor([3.0, 2.0]))


def test_replay_buffer_overwrites_the_oldest_transitions():
    buffer = ReplayBuffer(4, (1,), torch.float32, "cpu")
    for start in (0, 3):
        values = torch.arange(start, start + 3, dtype=torch.float32)
        buffer.add(values[:, None], values.long(), values, torch.zeros(3), values[:, None] + 100)
    assert buffer.size == 4 and buffer.position == 2
    assert sorted(buffer.obs.squeeze(1).tolist()) == [2.0, 3.0, 4.0, 5.0]  # 0 and 1 overwritten
    torch.testing.assert_close(buffer.next_obs, buffer.obs + 100)


def _batch(T=3, N=2):
    batch = rollout.Batch.empty(T, N, (1,), torch.float32, "cpu")
    batch.obs[:] = torch.arange(T * N, dtype=torch.float32).reshape(T, N, 1)
    batch.next_obs = torch.arange(T * N, (T + 1) * N, dtype=torch.float32).reshape(N, 1)
    batch.mask[:] = True
    return batch


def test_buffer_pairs_each_observation_with_the_next_one_and_skips_forced_steps():
    batch = _batch()
    batch.mask[1, 0] = False  # observation 2: a forced FIRE step
    torch.manual_seed(0)
    network = MLPQNetwork((1,), 2, hidden=[4])
    learner = rollout.Learner(network, torch.optim.Adam(network.parameters()), rollout.Ranks(), 10.0)
    learner.steps = 6
    dqn = DQN(DQNConfig(learning_starts=100, num_envs=2, n_steps=3))
    stats = dqn.update(learner, batch, 0.0, torch.Generator().manual_seed(0))
    assert "value_loss" not in stats  # still before learning_starts
    obs = dqn.buffer.obs[:dqn.buffer.size].squeeze(1).tolist()
    assert sorted(obs) == [0.0, 1.0, 3.0, 4.0, 5.0]
    # N = 2 envs side by side: observation i is followed by observation i + 2
    torch.testing.assert_close(dqn.buffer.next_obs[:dqn.buffer.size], dqn.buffer.obs[:dqn.buffer.size] + 2)


def test_target_network_is_frozen_between_refreshes():
    torch.manual_seed(0)
    network = MLPQNetwork((1,), 2, hidden=[4])
    learner = rollout.Learner(network, torch.optim.Adam(network.parameters(), lr=0.1), rollout.Ranks(), 10.0)
    dqn = DQN(DQNConfig(learning_starts=0, batch_size=4, gradient_steps=5, target_update_steps=12,
                        num_envs=2, n_steps=3))
    generator = torch.Generator().manual_seed(0)
    learner.steps = 6
    dqn.update(learner, _batch(), 0.0, generator)
    first_target = {k: v.clone() for k, v in dqn.target.state_dict().items()}
    assert not all(torch.equal(first_target[k], v) for k, v in network.state_dict().items())  # online moved
    learner.steps = 12  # 6 steps since the refresh: not yet
    dqn.update(learner, _batch(), 0.0, generator)
    assert all(torch.equal(first_target[k], v) for k, v in dqn.target.state_dict().items())
    learner.steps = 18  # 12 steps: refreshed to the online weights before this update's steps
    dqn.update(learner, _batch(), 0.0, generator)
    assert not all(torch.equal(first_target[k], v) for k, v in dqn.target.state_dict().items())


def test_cli_trains_dqn_with_the_presets_q_network(run, isolated_home):
    result = run("train", "--algo", "dqn", "--steps", "512", "--quiet", "--eval-episodes", "1")
    assert result.exit_code == 0, result.output
    meta = json.loads((isolated_home / "models" / "cartpole-dqn" / "meta.json").read_text())
    assert meta["algo"] == "dqn" and meta["architecture"] == "mlp-q"
    # the cartpole preset's MLP has LayerNorm (its best variant on CartPole: dqn.PRESETS)
    assert meta["architecture_args"]["layer_norm"] is True and meta["steps_trained"] == 512


def test_a_time_limit_enters_the_buffer_as_its_final_observation_without_the_rollouts_bootstrap():
    batch = _batch()
    batch.dones[1, 1] = 1.0  # env 1's episode was cut by a time limit on step 1
    batch.rewards[1, 1] = 1.0 + 0.5 * 40.0  # ... and the rollout added gamma * maxQ(final obs) = 0.5 * 40
    final_obs = torch.tensor([[-7.0]])
    batch.truncations = [(1, torch.tensor([1]), final_obs, torch.tensor([1.0]))]
    next_obs, rewards, dones = replay_transitions(batch)
    assert next_obs[1, 1].item() == -7.0 and rewards[1, 1].item() == 1.0 and dones[1, 1].item() == 0.0
    assert next_obs[1, 0].item() == batch.obs[2, 0].item()  # the other env is untouched
    assert next_obs[2, 1].item() == batch.next_obs[1].item()



def test_training_on_an_env_that_only_time_limits_end_stores_no_terminal_and_no_bootstrap():
    """ConstantReward-v0 (conftest) pays 1 a step and only its 5-step time limit ends episodes:
    every stored transition must say reward 1, done 0 (the target network bootstraps it later)."""
    config = DQNConfig(env_id="ConstantReward-v0", total_steps=96, num_envs=2, n_steps=8, learning_starts=10_000,
                       seed=0, log_every_steps=10**9, architecture_args={"hidden": [8], "layer_norm": False})
    dqn = DQN(config)
    rollout.run(config, dqn)
    assert dqn.buffer.size == 96
    assert torch.equal(dqn.buffer.rewards[:96], torch.ones(96)) and not dqn.buffer.dones[:96].any()


@pytest.mark.slow
def test_dqn_learns_cartpole_within_a_small_budget():
    """Random play scores about 22. The preset's first 10,240 steps (epsilon over the first 8,000,
    as in the full run; lr falling to 0 over these steps): seed 0 scored 72.1 here (the 100-episode
    mean of epsilon-greedy training play, exploration included; 99.6 s under load)."""
    config = config_from_preset("cartpole", total_steps=10_240, exploration_fraction=8_000 / 10_240, seed=0,
                                log_every_steps=10**9)
    assert train(config).mean_return > 40


def test_a_q_network_without_orthogonal_init_keeps_pytorchs_default_linear_init():
    torch.manual_seed(0)
    default = MLPQNetwork((4,), 2, hidden=[256, 256], layer_norm=False, orthogonal=False)
    torch.manual_seed(0)
    reference = torch.nn.Linear(4, 256)  # the first layer draws first from the same seed
    torch.testing.assert_close(default.trunk.fc1.weight, reference.weight, rtol=0, atol=0)
    # PyTorch's default is uniform within 1 / sqrt(fan_in); orthogonal sqrt(2) on the 256-wide
    # output layer reaches well past it
    bound = 1 / 256 ** 0.5
    assert default.q.weight.abs().max() <= bound
    assert MLPQNetwork((4,), 2, hidden=[256, 256], layer_norm=False).q.weight.abs().max() > bound
