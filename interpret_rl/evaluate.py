"""Evaluate an agent the way the published anchors do.

Full games with unclipped rewards (all lives on Atari), no sticky actions, up to 30 no-op starts,
the stochastic policy. Sub-environments each play a fixed share of the episodes, so short games
are not over-counted (taking "the first K games to finish" would bias the mean downwards).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from interpret_rl.agent import Agent
from interpret_rl.envs import make_vector_env


@dataclass
class EvalResult:
    scores: list[float]
    lengths: list[int]
    seed: int
    deterministic: bool
    steps_trained: int = 0  # of the agent evaluated, so a recorded score says which weights it is for
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))

    def as_dict(self) -> dict:
        return {"episodes": len(self.scores), "mean": round(self.mean, 3), "std": round(self.std, 3),
                "min": float(np.min(self.scores)), "max": float(np.max(self.scores)),
                "mean_length": float(np.mean(self.lengths)), "seed": self.seed,
                "policy": "greedy" if self.deterministic else "stochastic", "steps_trained": self.steps_trained}


def evaluate(agent: Agent, episodes: int = 10, seed: int = 0, deterministic: bool = False,
             num_envs: int | None = None, record_first: bool = False, max_steps: int = 10_000_000) -> EvalResult:
    """Play ``episodes`` full games and return their unclipped scores.

    :param record_first: keep the frames of the first game of sub-environment 0 (for a video).
    :param max_steps: safety stop on vector steps (a policy that never ends a game).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    deterministic = deterministic or agent.is_q_learner  # a Q-learner acts greedily (Agent.act): say so
    num_envs = num_envs or min(episodes, 8)
    quotas = np.full(num_envs, episodes // num_envs)
    quotas[: episodes % num_envs] += 1
    done_counts = np.zeros(num_envs, dtype=int)
    envs = make_vector_env(agent.env_id, num_envs, for_training=False, settings=agent.env_settings,
                           render_first=record_first)
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    scores, lengths, frames = [], [], []
    try:
        obs = envs.reset(seed=seed)
        agent.network.eval()
        for _ in range(max_steps):
            if record_first and done_counts[0] == 0:
                rendered = envs.render_first()
                frames.append(rendered if rendered is not None else observation_frame(obs[0]))
            result = envs.step(agent.act(obs, deterministic=deterministic, generator=generator))
            for env_index, (score, length) in zip(result.finished_env_ids, result.finished):
                if done_counts[env_index] < quotas[env_index]:
                    scores.append(score)
                    lengths.append(length)
                done_counts[env_index] += 1
            obs = result.obs
            if (done_counts >= quotas).all():
                break
        else:
            raise RuntimeError(f"evaluation did not finish {episodes} episodes in {max_steps} steps")
    finally:
        envs.close()
    return EvalResult(scores=scores, lengths=lengths, seed=seed, deterministic=deterministic,
                      steps_trained=agent.steps_trained, frames=frames)


def observation_frame(obs: np.ndarray) -> np.ndarray:
    """A picture of one observation: the newest stacked frame, or a bar chart of a vector."""
    if obs.ndim == 3:  # (frames, H, W): newest frame last
        return np.asarray(obs[-1], dtype=np.uint8)
    values = np.asarray(obs, dtype=np.float32).reshape(-1)
    height, bar = 64, 16
    image = np.full((height, bar * len(values)), 255, dtype=np.uint8)
    for i, v in enumerate(np.tanh(values)):
        top, bottom = sorted((height // 2, int(height // 2 - v * (height // 2 - 2))))
        image[top:bottom + 1, i * bar + 2:(i + 1) * bar - 2] = 0
    return image
