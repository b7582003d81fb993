"""The training machinery every algorithm shares, read top to bottom in ``run``.

Vector env, rollout buffers, masks for pseudo-transitions and forced FIRE steps, the truncation
bootstrap, episode statistics (``TrainingLog``), checkpoints, interrupts and resume live here once.
An algorithm (``a2c.py``, ``ppo.py``, ``pqn.py``) is a config dataclass (``TrainingConfig`` plus
its own fields) and an object with three parts that ``run`` calls:

* ``make_optimizer(params)``: its optimizer;
* ``act(network, obs, generator, steps) -> (actions, log_probs, values)``: what the agent does in
  the rollout (``sample_from_policy`` for actor-critics, epsilon-greedy for a Q-learner);
* ``update(learner, batch, progress, generator) -> stats``: learn from one rollout, taking
  gradient steps with ``learner.step(loss)``; ``progress`` is the share of ``total_steps`` done
  before this rollout (for schedules).

Checklist item numbers (docs/a2c-checklist.md) are given in comments where they arise.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from interpret_rl.agent import Q_LEARNERS, Agent
from interpret_rl.architectures import ObservationShapeError
from interpret_rl.distributed import Ranks
from interpret_rl.envs import default_env_settings, is_atari, make_vector_env
from interpret_rl.interrupts import TrainingInterrupted, stop_on_signals
from interpret_rl.policy import log_prob_and_entropy, network_log_std, sample_actions
from interpret_rl.training_checks import (
    ResumeStateError,
    check_network_fits,
    check_rollout_size,
    check_run_state,
    check_saved_config,
    network_refusal,
)
from interpret_rl.training_log import TrainingLog, next_multiple

ALGORITHMS = ("a2c", "ppo", "pqn", "dqn")
"""Training algorithms; each is a module ``interpret_rl.<name>`` with ``CONFIG`` (its config class),
``PRESETS``, ``config_from_preset`` and ``train``."""


def algorithm_module(name: str):
    if name not in ALGORITHMS:
        raise InvalidConfigError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}")
    return importlib.import_module(f"interpret_rl.{name}")


class InvalidConfigError(ValueError):
    """A setting outside its valid range."""


class UnknownPresetError(InvalidConfigError, KeyError):
    """A preset name the algorithm does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped before writing anything from it."""


@dataclass
class TrainingConfig:
    """Settings every algorithm has; an algorithm's config adds its own fields (and may change
    these defaults). Saved into the model's meta.json; ``algo`` is recorded beside it."""

    algo: ClassVar[str] = ""
    """Name recorded in meta.json (``a2c``, ``ppo``, ``pqn``)."""
    extra_log_columns: ClassVar[tuple[str, ...]] = ()
    """Statistics of ``update`` written to the training curve beside the common columns."""

    env_id: str = "CartPole-v1"
    """gymnasium id (``CartPole-v1``) or Atari id (``ALE/Breakout-v5``)."""
    total_steps: int = 500_000
    """Environment steps to train for (summed over all sub-environments)."""
    num_envs: int = 8
    """Sub-environments stepped in lockstep; one rollout holds ``num_envs * n_steps`` transitions."""
    n_steps: int = 5
    """Steps per sub-environment in one rollout."""
    gamma: float = 0.99
    """Discount factor."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this for learning (returns are reported unscaled): keeps the value
    targets of a task with large rewards (Pendulum: down to -16 a step) near unit scale."""
    lr: float = 7e-4
    """Learning rate."""
    lr_schedule: str = "constant"
    """``constant`` or ``linear`` (decays to zero at ``total_steps``)."""
    optimizer_eps: float = 1e-5
    """Epsilon of the optimizer."""
    max_grad_norm: float = 0.5
    """Clip of the global gradient norm."""
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

    def checks(self) -> dict[str, bool]:
        """``{field: is valid}``; an algorithm's config extends this with its own fields."""
        return {
            "total_steps": self.total_steps > 0,
            "num_envs": self.num_envs > 0,
            "n_steps": self.n_steps > 0,
            "gamma": 0.0 <= self.gamma <= 1.0,
            "reward_scale": self.reward_scale > 0,
            "lr": self.lr > 0,
            "lr_schedule": self.lr_schedule in ("constant", "linear"),
            "max_grad_norm": self.max_grad_norm > 0,
            "device": self.device == "cpu" or self.device.startswith("cuda"),
        }

    def validate(self) -> None:
        bad = [name for name, ok in self.checks().items() if not ok]
        if bad:
            name = bad[0]
            raise InvalidConfigError(f"invalid {self.algo.upper()} setting {name}={getattr(self, name)!r}")
        check_rollout_size(self)  # before the environments are made and the buffer allocated


