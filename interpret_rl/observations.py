"""Real observations to explain: collected by letting an agent play, or loaded from a ``.npz`` file.

Explanations of an RL agent only mean something on states its own policy reaches, so observations
are collected by running the agent's stochastic policy in its training environment (evaluation
settings: no reward clipping, a lost life does not end the game). The first ``warmup`` steps are
skipped (no-op starts and the empty first frame stacks say little) and then every ``stride``-th
observation is kept, so the observations are spread over a stretch of play instead of being
near-duplicates of consecutive frames. Same seed, same observations.

``collect_with_ground_truth`` also says what the emulator knew (``objects.GroundTruth``: RAM per
stacked frame, the emulator state to replay each observation from) and can spread the observations
over a whole game instead of its first seconds (``sample="game"``). In an ALE game it plays a
single emulator with the vector env's preprocessing (``atari_game.AtariGame``, bit-identical
observations, tested) because the vector env exposes no RAM.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from interpret_rl.atomic import atomic_write_bytes
from interpret_rl.envs import is_atari, make_vector_env
from interpret_rl.limits import check_npz, check_observation_count

NPZ_KEY = "observations"
SAMPLES = {
    "start": "the first stretch of a game: after `warmup` steps, every `stride`-th observation",
    "game": "spread evenly over one whole game played to its end (early, middle, late)",
}
MAX_GAME_STEPS = 27_000  # the 108,000-frame episode cap of the Atari settings, in agent steps


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


def save_observations(path: str | os.PathLike, observations: torch.Tensor, ground_truth=None) -> Path:
    """Write ``(N, *obs_shape)`` observations to a compressed ``.npz`` (key ``observations``), atomically;
    with ``ground_truth`` (``objects.GroundTruth``) its arrays too (keys ``ground_truth_*``)."""
    from interpret_rl.objects import ground_truth_arrays

    arrays = {NPZ_KEY: torch.as_tensor(observations).detach().cpu().numpy()}
    if ground_truth is not None:
        if len(ground_truth) != len(arrays[NPZ_KEY]):
            raise ValueError(f"ground truth for {len(ground_truth)} observations, given {len(arrays[NPZ_KEY])}")
        arrays.update(ground_truth_arrays(ground_truth))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_observations(path: str | os.PathLike, expected_shape: tuple[int, ...] | None = None,
                      count_limited: bool = True) -> torch.Tensor:
    """Read observations written by ``save_observations`` (never unpickles).

    :param expected_shape: the agent's ``observation_shape``; when given, a file whose observations
        have another shape is refused with a ``ValueError`` naming both.
    :param count_limited: refuse more observations than ``limits.max_observations()`` (a file given
        to be explained); False for our own caches, whose size their option bounds.
    :returns: ``(N, *obs_shape)`` float32.
    """
    path = Path(path)
    try:
        check_npz(path)  # sizes from the zip directory and the .npy headers, before numpy allocates
        with np.load(path, allow_pickle=False) as data:
            if not hasattr(data, "files"):
                raise ValueError(f"{path}: a .npy array, not a .npz file with the key {NPZ_KEY!r}")
            if NPZ_KEY not in data.files:
                raise ValueError(f"{path}: no array {NPZ_KEY!r} in the file (found: {', '.join(data.files) or 'none'})")
            if count_limited:  # the count from the .npy header, before the array is read
                check_observation_count(_rows(data.zip, f"{NPZ_KEY}.npy"), str(path))
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


def _rows(archive, member: str) -> int:
    """The first dimension the ``.npy`` header of ``member`` declares (0 for a scalar)."""
    with archive.open(member) as f:
        version = np.lib.format.read_magic(f)
        shape = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                 else np.lib.format.read_array_header_2_0(f))[0]
    return int(shape[0]) if shape else 0


def load_ground_truth(path: str | os.PathLike, count: int):
    """The ``objects.GroundTruth`` saved beside ``count`` observations in ``path``, or None when the
    file has none; ``ValueError`` for a damaged one (never unpickles)."""
    from interpret_rl.objects import ground_truth_from_arrays

    try:
        check_npz(Path(path))  # sizes checked before numpy allocates, as for the observations
        with np.load(path, allow_pickle=False) as data:
            return ground_truth_from_arrays(data, count, str(path))
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: cannot read ground truth ({err})") from None


def collect_with_ground_truth(agent, count: int, seed: int = 0, sample: str = "start", warmup: int = 16,
                              stride: int = 8):
    """Like ``collect_observations``, plus the emulator's ground truth and a choice of where to sample.

    :param sample: ``start`` (as ``collect_observations``) or ``game`` (see ``SAMPLES``).
    :returns: ``(observations (count, *obs_shape) float32, GroundTruth or None)``; None outside ALE.
    """
    if sample not in SAMPLES:
        raise ValueError(f"unknown sample {sample!r}; valid: {', '.join(SAMPLES)}")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if is_atari(agent.env_id):
        return _collect_atari(agent, count, seed, sample, warmup, stride)
    if sample == "start":
        return collect_observations(agent, count, seed=seed, warmup=warmup, stride=stride), None
    return _collect_classic_game(agent, count, seed), None


def spread(first: int, last: int, count: int) -> list[int]:
    """``count`` integers spread evenly over ``first..last`` (midpoints of equal parts, so neither
    the very first nor the very last step is favoured); repeats only when the range is shorter."""
    return [first + int((k + 0.5) * (last - first + 1) / count) for k in range(count)]


def _collect_classic_game(agent, count: int, seed: int) -> torch.Tensor:
    envs = make_vector_env(agent.env_id, 1, for_training=False, settings=agent.env_settings, num_threads=1)
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    seen: list[np.ndarray] = []
    try:
        obs = envs.reset(seed=seed)
        while len(seen) < MAX_GAME_STEPS:
            seen.append(np.asarray(obs[0], dtype=np.float32).copy())
            result = envs.step(agent.act(obs, generator=generator))
            if result.finished:
                break
            obs = result.obs
    finally:
        envs.close()
    return torch.from_numpy(np.stack([seen[i] for i in spread(0, len(seen) - 1, count)]))


def _collect_atari(agent, count: int, seed: int, sample: str, warmup: int, stride: int):
    """Play one ALE game, remembering the emulator state before every step and the action sent;
    the kept observations are then rebuilt by replaying their last ``stack_num`` steps (exact)."""
    from interpret_rl.atari_game import AtariGame
    from interpret_rl.objects import GroundTruth

    game = AtariGame(agent.env_id, agent.env_settings, seed=seed)
    stack = game.stack_num
    if sample == "start":
        wanted = [warmup + k * stride for k in range(count)]
        if wanted[0] < stack:
            raise ValueError(f"warmup must be at least {stack} (a full frame stack) to keep ground truth, got {warmup}")
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    states: list[np.ndarray] = []  # states[k]: before step k + 1
    actions: list[int] = []
    was_training = agent.network.training
    agent.network.eval()
    try:
        obs = game.reset()
        while len(actions) < MAX_GAME_STEPS and (sample == "game" or len(actions) < wanted[-1]):
            states.append(game.save_state())
            info = game.step(int(agent.act(obs[None], generator=generator)[0]))
            actions.append(info.action)
            obs = game.observation()
            if info.game_over:
                break
    finally:
        agent.network.train(was_training)
    if sample == "game":
        if len(actions) < stack:
            raise ValueError(f"the game ended after {len(actions)} steps, before a full frame stack")
        wanted = spread(stack, len(actions), count)
    elif len(actions) < wanted[-1]:
        raise ValueError(f"the game ended after {len(actions)} steps, before step {wanted[-1]}; "
                         "ask for fewer observations or a smaller stride, or sample='game'")
    observations, rams, valid = [], [], []
    for t in wanted:  # the observation after step t stacks the frames of steps t-stack+1 .. t
        observations.append(game.replay(states[t - stack], actions[t - stack:t]))
        ram, frame_valid = game.stacked_ram()
        rams.append(ram)
        valid.append(frame_valid)
    truth = GroundTruth(
        env_id=agent.env_id, settings=dict(agent.env_settings or {}), ram=np.stack(rams), frame_valid=np.stack(valid),
        states=np.stack([states[t - stack] for t in wanted]),
        stack_actions=np.array([actions[t - stack:t] for t in wanted], dtype=np.int64),
        facts=[{"step": t, "game_steps": len(actions) if sample == "game" else None, "seed": seed} for t in wanted])
    detector = truth.detector()
    if detector is not None:
        for facts, ram in zip(truth.facts, truth.ram):
            facts.update(detector.describe(ram[-1, -1]))
    return torch.from_numpy(np.stack(observations).astype(np.float32)), truth
