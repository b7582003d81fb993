"""A pool of real states: what the agent's own play shows it, collected once per agent and cached.

Feature visualisation needs a reference: the real range of a target (is the synthetic image's
activation one the agent ever meets?), the real states closest to a synthetic one (is it a frame
the game could show?), the dataset examples of a target, and the training data of a learned prior.
All of these come from one pool per (weights, size, seed, epsilon).

The pool is split over ``GAMES`` games, each started from its own seed, so it is not the first
minutes of one game; ``epsilon`` is the share of uniformly random actions, so states the policy
alone rarely reaches (a missed ball, a paddle at the far wall) appear too. Games of a pool with
seed ``s`` use the env seeds ``s * GAMES ... s * GAMES + GAMES - 1``, so pools with different seeds
come from different games (a held-out pool: same agent, another seed).

Cached as ``pools/pool-<sha12>-n<size>-s<seed>-e<epsilon>.npz`` (written atomically) in the
agent's own registry folder, or under ``$INTERPRET_RL_HOME/artefacts`` for bundled read-only models
and agents that are not saved (see ``artefacts.artefact_dirs``). A bundled model may ship its pools
in its own folder (``bundled/<name>/pools/``), read from there.
"""

from __future__ import annotations

from pathlib import Path

import torch

from interpret_rl.observations import collect_observations, load_observations, save_observations

GAMES = 4
STRIDE = 8  # steps between kept states: neighbours differ by more than a ball's move, yet collecting stays cheap
WARMUP = 16


class _Exploring:
    """The agent, but a share ``epsilon`` of its actions are uniform random (seeded)."""

    def __init__(self, agent, epsilon: float, seed: int):
        self._agent, self._epsilon = agent, epsilon
        self._generator = torch.Generator().manual_seed(10_007 + seed)

    def __getattr__(self, name):
        return getattr(self._agent, name)

    def act(self, obs, deterministic: bool = False, generator: torch.Generator | None = None):
        actions = self._agent.act(obs, deterministic=deterministic, generator=generator)
        if self._epsilon > 0:
            explore = torch.rand(len(actions), generator=self._generator) < self._epsilon
            random = torch.randint(0, self._agent.n_actions, (len(actions),), generator=self._generator)
            actions = actions.copy()
            actions[explore.numpy()] = random[explore].numpy()
        return actions


def pool_path(agent, size: int, seed: int, epsilon: float) -> Path:
    """Where the pool with these settings is cached (the agent's writable artefact folder)."""
    from interpret_rl.artefacts import artefact_dirs, weights_sha256

    sha = weights_sha256(agent)
    return artefact_dirs(agent)[0] / "pools" / f"pool-{sha[:12]}-n{size}-s{seed}-e{epsilon:g}.npz"


def _cached_copies(agent, name: str) -> list[Path]:
    """The cached pool files of this name: the writable one, then one shipped with a bundled model."""
    from interpret_rl.artefacts import artefact_dirs

    return [folder / "pools" / name for folder in artefact_dirs(agent) if (folder / "pools" / name).is_file()]


def real_state_pool(agent, size: int = 1000, seed: int = 0, epsilon: float = 0.0) -> torch.Tensor:
    """``size`` real states from ``GAMES`` games played by ``agent``'s own stochastic policy.

    :param size: how many states (at least ``1``).
    :param seed: picks the games (pools with different seeds share no game).
    :param epsilon: share of uniformly random actions, in ``[0, 1]``.
    :returns: ``(size, *agent.observation_shape)`` float32 on the CPU in the env's own scale
        (Atari: 0..255, newest frame last). Read from the cache when it was collected before.
    """
    if size < 1:
        raise ValueError(f"pool size must be at least 1, got {size}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    path = pool_path(agent, size, seed, epsilon)
    for cached in _cached_copies(agent, path.name):
        try:
            return load_observations(cached, agent.observation_shape, count_limited=False)  # its size is bounded
        except ValueError:
            pass  # a damaged cache is collected again and replaced
    player = _Exploring(agent, epsilon, seed) if epsilon > 0 else agent
    counts = [size // GAMES + (1 if g < size % GAMES else 0) for g in range(GAMES)]
    parts = [collect_observations(player, count, seed=seed * GAMES + g, warmup=WARMUP, stride=STRIDE)
             for g, count in enumerate(counts) if count > 0]
    pool = torch.cat(parts)
    integral = str(agent.observation_space.get("dtype", "")) == "uint8"
    save_observations(path, pool.to(torch.uint8) if integral else pool)  # uint8: a quarter of the disk
    return pool