def config_from_preset(config_class: type[TrainingConfig], presets: dict[str, dict], preset: str | None,
                       **overrides: Any) -> TrainingConfig:
    """``config_class`` from a named preset, then ``overrides`` (``None`` values are ignored)."""
    if preset is not None and preset not in presets:
        raise UnknownPresetError(f"unknown preset {preset!r} for {config_class.algo}; "
                                 f"choose one of {', '.join(presets)}")
    values = dict(presets[preset]) if preset else {}
    if overrides.get("architecture") and "architecture_args" not in overrides:
        values.pop("architecture_args", None)  # the preset's arguments belong to its own network
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = config_class(**values)
    config.validate()
    return config


def config_from_meta(config_class: type[TrainingConfig], saved: dict, **overrides: Any) -> TrainingConfig:
    """The config a model was trained with (its meta.json ``config``), with ``overrides``."""
    check_saved_config(config_class, saved)  # a crafted meta.json: one line instead of a TypeError
    known = {f.name for f in fields(config_class)}
    return config_class(**{**{k: v for k, v in saved.items() if k in known}, **overrides})


@dataclass
class Batch:
    """One rollout of ``T = n_steps`` steps in ``N = num_envs`` environments.

    ``rewards`` already hold the truncation bootstrap; ``dones[t]`` is 1 where transition
    t -> t+1 ended an episode for the learner; ``mask`` is False for transitions the agent did not
    choose (forced FIRE after a lost life: checklist items 2 and 8). ``values`` and ``log_probs``
    are what ``act`` returned when the action was taken.
    """

    obs: torch.Tensor          # (T, N, *obs_shape), uint8 for frames (item 9)
    actions: torch.Tensor      # (T, N) long; (T, N, A) float for continuous actions (unclipped)
    rewards: torch.Tensor      # (T, N)
    dones: torch.Tensor        # (T, N)
    mask: torch.Tensor         # (T, N) bool
    values: torch.Tensor       # (T, N)
    log_probs: torch.Tensor    # (T, N)
    next_obs: torch.Tensor | None = None  # (N, *obs_shape): the observation after the last step
    truncations: list = field(default_factory=list)
    """``(t, env indices, final observations, rewards before the bootstrap)`` for each step t where
    time limits cut episodes: a replaying learner (DQN) stores these instead, as the bootstrap would
    go stale in its buffer, and bootstraps from the final observation when it replays them."""

    @classmethod
    def empty(cls, T: int, N: int, obs_shape, obs_dtype, device, action_dims: int | None = None) -> Batch:
        """:param action_dims: dimensions of a continuous action, ``None`` for discrete actions."""
        def zeros(dtype=torch.float32):
            return torch.zeros((T, N), dtype=dtype, device=device)

        actions = (zeros(torch.long) if action_dims is None
                   else torch.zeros((T, N, action_dims), dtype=torch.float32, device=device))
        return cls(obs=torch.zeros((T, N, *obs_shape), dtype=obs_dtype, device=device),
                   actions=actions, rewards=zeros(), dones=zeros(), mask=zeros(torch.bool),
                   values=zeros(), log_probs=zeros())

    def flat(self, name: str) -> torch.Tensor:
        """A (T, N, ...) buffer as (T * N, ...)."""
        tensor = getattr(self, name)
        return tensor.reshape(-1, *tensor.shape[2:])


def sample_from_policy(network, obs: torch.Tensor, generator: torch.Generator, steps: int):
    """Actor-critic acting: sample from the policy (softmax of the logits, or the Gaussian of
    ``policy.py`` for continuous actions)."""
    logits, values = network(obs)
    log_std = network_log_std(network)
    actions = sample_actions(logits, generator, log_std)
    return actions, log_prob_and_entropy(logits, actions, log_std)[0], values


class Learner:
    """The network and its optimizer; ``step(loss)`` is one checked, clipped gradient step."""

    def __init__(self, network: torch.nn.Module, optimizer: torch.optim.Optimizer, ranks: Ranks,
                 max_grad_norm: float):
        self.network, self.optimizer, self.ranks, self.max_grad_norm = network, optimizer, ranks, max_grad_norm
        self.steps = 0  # env steps so far, for the error message

    def step(self, loss: torch.Tensor) -> float:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite loss {loss.item()} at step {self.steps}; the last checkpoint is kept")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.ranks.average_gradients(self.network)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.max_grad_norm)
        self.optimizer.step()
        return float(grad_norm)


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


