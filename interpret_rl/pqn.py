"""Parallelised Q-network (PQN, Gallici et al. 2024, "Simplifying Deep Temporal Difference
Learning"), read top to bottom.

Q-learning without a replay buffer or a target network: the shared rollout of ``rollout.py``
(``num_envs`` x ``n_steps``, epsilon-greedy), Q(lambda) returns computed once per rollout with
the network that acted, then ``epochs`` passes of shuffled minibatch regression of Q(s, a) onto
those returns. LayerNorm in the network (``networks.QNetwork``) keeps this stable. Follows
CleanRL's pqn_atari_envpool.py (RAdam, grad norm 10, epsilon 1 -> 0.01 over the first 10%),
with one difference: the lambda-return is cut at an episode end as in the paper (CleanRL's loop
carries the next episode's return through a terminal).

The network's outputs are Q-values and its value is ``max_a Q``; the trained agent acts greedily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from interpret_rl import rollout
from interpret_rl.agent import Agent
from interpret_rl.rollout import TrainResult, explained_variance


@dataclass
class EpsilonGreedyConfig(rollout.TrainingConfig):
    """The exploration schedule of the Q-learners (PQN here, DQN in ``dqn.py``)."""

    epsilon_start: float = 1.0
    """Exploration rate at the start."""
    epsilon_end: float = 0.01
    """Exploration rate after ``exploration_fraction`` of ``total_steps``."""
    exploration_fraction: float = 0.1
    """Share of ``total_steps`` over which epsilon falls linearly from start to end."""

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "epsilon_start": 0.0 <= self.epsilon_start <= 1.0,
                "epsilon_end": 0.0 <= self.epsilon_end <= 1.0,
                "exploration_fraction": 0.0 < self.exploration_fraction <= 1.0}

    def epsilon(self, steps: int) -> float:
        """Linear from ``epsilon_start`` to ``epsilon_end`` over ``exploration_fraction * total_steps``."""
        done = min(1.0, steps / (self.exploration_fraction * self.total_steps))
        return self.epsilon_start + done * (self.epsilon_end - self.epsilon_start)


@dataclass
class PQNConfig(EpsilonGreedyConfig):
    """Everything that defines a PQN run (the shared fields are documented on
    ``rollout.TrainingConfig`` and ``EpsilonGreedyConfig``); saved into the model's meta.json.
    RAdam is the optimizer."""

    algo = "pqn"
    extra_log_columns = ("epsilon", "q_mean")

    n_steps: int = 128
    lr: float = 2.5e-4
    lr_schedule: str = "linear"
    optimizer_eps: float = 1e-8
    max_grad_norm: float = 10.0
    q_lambda: float = 0.65
    """Lambda of the Q(lambda) return (0: one-step Q-learning target, 1: Monte-Carlo)."""
    epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per pass (each a gradient step)."""

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "q_lambda": 0.0 <= self.q_lambda <= 1.0, "epochs": self.epochs > 0,
                "num_minibatches": 0 < self.num_minibatches <= self.num_envs * self.n_steps}


CONFIG = PQNConfig

PRESETS: dict[str, dict[str, Any]] = {
    # LayerNorm MLP 2 x 256 as in purejaxql's CartPole PQN, 8 envs x 128 steps, 4 epochs x 4
    # minibatches. lr 1e-3: seed 0 reached a 100-episode mean of 475 at 159,744 steps; with
    # 2.5e-4 (the Atari lr) it was still at 265 after 150k steps.
    "cartpole": dict(env_id="CartPole-v1", num_envs=8, n_steps=128, epochs=4, num_minibatches=4, gamma=0.99,
                     q_lambda=0.65, lr=1e-3, lr_schedule="linear", max_grad_norm=10.0, epsilon_start=1.0,
                     epsilon_end=0.01, exploration_fraction=0.1, total_steps=500_000),
    # CleanRL pqn_atari_envpool.py: 8 envs x 128 steps, RAdam 2.5e-4 linear, 4 epochs x 4
    # minibatches, grad norm 10, epsilon 1 -> 0.01 over 10%, lambda 0.65, gamma 0.99.
    "breakout": dict(env_id="ALE/Breakout-v5", num_envs=8, n_steps=128, epochs=4, num_minibatches=4, gamma=0.99,
                     q_lambda=0.65, lr=2.5e-4, lr_schedule="linear", max_grad_norm=10.0, epsilon_start=1.0,
                     epsilon_end=0.01, exploration_fraction=0.1, total_steps=10_000_000,
                     log_every_steps=20_480, checkpoint_every_steps=250_000),
}


