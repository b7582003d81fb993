"""Synchronous advantage actor-critic (A2C, Mnih et al. 2016), read top to bottom.

One update = ``num_envs`` environments stepped ``n_steps`` times (the shared rollout of
``rollout.py``), n-step bootstrapped returns, one gradient step on
``policy_loss - ent_coef * entropy + vf_coef * value_loss``.
Every pitfall of docs/a2c-checklist.md is handled where it arises; the item number is
given in a comment there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interpret_rl import rollout
from interpret_rl.agent import Agent
from interpret_rl.policy import log_prob_and_entropy, network_log_std
from interpret_rl.rmsprop_tf import RMSpropTF
from interpret_rl.rollout import TrainResult, explained_variance


@dataclass
class A2CConfig(rollout.TrainingConfig):
    """Everything that defines an A2C run (the shared fields are documented on
    ``rollout.TrainingConfig``); saved into the model's meta.json."""

    algo = "a2c"

    optimizer: str = "rmsprop"
    """``rmsprop`` (TensorFlow-style: eps inside the sqrt, average starts at one; the Atari
    reference), ``rmsprop-torch`` (``torch.optim.RMSprop``, what stable-baselines3 uses on
    classic control) or ``adam``."""
    rmsprop_alpha: float = 0.99
    """Decay of RMSprop's squared-gradient average."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (subtracted from the loss)."""
    vf_coef: float = 0.5
    """Weight of the value loss (mean squared error)."""
    normalize_advantage: bool = False
    """Standardise advantages per batch (not in the original A2C)."""

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "optimizer": self.optimizer in ("rmsprop", "rmsprop-torch", "adam")}


CONFIG = A2CConfig

PRESETS: dict[str, dict[str, Any]] = {
    # stable-baselines3 zoo settings for CartPole-v1 (8 envs, 5 steps, RMSprop, ent 0), with actor
    # and critic on separate 64x64 trunks as SB3's MlpPolicy has them, and lr 2e-3. Steps to a
    # 100-episode mean of 475, seeds 0-4 (benchmarks/cartpole_to_475.py): shared trunk + lr 7e-4
    # 263k-317k; shared + 2e-3 150k-179k; separate + 2e-3 124k-128k.
    "cartpole": dict(env_id="CartPole-v1", num_envs=8, n_steps=5, optimizer="rmsprop", lr=2e-3,
                     ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, total_steps=500_000,
                     architecture_args={"shared_trunk": False}),
    # baselines / SB3 zoo Atari settings.
    "breakout": dict(env_id="ALE/Breakout-v5", num_envs=16, n_steps=5, optimizer="rmsprop", lr=7e-4,
                     ent_coef=0.01, vf_coef=0.25, max_grad_norm=0.5, total_steps=10_000_000,
                     log_every_steps=20_000, checkpoint_every_steps=250_000),
    # MinAtar (Young & Tian 2019): the Atari settings on 16 envs x 5 steps, entropy 0.01, with the
    # small CNN that "auto" picks for a 10x10 grid (one conv 16x3x3, linear 128).
    "minatar": dict(env_id="MinAtar/Breakout-v1", num_envs=16, n_steps=5, optimizer="rmsprop", lr=7e-4,
                    ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, total_steps=2_000_000,
                    log_every_steps=20_000, checkpoint_every_steps=250_000),
    # The write-up's own choice: Adam, grad-norm clip 40, 20-step updates. With its other settings
    # free, lr 2e-3 and gamma 0.98 solve CartPole (mean >= 475) at 396k-445k steps (seeds 0-2);
    # lr 1e-3 with gamma 0.99 plateaued near 200 within 500k.
    "paper": dict(env_id="CartPole-v1", num_envs=8, n_steps=20, optimizer="adam", lr=2e-3, gamma=0.98,
                  ent_coef=0.0, vf_coef=0.5, max_grad_norm=40.0, total_steps=500_000),
}


def config_from_preset(preset: str | None, **overrides: Any) -> A2CConfig:
    """``A2CConfig`` from a named preset, then ``overrides`` (``None`` values are ignored)."""
    return rollout.config_from_preset(A2CConfig, PRESETS, preset, **overrides)