def run(config: TrainingConfig, algorithm, *, out_dir: str | Path | None = None, progress: bool = False,
        tensorboard: bool = False, agent: Agent | None = None, resume: bool = False,
        on_update: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train with ``algorithm`` (see the module docstring); the arguments are those of ``a2c.train``."""
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
        space = envs.single_observation_space
        try:
            agent = Agent.for_env(envs, config.env_id, env_settings, config.architecture,
                                  config.architecture_args, device=device, q_values=config.algo in Q_LEARNERS)
        except ObservationShapeError as err:  # the constructor refused the shape (the Nature CNN given vectors)
            raise network_refusal(config.architecture, config.env_id, tuple(space.shape), err) from None
        check_network_fits(agent, np.zeros((1, *space.shape), dtype=space.dtype))
    agent.meta["algo"] = config.algo  # Agent.act reads it: a Q-learner acts greedily
    network = agent.network.to(device).train()
    if any(isinstance(m, torch.nn.Conv2d) for m in network.modules()):
        network.to(memory_format=torch.channels_last)  # see NatureCNNActorCritic.preprocess
    ranks.broadcast_weights(network)
    optimizer = algorithm.make_optimizer(network.parameters())
    if resume:
        registry.load_optimizer_state(out_dir, optimizer)
    learner = Learner(network, optimizer, ranks, config.max_grad_norm)
    # A resumed run draws fresh episodes and actions instead of replaying the first ones; each
    # rank gets its own block of env seeds.
    run_seed = config.seed + agent.steps_trained + ranks.rank * config.num_envs
    generator = torch.Generator(device=device).manual_seed(run_seed)

    T, N = config.n_steps, config.num_envs
    obs_shape = envs.single_observation_space.shape
    obs_dtype = torch.uint8 if envs.single_observation_space.dtype == np.uint8 else torch.float32
    action_dims = agent.n_actions if agent.is_continuous else None
    batch = Batch.empty(T, N, obs_shape, obs_dtype, device, action_dims)

    log = TrainingLog(out_dir, config, agent.steps_trained, progress=progress, tensorboard=tensorboard)
    obs = torch.as_tensor(envs.reset(seed=run_seed), device=device)  # item 16: seed + i per env
    if resume and agent.meta.get("resume_state"):  # continue exactly where the checkpoint stopped
        try:  # a crafted or damaged snapshot is refused before any of it is applied
            check_run_state(agent.meta["resume_state"], envs, generator, obs_shape)
        except ResumeStateError as err:
            raise registry.ModelLoadError(f"{Path(out_dir) / registry.META}: resume_state does not fit "
                                          f"this run: {err}") from None
        obs = _restore_run_state(agent.meta["resume_state"], envs, generator, log, device)

    def save() -> None:
        registry.save_checkpoint(agent, out_dir, config, optimizer, log.summary(),
                                 keep_snapshot=config.keep_checkpoints,
                                 resume_state=_run_state(envs, obs, generator, log))
    steps = agent.steps_trained
    reached_at = None
    next_checkpoint = next_multiple(steps, config.checkpoint_every_steps)
    start = time.perf_counter()
    with stop_on_signals() as stop, _closing(envs, log):
        while steps < config.total_steps and not ranks.any(bool(stop), device):
            progress_done = steps / config.total_steps
            if config.lr_schedule == "linear":
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * max(0.0, 1.0 - progress_done)

            # --- rollout: n_steps in every sub-environment -----------------------------------
            batch.truncations = []
            for t in range(T):
                with torch.no_grad():
                    actions, log_probs, values = algorithm.act(network, obs, generator,
                                                               steps + t * N * ranks.world_size)
                result = envs.step(actions.cpu().numpy())
                reward = torch.as_tensor(result.reward, device=device) * config.reward_scale
                cut = result.truncated & ~result.terminated  # a terminal on the last step is still one
                if cut.any():  # item 1: a time limit is not a terminal; bootstrap
                    idx = np.flatnonzero(cut)
                    final_obs = torch.as_tensor(result.final_obs[idx], device=device)
                    batch.truncations.append((t, torch.as_tensor(idx, device=device), final_obs, reward[idx]))
                    with torch.no_grad():
                        reward[idx] = reward[idx] + config.gamma * network(final_obs)[1]
                batch.obs[t] = obs
                batch.actions[t] = actions
                batch.log_probs[t] = log_probs
                batch.values[t] = values
                batch.rewards[t] = reward
                batch.dones[t] = torch.as_tensor(result.terminated | result.truncated, device=device)
                batch.mask[t] = torch.as_tensor(result.learn_mask, device=device)  # item 2 / 8
                obs = torch.as_tensor(result.obs, device=device)
                log.record_games(result.finished)
            batch.next_obs = obs
            steps += T * N * ranks.world_size

            # --- update (the algorithm's own) ------------------------------------------------
            learner.steps = steps
            stats = algorithm.update(learner, batch, progress_done, generator)
            if getattr(network, "obs_norm", None) is not None:  # after the update: see ObservationNormalizer
                network.obs_norm.update(batch.flat("obs"))
            agent.steps_trained = steps
            stats["lr"] = optimizer.param_groups[0]["lr"]
            if log.should_log(steps):
                log.write(steps, stats)
            if on_update is not None:  # with the recent mean return, for callers that prune (tune)
                on_update(steps, {**stats, "ep_rew_mean": log.mean_return()})
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
def _closing(envs, log):
    try:
        yield
    finally:
        envs.close()
        log.close()
