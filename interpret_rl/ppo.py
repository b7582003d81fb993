"""Proximal policy optimisation (PPO, Schulman et al. 2017), read top to bottom.

One update = the shared rollout of ``rollout.py`` (``num_envs`` x ``n_steps``), generalised
advantage estimates (GAE), then ``epochs`` passes over the rollout in ``num_minibatches`` shuffled
minibatches, each a gradient step on the clipped surrogate
``policy_loss - ent_coef * entropy + vf_coef * value_loss``. Follows CleanRL's ppo_atari.py
(including its 0.5 x squared error value loss and optional value clipping); the clip range can be
annealed linearly to zero like the learning rate (as in the original baselines PPO).
Transitions the agent did not choose (forced FIRE) are left out of every minibatch.
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
from interpret_rl.rollout import TrainResult, explained_variance


@dataclass
class PPOConfig(rollout.TrainingConfig):
    """Everything that defines a PPO run (the shared fields are documented on
    ``rollout.TrainingConfig``); saved into the model's meta.json. Adam is the optimizer."""

    algo = "ppo"
    extra_log_columns = ("approx_kl", "clip_fraction", "clip_range")

    n_steps: int = 128
    lr: float = 2.5e-4
    lr_schedule: str = "linear"
    gae_lambda: float = 0.95
    """Lambda of the generalised advantage estimate (1: Monte-Carlo, 0: one-step TD)."""
    epochs: int = 4
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per pass (each a gradient step)."""
    clip_coef: float = 0.1
    """Clip range of the probability ratio (and of the value change when ``clip_value_loss``)."""
    clip_schedule: str = "linear"
    """``constant`` or ``linear`` (the clip range decays to zero at ``total_steps``)."""
    clip_value_loss: bool = True
    """Clip the value loss around the rollout's values (CleanRL's default)."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (subtracted from the loss)."""
    vf_coef: float = 0.5
    """Weight of the value loss (0.5 x squared error)."""
    normalize_advantage: bool = True
    """Standardise advantages per minibatch."""

    def checks(self) -> dict[str, bool]:
        return {**super().checks(), "gae_lambda": 0.0 <= self.gae_lambda <= 1.0, "epochs": self.epochs > 0,
                "num_minibatches": 0 < self.num_minibatches <= self.num_envs * self.n_steps,
                "clip_coef": self.clip_coef > 0, "clip_schedule": self.clip_schedule in ("constant", "linear")}


CONFIG = PPOConfig

PRESETS: dict[str, dict[str, Any]] = {
    # rl-zoo's CartPole-v1 PPO (8 envs x 32 steps, one minibatch of 256, 20 epochs, gamma 0.98,
    # lambda 0.8, lr 1e-3 and clip 0.2 both linear, ent 0) with separate 64x64 actor and critic as
    # SB3's MlpPolicy has them; vf 1.0 because our value loss carries CleanRL's factor 0.5 and
    # SB3's (vf 0.5 on the plain squared error) does not.
    "cartpole": dict(env_id="CartPole-v1", num_envs=8, n_steps=32, num_minibatches=1, epochs=20,
                     gamma=0.98, gae_lambda=0.8, lr=1e-3, lr_schedule="linear", clip_coef=0.2,
                     clip_schedule="linear", clip_value_loss=False, ent_coef=0.0, vf_coef=1.0,
                     max_grad_norm=0.5, total_steps=200_000, architecture_args={"shared_trunk": False}),
    # CleanRL ppo_atari.py: 8 envs x 128 steps, Adam 2.5e-4 (eps 1e-5) linear, 4 epochs x 4
    # minibatches, clip 0.1 (annealed here, as in baselines), ent 0.01, vf 0.5, grad norm 0.5.
    "breakout": dict(env_id="ALE/Breakout-v5", num_envs=8, n_steps=128, num_minibatches=4, epochs=4,
                     gamma=0.99, gae_lambda=0.95, lr=2.5e-4, lr_schedule="linear", optimizer_eps=1e-5,
                     clip_coef=0.1, clip_schedule="linear", clip_value_loss=True, ent_coef=0.01,
                     vf_coef=0.5, max_grad_norm=0.5, total_steps=10_000_000, log_every_steps=20_480,
                     checkpoint_every_steps=250_000),
    # rl-zoo's Pendulum-v1 PPO without its gSDE exploration, but rollouts of 4 envs x 256 steps
    # instead of 1024 (4x the updates per env step: with 1024, 2 of 5 seeds were still at -650/-483
    # after 200k steps; benchmarks/README.md), minibatches of 64, 10 epochs, gamma 0.9, lr 1e-3 and
    # clip 0.2 constant, ent 0, observations normalised (the statistics live in the network),
    # separate 64x64 actor and critic; vf 1.0 for the same reason as in "cartpole"; rewards scaled
    # by 0.1 for learning (instead of VecNormalize's running reward scaling) and no value clipping,
    # as SB3 has none.
    "pendulum": dict(env_id="Pendulum-v1", num_envs=4, n_steps=256, num_minibatches=16, epochs=10,
                     gamma=0.9, gae_lambda=0.95, lr=1e-3, lr_schedule="constant", clip_coef=0.2,
                     clip_schedule="constant", clip_value_loss=False, ent_coef=0.0, vf_coef=1.0,
                     max_grad_norm=0.5, reward_scale=0.1, total_steps=200_000, log_every_steps=8192,
                     architecture_args={"shared_trunk": False, "normalize_observations": True}),
}