def n_step_returns(rewards: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                   gamma: float) -> torch.Tensor:
    """Discounted n-step returns of one rollout (checklist item 3).

    :param rewards: ``(T, N)`` rewards of transitions t -> t+1.
    :param dones: ``(T, N)`` 1.0 where transition t -> t+1 ended an episode: the return is cut there.
    :param last_value: ``(N,)`` V(obs_T), the bootstrap for rollouts still running after step T-1.
    :returns: ``(T, N)`` with ``R_t = r_t + gamma * (1 - done_t) * R_{t+1}`` and ``R_T = last_value``.
    """
    assert rewards.shape == dones.shape and last_value.shape == rewards.shape[1:], (
        rewards.shape, dones.shape, last_value.shape)
    returns = torch.empty_like(rewards)
    running = last_value
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * (1.0 - dones[t]) * running
        returns[t] = running
    return returns


def a2c_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
             returns: torch.Tensor, mask: torch.Tensor, config: A2CConfig, log_std: torch.Tensor | None = None):
    """The A2C loss over a flat batch; ``mask`` drops transitions the agent did not choose.
    ``log_std``: the Gaussian policy's (continuous actions: ``actions`` are ``(B, A)``)."""
    assert values.shape == returns.shape == actions.shape[:1] == mask.shape, (  # item 6
        values.shape, returns.shape, actions.shape, mask.shape)
    action_log_prob, entropy = log_prob_and_entropy(logits, actions, log_std)
    advantage = (returns - values).detach()  # item 4: no gradient from the policy into the critic
    if config.normalize_advantage:
        advantage = (advantage - advantage[mask].mean()) / (advantage[mask].std() + 1e-8)
    weight = mask.float() / mask.float().sum().clamp(min=1.0)
    policy_loss = -(advantage * action_log_prob * weight).sum()
    value_loss = ((returns.detach() - values).pow(2) * weight).sum()
    entropy_mean = (entropy * weight).sum()
    loss = policy_loss - config.ent_coef * entropy_mean + config.vf_coef * value_loss  # item 5
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy_mean}


def make_optimizer(params, config: A2CConfig) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":  # item 13: TF-style, eps inside the sqrt
        return RMSpropTF(params, lr=config.lr, alpha=config.rmsprop_alpha, eps=config.optimizer_eps)
    if config.optimizer == "rmsprop-torch":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.rmsprop_alpha, eps=config.optimizer_eps)
    # fused: one kernel for all parameters; on CPU a step of the small MLPs costs a third of the
    # per-tensor loop's (0.23 vs 0.78 ms, benchmarks/README.md), the same update.
    return torch.optim.Adam(params, lr=config.lr, eps=config.optimizer_eps, fused=True)


class A2C:
    """A2C's part of the training loop: sample from the policy, one gradient step per rollout."""

    def __init__(self, config: A2CConfig):
        self.config = config

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        return make_optimizer(params, self.config)

    act = staticmethod(rollout.sample_from_policy)

    def update(self, learner: rollout.Learner, batch: rollout.Batch, progress: float,
               generator: torch.Generator) -> dict[str, float]:
        with torch.no_grad():
            last_value = learner.network(batch.next_obs)[1]
        returns = n_step_returns(batch.rewards, batch.dones, last_value, self.config.gamma)
        logits, values = learner.network(batch.flat("obs"))
        loss, stats = a2c_loss(logits, values, batch.flat("actions"), returns.reshape(-1),
                               batch.flat("mask"), self.config, network_log_std(learner.network))
        grad_norm = learner.step(loss)
        stats = {k: float(v.detach()) for k, v in stats.items()}
        stats["grad_norm"] = grad_norm
        stats["explained_variance"] = explained_variance(values.detach(), returns.reshape(-1))
        return stats


def train(config: A2CConfig, *, out_dir: str | Path | None = None, progress: bool = False,
          tensorboard: bool = False, agent: Agent | None = None, resume: bool = False,
          on_update: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train an A2C agent.

    :param out_dir: registry folder of the model: the training curve, checkpoints and the final
        model are written there (nothing is written when ``None``).
    :param progress: show a progress bar with steps/s and the recent mean return.
    :param tensorboard: also write TensorBoard scalars into ``out_dir/tensorboard``.
    :param agent: continue training this agent instead of a freshly initialised one.
    :param resume: also restore the optimizer state saved in ``out_dir`` (``train --resume``);
        training goes on until ``agent.steps_trained`` reaches ``config.total_steps``.
    :param on_update: called after every update with ``(env_steps, stats)``; ``stats`` also holds
        ``ep_rew_mean``, the mean return of the last 100 games (tests, callbacks, ``tune``).
    """
    return rollout.run(config, A2C(config), out_dir=out_dir, progress=progress, tensorboard=tensorboard,
                       agent=agent, resume=resume, on_update=on_update)