def config_from_preset(preset: str | None, **overrides: Any) -> PQNConfig:
    """``PQNConfig`` from a named preset, then ``overrides`` (``None`` values are ignored)."""
    return rollout.config_from_preset(PQNConfig, PRESETS, preset, **overrides)


def q_lambda_returns(rewards: torch.Tensor, dones: torch.Tensor, next_max_q: torch.Tensor,
                     gamma: float, lam: float) -> torch.Tensor:
    """Q(lambda) returns of one rollout (Watkins-free, as in PQN: no cut at exploratory actions).

    :param rewards: ``(T, N)`` rewards of transitions t -> t+1.
    :param dones: ``(T, N)`` 1.0 where transition t -> t+1 ended an episode (nothing after it counts).
    :param next_max_q: ``(T, N)`` max_a Q(obs_{t+1}, a).
    :returns: ``(T, N)`` with ``G_{T-1} = r + gamma (1 - done) maxQ_T`` and
        ``G_t = r_t + gamma (1 - done_t) (lam G_{t+1} + (1 - lam) maxQ_{t+1})``.
    """
    assert rewards.shape == dones.shape == next_max_q.shape, (rewards.shape, dones.shape, next_max_q.shape)
    returns = torch.empty_like(rewards)
    running = next_max_q[-1]  # beyond the rollout the best estimate is max Q itself
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * (1.0 - dones[t]) * (lam * running + (1.0 - lam) * next_max_q[t])
        returns[t] = running
    return returns


class PQN:
    """PQN's part of the training loop: epsilon-greedy acting, epochs of Q(lambda) regression."""

    def __init__(self, config: PQNConfig):
        self.config = config

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        return torch.optim.RAdam(params, lr=self.config.lr, eps=self.config.optimizer_eps)

    def act(self, network, obs: torch.Tensor, generator: torch.Generator, steps: int):
        q_values, max_q = network(obs)
        n, n_actions = q_values.shape
        explore = torch.rand(n, generator=generator, device=obs.device) < self.config.epsilon(steps)
        random_actions = torch.randint(0, n_actions, (n,), generator=generator, device=obs.device)
        actions = torch.where(explore, random_actions, q_values.argmax(-1))
        return actions, torch.zeros(n, device=obs.device), max_q

    def update(self, learner: rollout.Learner, batch: rollout.Batch, progress: float,
               generator: torch.Generator) -> dict[str, float]:
        config = self.config
        with torch.no_grad():
            last_max_q = learner.network(batch.next_obs)[1]
        # max Q of the next observation: the rollout's own (values[t + 1]) and the one after it.
        next_max_q = torch.cat([batch.values[1:], last_max_q[None]])
        returns = q_lambda_returns(batch.rewards, batch.dones, next_max_q, config.gamma, config.q_lambda)

        # Only transitions the agent chose (item 2 / 8); their minibatches are shuffled each epoch.
        chosen = torch.nonzero(batch.flat("mask")).squeeze(1)
        obs, actions, returns = batch.flat("obs"), batch.flat("actions"), returns.reshape(-1)
        minibatch_size = max(1, -(-len(chosen) // config.num_minibatches))
        totals = {"value_loss": 0.0, "grad_norm": 0.0, "q_mean": 0.0}
        count = 0
        for _ in range(config.epochs):
            order = chosen[torch.randperm(len(chosen), generator=generator, device=chosen.device)]
            for idx in order.split(minibatch_size):
                q_values, _ = learner.network(obs[idx])
                q_taken = q_values.gather(1, actions[idx, None]).squeeze(1)
                loss = F.mse_loss(q_taken, returns[idx])
                totals["grad_norm"] += learner.step(loss)
                totals["value_loss"] += float(loss.detach())
                totals["q_mean"] += float(q_taken.detach().mean())
                count += 1
        stats = {key: value / max(count, 1) for key, value in totals.items()}
        stats["epsilon"] = config.epsilon(learner.steps)
        stats["explained_variance"] = explained_variance(batch.flat("values"), returns)
        return stats


def train(config: PQNConfig, *, out_dir: str | Path | None = None, progress: bool = False,
          tensorboard: bool = False, agent: Agent | None = None, resume: bool = False,
          on_update: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a PQN agent; the arguments are those of ``a2c.train``."""
    return rollout.run(config, PQN(config), out_dir=out_dir, progress=progress, tensorboard=tensorboard,
                       agent=agent, resume=resume, on_update=on_update)
