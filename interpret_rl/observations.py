"""Real observations to explain: collected by letting an agent play, or loaded from a ``.npz`` file.

Explanations of an RL agent only mean something on states its own policy reaches, so observations
are collected by running the agent's stochastic policy in its training environment (evaluation
settings: no reward clipping, a lost life does not end the game). The first ``warmup`` steps are
skipped (no-op starts and the empty first frame stacks say little) and then every ``stride``-th
observation is kept, so the observations are spread over a stretch of play instead of being
near-duplicates of consecutive frames. Same seed, same observations.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from interpret_rl.atomic import atomic_write_bytes
from interpret_rl.envs import make_vector_env

NPZ_KEY = "observations"


def collect_observations(agent, count: int, seed: int = 0, warmup: int = 16, stride: int = 8) -> torch.Tensor:
    """Play with ``agent``'s stochastic policy and keep ``count`` observations.

    :param count: how many observations to return (at least 1).
    :param seed: seeds the environment's reset and the action sampling.
    :param warmup: steps played before the first kept observation.
    :param stride: steps between kept observations.
    :returns: ``(count, *agent.observation_shape)`` float32 on the CPU, in the env's own scale
        (Atari: 0..255 with the newest frame last).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if warmup < 0 or stride < 1:
        raise ValueError(f"warmup must be >= 0 and stride >= 1, got warmup={warmup}, stride={stride}")
    # One emulator thread: a single environment gains nothing from more, and the cores may be busy.
    envs = make_vector_env(agent.env_id, 1, for_training=False, settings=agent.env_settings, num_threads=1)
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    kept: list[np.ndarray] = []
    was_training = agent.network.training
    agent.network.eval()
    try:
        obs = envs.reset(seed=seed)
        step = 0
        while len(kept) < count:
            if step >= warmup and (step - warmup) % stride == 0:
                kept.append(np.asarray(obs[0], dtype=np.float32).copy())
            obs = envs.step(agent.act(obs, generator=generator)).obs
            step += 1
    finally:
        envs.close()
        agent.network.train(was_training)
    return torch.from_numpy(np.stack(kept))


def check_observations(observations, expected_shape: tuple[int, ...], where: str = "observations") -> torch.Tensor:
    """``observations`` as a float32 tensor ``(N, *expected_shape)``; ``ValueError`` naming expected and
    actual shape when it does not fit, or when it holds no observation or a non-finite value."""
    tensor = torch.as_tensor(np.asarray(observations) if not torch.is_tensor(observations) else observations)
    expected = "(N, " + ", ".join(str(d) for d in expected_shape) + ")"
    if tensor.dim() != len(expected_shape) + 1 or tuple(tensor.shape[1:]) != tuple(expected_shape):
        raise ValueError(f"{where}: expected shape {expected} for this agent, got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError(f"{where}: holds no observation (shape {tuple(tensor.shape)})")
    tensor = tensor.detach().to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{where}: holds NaN or infinite values")
    return tensor


def save_observations(path: str | os.PathLike, observations: torch.Tensor) -> Path:
    """Write ``(N, *obs_shape)`` observations to a compressed ``.npz`` (key ``observations``), atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{NPZ_KEY: torch.as_tensor(observations).detach().cpu().numpy()})
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_observations(path: str | os.PathLike, expected_shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Read observations written by ``save_observations`` (never unpickles).

    :param expected_shape: the agent's ``observation_shape``; when given, a file whose observations
        have another shape is refused with a ``ValueError`` naming both.
    :returns: ``(N, *obs_shape)`` float32.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError(f"{path}: a .npy array, not a .npz file with the key {NPZ_KEY!r}")
            if NPZ_KEY not in data.files:
                raise ValueError(f"{path}: no array {NPZ_KEY!r} in the file (found: {', '.join(data.files) or 'none'})")
            array = data[NPZ_KEY]
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: cannot read observations ({err})") from None
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        # numpy says "allow_pickle=False" for object arrays and for files that are not numpy at all
        raise ValueError(f"{path}: not a .npz file of plain numeric arrays (numpy: {err})") from None
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{path}: observations must be real numbers, not {array.dtype}")
    if expected_shape is None:
        return torch.from_numpy(array.astype(np.float32))
    return check_observations(array.astype(np.float32), tuple(expected_shape), where=str(path))
