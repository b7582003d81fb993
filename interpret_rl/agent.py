"""An agent: an actor-critic network plus the facts needed to rebuild and run it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from interpret_rl.architectures import ARCHITECTURES, build_network

Q_LEARNERS = ("pqn", "dqn", "qrdqn")
"""Algorithms whose network outputs Q-values: their agent acts greedily (``Agent.act``)."""


def architectures() -> dict[str, type[nn.Module]]:
    """Every registered network class by name: the built-in ones and those of plugins."""
    return ARCHITECTURES.all()


def space_to_dict(space) -> dict[str, Any]:
    """A JSON-safe description of a Box or Discrete space (infinite bounds become ``None``); a Box
    action space describes a continuous policy's actions."""
    if hasattr(space, "n"):
        return {"type": "Discrete", "n": int(space.n)}

    def finite_or_none(values: np.ndarray) -> list:
        return [None if not np.isfinite(v) else float(v) for v in values.reshape(-1)]

    low, high = np.asarray(space.low), np.asarray(space.high)
    uniform = low.size > 0 and (low == low.flat[0]).all() and (high == high.flat[0]).all()
    return {
        "type": "Box",
        "shape": list(space.shape),
        "dtype": str(space.dtype),
        "low": finite_or_none(low.flat[:1]) if uniform else finite_or_none(low),
        "high": finite_or_none(high.flat[:1]) if uniform else finite_or_none(high),
    }


def _auto_architecture(shape: tuple[int, ...]) -> str:
    """``nature-cnn`` for Atari-sized frames, ``small-cnn`` for small grids (MinAtar's 10x10), else ``mlp``."""
    if len(shape) != 3:
        return "mlp"
    return "nature-cnn" if min(shape[1:]) >= 36 else "small-cnn"