def config_from_preset(preset: str | None, **overrides: Any) -> PPOConfig:
    """``PPOConfig`` from a named preset, then ``overrides`` (``None`` values are ignored)."""
    return rollout.config_from_preset(PPOConfig, PRESETS, preset, **overrides)


def generalized_advantages(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
                           last_value: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """GAE (Schulman et al. 2016) of one rollout.

    :param rewards: ``(T, N)`` rewards of transitions t -> t+1.
    :param values: ``(T, N)`` V(obs_t) from the rollout.
    :param dones: ``(T, N)`` 1.0 where transition t -> t+1 ended an episode (no bootstrap there).
    :param last_value: ``(N,)`` V(obs_T).
    :returns: ``(T, N)`` with ``delta_t = r_t + gamma (1 - done_t) V_{t+1} - V_t`` and
        ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``.
    """
    assert rewards.shape == values.shape == dones.shape and last_value.shape == rewards.shape[1:], (
        rewards.shape, values.shape, dones.shape, last_value.shape)
    advantages = torch.empty_like(rewards)
    running = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * not_done * next_value - values[t]
        running = delta + gamma * lam * not_done * running
        advantages[t] = running
        next_value = values[t]
    return advantages


def ppo_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, old_log_probs: torch.Tensor,
             old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, clip: float,
             config: PPOConfig, log_std: torch.Tensor | None = None):
    """The PPO loss of one minibatch (all tensors ``(B,)`` but ``logits`` ``(B, A)``, and ``actions``
    ``(B, A)`` for a Gaussian policy, whose ``log_std`` is then given)."""
    assert values.shape == actions.shape[:1] == old_log_probs.shape == advantages.shape == returns.shape, (
        values.shape, actions.shape, old_log_probs.shape, advantages.shape, returns.shape)
    new_log_probs, entropy = log_prob_and_entropy(logits, actions, log_std)
    entropy = entropy.mean()
    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    if config.normalize_advantage and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    # Pessimistic bound: the larger of the two losses, so moving the ratio outside [1-clip, 1+clip]
    # never pays.
    policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)).mean()
    if config.clip_value_loss:
        clipped = old_values + (values - old_values).clamp(-clip, clip)
        value_loss = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        value_loss = 0.5 * ((values - returns) ** 2).mean()
    loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()  # the low-variance estimator k3
        clip_fraction = ((ratio - 1.0).abs() > clip).float().mean()
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
                  "approx_kl": approx_kl, "clip_fraction": clip_fraction}


class PPO:
    """PPO's part of the training loop: sample from the policy, epochs of clipped minibatch steps."""

    def __init__(self, config: PPOConfig):
        self.config = config

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        # fused: one kernel for all parameters; on CPU a step of the small MLPs costs a third of the
        # per-tensor loop's (0.23 vs 0.78 ms, benchmarks/README.md), the same update.
        return torch.optim.Adam(params, lr=self.config.lr, eps=self.config.optimizer_eps, fused=True)

    act = staticmethod(rollout.sample_from_policy)

    def update(self, learner: rollout.Learner, batch: rollout.Batch, progress: float,
               generator: torch.Generator) -> dict[str, float]:
        config = self.config
        with torch.no_grad():
            last_value = learner.network(batch.next_obs)[1]
        advantages = generalized_advantages(batch.rewards, batch.values, batch.dones, last_value,
                                            config.gamma, config.gae_lambda)
        returns = advantages + batch.values
        clip = config.clip_coef * (max(0.0, 1.0 - progress) if config.clip_schedule == "linear" else 1.0)

        # Only transitions the agent chose (item 2 / 8); their minibatches are shuffled each epoch.
        chosen = torch.nonzero(batch.flat("mask")).squeeze(1)
        obs, actions = batch.flat("obs"), batch.flat("actions")
        old_log_probs, old_values = batch.flat("log_probs"), batch.flat("values")
        advantages, returns = advantages.reshape(-1), returns.reshape(-1)
        minibatch_size = max(1, -(-len(chosen) // config.num_minibatches))
        totals: dict[str, float] = {}
        count = 0
        for _ in range(config.epochs):
            order = chosen[torch.randperm(len(chosen), generator=generator, device=chosen.device)]
            for idx in order.split(minibatch_size):
                logits, values = learner.network(obs[idx])
                loss, stats = ppo_loss(logits, values, actions[idx], old_log_probs[idx], old_values[idx],
                                       advantages[idx], returns[idx], clip, config,
                                       network_log_std(learner.network))
                stats["grad_norm"] = learner.step(loss)
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + float(value.detach() if torch.is_tensor(value) else value)
                count += 1
        stats = {key: value / max(count, 1) for key, value in totals.items()}  # means over all steps
        stats["clip_range"] = clip
        stats["explained_variance"] = explained_variance(batch.flat("values"), returns)
        return stats


def train(config: PPOConfig, *, out_dir: str | Path | None = None, progress: bool = False,
          tensorboard: bool = False, agent: Agent | None = None, resume: bool = False,
          on_update: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a PPO agent; the arguments are those of ``a2c.train``."""
    return rollout.run(config, PPO(config), out_dir=out_dir, progress=progress, tensorboard=tensorboard,
                       agent=agent, resume=resume, on_update=on_update)
