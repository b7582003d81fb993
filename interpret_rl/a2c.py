"""Synchronous advantage actor-critic (A2C, Mnih et al. 2016), read top to bottom.

One update = ``num_envs`` environments stepped ``n_steps`` times, n-step bootstrapped returns,
one gradient step on ``policy_loss - ent_coef * entropy + vf_coef * value_loss``.
Every pitfall of ../shared/notes/a2c-checklist.md is handled where it arises; the item number is
given in a comment there.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from interpret_rl.agent import Agent
from interpret_rl.distributed import Ranks
from interpret_rl.envs import default_env_settings, is_atari, make_vector_env
from interpret_rl.interrupts import TrainingInterrupted, stop_on_signals
from interpret_rl.rmsprop_tf import RMSpropTF
from interpret_rl.training_log import TrainingLog, next_multiple


class InvalidConfigError(ValueError):
    """A setting outside its valid range."""


@dataclass
class A2CConfig:
    """Everything that defines a training run; saved into the model's meta.json."""

    env_id: str = "CartPole-v1"
    """gymnasium id (``CartPole-v1``) or Atari id (``ALE/Breakout-v5``)."""
    total_steps: int = 500_000
    """Environment steps to train for (summed over all sub-environments)."""
    num_envs: int = 8
    """Sub-environments stepped in lockstep; one update sees ``num_envs * n_steps`` transitions."""
    n_steps: int = 5
    """Steps per sub-environment between updates (the n of the n-step return)."""
    gamma: float = 0.99
    """Discount factor."""
    optimizer: str = "rmsprop"
    """``rmsprop`` (TensorFlow-style: eps inside the sqrt, average starts at one; the Atari
    reference), ``rmsprop-torch`` (``torch.optim.RMSprop``, what stable-baselines3 uses on
    classic control) or ``adam``."""
    lr: float = 7e-4
    """Learning rate."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to zero at ``total_steps``)."""
    rmsprop_alpha: float = 0.99
    """Decay of RMSprop's squared-gradient average."""
    optimizer_eps: float = 1e-5
    """Epsilon of RMSprop or Adam."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (subtracted from the loss)."""
    vf_coef: float = 0.5
    """Weight of the value loss (mean squared error)."""
    max_grad_norm: float = 0.5
    """Clip of the global gradient norm."""
    normalize_advantage: bool = False
    """Standardise advantages per batch (not in the original A2C)."""
    architecture: str = "auto"
    """Network name (``mlp``, ``nature-cnn`` or a plugin's); ``auto`` picks by observation shape."""
    architecture_args: dict = field(default_factory=dict)
    """Extra keyword arguments for the network (e.g. ``{"hidden": [64, 64]}``)."""
    env_settings: dict = field(default_factory=dict)
    """Overrides of the environment's default settings (see ``envs.default_env_settings``)."""
    seed: int = 0
    """Seed of weights, action sampling and environments (env i gets ``seed + i``)."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""
    torch_threads: int = 0
    """Threads for torch on the CPU (0: all cores for image observations, 1 for vectors)."""
    target_return: float | None = None
    """Stop early once the mean return of the last 100 episodes reaches this."""
    log_every_steps: int = 10_000
    """Write a row of the training curve this often."""
    checkpoint_every_steps: int = 100_000
    """Save the model this often (when training into the registry)."""
    keep_checkpoints: bool = False
    """Keep a snapshot of the weights at every checkpoint (for explanations across training)."""

    def validate(self) -> None:
        checks = {
            "total_steps": self.total_steps > 0,
            "num_envs": self.num_envs > 0,
            "n_steps": self.n_steps > 0,
            "gamma": 0.0 <= self.gamma <= 1.0,
            "lr": self.lr > 0,
            "optimizer": self.optimizer in ("rmsprop", "rmsprop-torch", "adam"),
            "lr_schedule": self.lr_schedule in ("constant", "linear"),
            "max_grad_norm": self.max_grad_norm > 0,
            "device": self.device == "cpu" or self.device.startswith("cuda"),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            name = bad[0]
            raise InvalidConfigError(f"invalid A2C setting {name}={getattr(self, name)!r}")


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
    # The write-up's own choice: Adam, grad-norm clip 40, 20-step updates. With its other settings
    # free, lr 2e-3 and gamma 0.98 solve CartPole (mean >= 475) at 396k-445k steps (seeds 0-2);
    # lr 1e-3 with gamma 0.99 plateaued near 200 within 500k.
    "paper": dict(env_id="CartPole-v1", num_envs=8, n_steps=20, optimizer="adam", lr=2e-3, gamma=0.98,
                  ent_coef=0.0, vf_coef=0.5, max_grad_norm=40.0, total_steps=500_000),
}


def config_from_preset(preset: str | None, **overrides: Any) -> A2CConfig:
    """``A2CConfig`` from a named preset, then ``overrides`` (``None`` values are ignored)."""
    if preset is not None and preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset]) if preset else {}
    if overrides.get("architecture") and "architecture_args" not in overrides:
        values.pop("architecture_args", None)  # the preset's arguments belong to its own network
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = A2CConfig(**values)
    config.validate()
    return config


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped before writing anything from it."""


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
             returns: torch.Tensor, mask: torch.Tensor, config: A2CConfig):
    """The A2C loss over a flat batch; ``mask`` drops transitions the agent did not choose."""
    assert values.shape == returns.shape == actions.shape == mask.shape, (  # item 6
        values.shape, returns.shape, actions.shape, mask.shape)
    log_probs = F.log_softmax(logits, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    action_log_prob = log_probs.gather(1, actions[:, None]).squeeze(1)
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
    return torch.optim.Adam(params, lr=config.lr, eps=config.optimizer_eps)


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    var = returns.var()
    return float("nan") if var == 0 else float(1.0 - (returns - values).var() / var)


@dataclass
class TrainResult:
    agent: Agent
    steps: int
    seconds: float
    mean_return: float
    """Mean return of the last 100 finished episodes (unclipped full games)."""
    reached_target_at: int | None
    """Env steps when ``target_return`` was first reached (None if never)."""
    curve_path: Path | None


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
    :param on_update: called after every update with ``(env_steps, stats)`` (tests, callbacks).
    """
    from interpret_rl import registry  # late: registry imports the agent module too

    config.validate()
    ranks = Ranks()
    device = ranks.device(config.device)
    ranks.start(device)
    if not ranks.is_main:  # only rank 0 writes the curve and checkpoints
        out_dir, progress, tensorboard = None, False, False
    # item 17: a small MLP is fastest on one thread (more threads only spin-wait and starve the
    # in-process envs: a CartPole run took 24x longer with 2 threads beside a Breakout run).
    is_image = is_atari(config.env_id)
    torch.set_num_threads(config.torch_threads or (len(os.sched_getaffinity(0)) if is_image else 1))
    torch.manual_seed(config.seed)  # item 16: one weight-init seed
    env_settings = {**default_env_settings(config.env_id), **config.env_settings}
    envs = make_vector_env(config.env_id, config.num_envs, for_training=True, settings=env_settings)
    if agent is None:  # item 16: same weight init on every rank
        agent = Agent.for_env(envs, config.env_id, env_settings, config.architecture,
                              config.architecture_args, device=device)
    network = agent.network.to(device).train()
    if any(isinstance(m, torch.nn.Conv2d) for m in network.modules()):
        network.to(memory_format=torch.channels_last)  # see NatureCNNActorCritic.preprocess
    ranks.broadcast_weights(network)
    optimizer = make_optimizer(network.parameters(), config)
    if resume:
        registry.load_optimizer_state(out_dir, optimizer)
    # A resumed run draws fresh episodes and actions instead of replaying the first ones; each
    # rank gets its own block of env seeds.
    run_seed = config.seed + agent.steps_trained + ranks.rank * config.num_envs
    sample_generator = torch.Generator(device=device).manual_seed(run_seed)

    T, N = config.n_steps, config.num_envs
    obs_shape = envs.single_observation_space.shape
    obs_dtype = torch.uint8 if envs.single_observation_space.dtype == np.uint8 else torch.float32
    obs_buf = torch.zeros((T, N, *obs_shape), dtype=obs_dtype, device=device)  # item 9: uint8 kept
    actions_buf = torch.zeros((T, N), dtype=torch.long, device=device)
    rewards_buf = torch.zeros((T, N), device=device)
    dones_buf = torch.zeros((T, N), device=device)
    mask_buf = torch.zeros((T, N), dtype=torch.bool, device=device)

    log = TrainingLog(out_dir, config, agent.steps_trained, progress=progress, tensorboard=tensorboard)
    obs = torch.as_tensor(envs.reset(seed=run_seed), device=device)  # item 16: seed + i per env
    if resume and agent.meta.get("resume_state"):  # continue exactly where the checkpoint stopped
        obs = _restore_run_state(agent.meta["resume_state"], envs, sample_generator, log, device)

    def save() -> None:
        registry.save_checkpoint(agent, out_dir, config, optimizer, log.summary(),
                                 keep_snapshot=config.keep_checkpoints,
                                 resume_state=_run_state(envs, obs, sample_generator, log))
    steps = agent.steps_trained
    reached_at = None
    next_checkpoint = next_multiple(steps, config.checkpoint_every_steps)
    start = time.perf_counter()
    with stop_on_signals() as stop, _closing(envs, log, lambda: steps):
        while steps < config.total_steps and not ranks.any(bool(stop), device):
            if config.lr_schedule == "linear":
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * max(0.0, 1.0 - steps / config.total_steps)

            # --- rollout: n_steps in every sub-environment -----------------------------------
            for t in range(T):
                with torch.no_grad():
                    logits, _ = network(obs)
                    actions = torch.multinomial(F.softmax(logits, -1), 1, generator=sample_generator)[:, 0]
                result = envs.step(actions.cpu().numpy())
                reward = torch.as_tensor(result.reward, device=device)
                if result.truncated.any():  # item 1: a time limit is not a terminal; bootstrap
                    idx = np.flatnonzero(result.truncated)
                    with torch.no_grad():
                        final_value = network(torch.as_tensor(result.final_obs[idx], device=device))[1]
                    reward[idx] += config.gamma * final_value
                obs_buf[t] = obs
                actions_buf[t] = actions
                rewards_buf[t] = reward
                dones_buf[t] = torch.as_tensor(result.terminated | result.truncated, device=device)
                mask_buf[t] = torch.as_tensor(result.learn_mask, device=device)  # item 2 / 8
                obs = torch.as_tensor(result.obs, device=device)
                log.record_games(result.finished)
            steps += T * N * ranks.world_size

            # --- update ---------------------------------------------------------------------
            with torch.no_grad():
                last_value = network(obs)[1]
            returns = n_step_returns(rewards_buf, dones_buf, last_value, config.gamma)
            logits, values = network(obs_buf.reshape(T * N, *obs_shape))
            loss, stats = a2c_loss(logits, values, actions_buf.reshape(-1), returns.reshape(-1),
                                   mask_buf.reshape(-1), config)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite loss {loss.item()} at step {steps}; the last checkpoint is kept")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            ranks.average_gradients(network)
            grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)

            optimizer.step()
            agent.steps_trained = steps

            stats = {k: float(v.detach()) for k, v in stats.items()}
            stats["grad_norm"] = float(grad_norm)
            stats["lr"] = optimizer.param_groups[0]["lr"]
            if log.should_log(steps):
                stats["explained_variance"] = explained_variance(values.detach(), returns.reshape(-1))
                log.write(steps, stats)
            if on_update is not None:
                on_update(steps, stats)
            reached = config.target_return is not None and log.mean_return() >= config.target_return
            if reached_at is None and ranks.any(reached, device):
                reached_at = steps
                break
            if out_dir is not None and steps >= next_checkpoint:
                next_checkpoint = next_multiple(steps, config.checkpoint_every_steps)
                save()
        seconds = time.perf_counter() - start
        # Only completed updates reach this point (a non-finite loss raised above), so what is
        # saved is always a consistent, finite checkpoint.
        if out_dir is not None:
            save()
        ranks.close()
        if stop:
            raise TrainingInterrupted(stop.signum, steps)
    return TrainResult(agent=agent, steps=steps, seconds=seconds, mean_return=log.mean_return(),
                       reached_target_at=reached_at, curve_path=log.csv_path)


def _run_state(envs, obs: torch.Tensor, generator: torch.Generator, log: TrainingLog) -> dict | None:
    """Everything beyond weights and optimizer that a bit-exact resume needs (classic envs only:
    ALE's vector env cannot snapshot its emulators, so an Atari resume starts fresh episodes)."""
    env_state = envs.get_state()
    if env_state is None:
        return None
    generator_bytes = generator.get_state().cpu().numpy().tobytes()
    return {"env": env_state, "obs": obs.cpu().tolist(), "obs_dtype": str(obs.dtype).removeprefix("torch."),
            "generator": base64.b64encode(generator_bytes).decode("ascii"), "log": log.state()}


def _restore_run_state(state: dict, envs, generator: torch.Generator, log: TrainingLog,
                       device: torch.device) -> torch.Tensor:
    envs.set_state(state["env"])
    raw = np.frombuffer(base64.b64decode(state["generator"]), dtype=np.uint8).copy()
    generator.set_state(torch.from_numpy(raw))
    log.restore(state["log"])
    return torch.tensor(state["obs"], dtype=getattr(torch, state["obs_dtype"]), device=device)


@contextlib.contextmanager
def _closing(envs, log, current_steps):
    try:
        yield
    finally:
        envs.close()
        log.close(current_steps())