@dataclass
class Agent:
    """A trained (or training) actor-critic or Q-network and what it was trained on.

    :ivar network: maps ``(B, *obs_shape)`` observations to ``(logits (B, A), value (B,))``; for a
        Q-learner (``is_q_learner``) to ``(Q-values (B, A), max_a Q (B,))``.
    :ivar env_id: the environment it acts in.
    :ivar env_settings: the environment settings it was trained with.
    :ivar architecture: registered name of the network class; with ``architecture_args`` rebuilds it.
    :ivar observation_space / action_space: JSON descriptions (see ``space_to_dict``).
    :ivar action_meanings: a name per action (``FIRE``, ``LEFT``...), used by targets like ``action:FIRE``.
    """

    network: nn.Module
    env_id: str
    env_settings: dict
    architecture: str
    architecture_args: dict
    observation_space: dict
    action_space: dict
    action_meanings: list[str]
    steps_trained: int = 0
    name: str | None = None
    meta: dict = field(default_factory=dict)
    """The full meta.json this agent was loaded from (empty for a fresh agent)."""

    @classmethod
    def for_env(cls, envs, env_id: str, env_settings: dict, architecture: str = "auto",
                architecture_args: dict | None = None, device: str | torch.device = "cpu",
                q_values: bool = False) -> Agent:
        """A freshly initialised agent for the spaces of ``envs`` (a ``VectorEnv``).

        :param q_values: ``auto`` picks a Q-network (``nature-cnn-q``, ``mlp-q``) instead of an actor-critic.
        """
        from interpret_rl.envs import UnsupportedSpaceError, is_continuous_space, q_learner_refusal

        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        continuous = is_continuous_space(action_space)
        n_actions = int(np.prod(action_space.shape)) if continuous else int(action_space.n)
        if continuous and q_values:
            raise q_learner_refusal(env_id)
        if architecture == "auto":
            architecture = _auto_architecture(obs_space.shape) + ("-q" if q_values else "")
        # One constructor contract for every network, built-in or a plugin's (docs/methods-api.md).
        # The env decides the shapes: a user's architecture argument may not override them.
        from_env = {"observation_shape", "n_actions", "continuous"} & set(architecture_args or {})
        if from_env:
            from interpret_rl.architectures import ArchitectureArgsError

            raise ArchitectureArgsError(f"architecture argument {', '.join(sorted(from_env))} comes from the "
                                        f"environment {env_id}; set only the network's own arguments")
        args = {"observation_shape": [int(n) for n in obs_space.shape], "n_actions": n_actions,
                **(architecture_args or {})}
        if continuous:
            if architecture != "mlp":
                raise UnsupportedSpaceError(f"{env_id} has continuous (Box) actions; only the mlp architecture "
                                            f"has a Gaussian policy, not {architecture!r}")
            args["continuous"] = True
        network = build_network(architecture, args).to(device)
        return cls(network=network, env_id=env_id, env_settings=dict(env_settings),
                   architecture=architecture, architecture_args=args,
                   observation_space=space_to_dict(obs_space), action_space=space_to_dict(envs.single_action_space),
                   action_meanings=list(envs.action_meanings))

    @property
    def algo(self) -> str:
        """The algorithm that trained it, as recorded in meta.json (older models: ``a2c``)."""
        return self.meta.get("algo", "a2c")

    @property
    def is_q_learner(self) -> bool:
        """Its outputs are Q-values (``action:k`` is Q(s, k), ``value`` is max Q), not policy logits."""
        return self.algo in Q_LEARNERS

    @property
    def is_continuous(self) -> bool:
        """Its actions are real vectors (a Box space): ``logits`` are the Gaussian policy's means."""
        return self.action_space.get("type") == "Box"

    def action_strength(self, outputs: torch.Tensor, action: int) -> str:
        """How strongly one observation's ``outputs`` ``(A,)`` back ``action``, in words the agent's
        kind allows: ``p=0.43`` for a policy, ``Q=1.23`` for a Q-learner (a softmax of Q-values is
        no probability of anything), ``mean=0.81`` for action dimension ``action`` of a Gaussian policy."""
        if self.is_continuous:
            return f"mean={float(outputs[action]):.3g}"
        if self.is_q_learner:
            return f"Q={float(outputs[action]):.3g}"
        return f"p={float(torch.softmax(outputs, -1)[action]):.2f}"

    def describe_action(self, outputs: torch.Tensor, action) -> tuple[str, str]:
        """``(what was done, how strongly the policy backs it)`` for one observation's ``outputs``
        ``(A,)``: ``("LEFT", "p=0.43")``; for a continuous agent ``action`` is the vector sent
        (before the env's clipping): ``("TORQUE=+1.2", "mean +0.81, std 0.35")``."""
        if not self.is_continuous:
            return self.action_meanings[int(action)], self.action_strength(outputs, int(action))
        from interpret_rl.policy import network_log_std

        values = np.asarray(action, dtype=np.float64).reshape(-1)
        log_std = network_log_std(self.network)
        stds = [float("nan")] * len(values) if log_std is None else log_std.detach().exp().tolist()
        taken = ", ".join(f"{name}={v:+.2g}" for name, v in zip(self.action_meanings, values))
        backing = ", ".join(f"mean {float(m):+.2g}, std {s:.2g}" for m, s in zip(outputs.detach(), stds))
        return taken, backing

    @property
    def n_actions(self) -> int:
        """Discrete actions, or dimensions of a continuous action."""
        if self.is_continuous:
            return int(np.prod(self.action_space["shape"]))
        return int(self.action_space["n"])

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space["shape"])

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def act(self, obs: np.ndarray, deterministic: bool = False,
            generator: torch.Generator | None = None) -> np.ndarray:
        """Actions for a batch of observations: sampled from the policy, or its argmax (for a
        continuous policy: its mean; the environment clips to the action bounds).

        A Q-learner always takes the action of the largest Q-value (its exploration belongs to
        training only), whatever ``deterministic`` says.
        """
        from interpret_rl.policy import network_log_std, sample_actions

        with torch.no_grad():
            logits, _ = self.network(torch.as_tensor(obs, device=self.device))
            if self.is_continuous:
                log_std = None if deterministic else network_log_std(self.network)
                return (logits if log_std is None else sample_actions(logits, generator, log_std)).cpu().numpy()
            if deterministic or self.is_q_learner:
                return logits.argmax(-1).cpu().numpy()
            probs = torch.softmax(logits, -1)
            return torch.multinomial(probs, 1, generator=generator)[:, 0].cpu().numpy()

    def action_index(self, name_or_index: str | int) -> int:
        """``2`` or ``"2"`` or ``"FIRE"`` -> action index; ``ValueError`` listing valid names."""
        text = str(name_or_index)
        if text.lstrip("-").isdigit():
            index = int(text)
            if 0 <= index < self.n_actions:
                return index
        elif text.upper() in [m.upper() for m in self.action_meanings]:
            return [m.upper() for m in self.action_meanings].index(text.upper())
        raise ValueError(
            f"unknown action {text!r}; valid: 0..{self.n_actions - 1} or {', '.join(self.action_meanings)}")
