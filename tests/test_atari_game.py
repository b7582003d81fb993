"""The single-emulator collector reproduces ale_py's AtariVectorEnv observation for observation,
replays are exact, and ground truth survives the npz round trip (without pickle)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpret_rl.atari_game import AtariGame
from interpret_rl.envs import make_vector_env
from interpret_rl.observations import (
    collect_with_ground_truth,
    load_ground_truth,
    load_observations,
    save_observations,
)

BREAKOUT = "ALE/Breakout-v5"


def matching_noops(game: AtariGame, first_obs: np.ndarray) -> int:
    """The vector env draws its no-op count with its own C++ RNG: find the count that gives its
    first observation (exactly one does; the frames differ by then)."""
    found = [n for n in range(game.noop_max) if np.array_equal(game.reset(n), first_obs)]
    assert len(found) == 1, found
    game.reset(found[0])
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_same_observations_as_the_vector_env(seed):
    """Random actions for 500 steps (several lost lives and whole games): every observation is
    bit-identical to AtariVectorEnv's, including the forced FIRE after a lost life and resets."""
    envs = make_vector_env(BREAKOUT, 1, for_training=False, num_threads=1)
    game = AtariGame(BREAKOUT, seed=seed)
    rng = np.random.default_rng(seed)
    lives_lost = games = 0
    try:
        matching_noops(game, envs.reset(seed=seed)[0])
        for _ in range(500):
            action = int(rng.integers(4))
            result = envs.step(np.array([action]))
            info = game.step(action)
            lives_lost += info.life_lost
            if info.game_over:  # the vector env restarted in the same step
                games += 1
                matching_noops(game, result.obs[0])
                continue
            assert np.array_equal(game.observation(), result.obs[0])
    finally:
        envs.close()
    assert lives_lost >= 3 and games >= 1, (lives_lost, games)  # the checked stretch held both events


def test_replay_rebuilds_the_observation_exactly():
    game = AtariGame(BREAKOUT, seed=2)
    game.reset()
    rng = np.random.default_rng(2)
    states, actions = [], []
    for _ in range(60):
        states.append(game.save_state())
        actions.append(game.step(int(rng.integers(4))).action)
    expected, (ram, valid) = game.observation(), game.stacked_ram()
    assert np.array_equal(game.replay(states[-4], actions[-4:]), expected)
    replayed_ram, replayed_valid = game.stacked_ram()
    assert np.array_equal(replayed_ram, ram) and valid.all() and replayed_valid.all()


def test_collect_with_ground_truth(cnn_agent, tmp_path):
    obs, truth = collect_with_ground_truth(cnn_agent, 3, seed=4, sample="start", warmup=8, stride=5)
    again, truth_again = collect_with_ground_truth(cnn_agent, 3, seed=4, sample="start", warmup=8, stride=5)
    assert obs.shape == (3, 4, 84, 84) and torch.equal(obs, again)
    assert np.array_equal(truth.ram, truth_again.ram) and truth.ram.shape == (3, 4, 2, 128)
    assert [f["step"] for f in truth.facts] == [8, 13, 18] and truth.frame_valid.all()
    assert {"lives", "score", "bricks_left"} <= set(truth.facts[0])
    path = save_observations(tmp_path / "obs.npz", obs, truth)
    loaded = load_ground_truth(path, 3)
    assert torch.equal(load_observations(path, (4, 84, 84)), obs)
    for name in ("ram", "frame_valid", "states", "stack_actions"):
        assert np.array_equal(getattr(loaded, name), getattr(truth, name)), name
    assert loaded.env_id == BREAKOUT and loaded.facts == truth.facts
    assert load_ground_truth(save_observations(tmp_path / "plain.npz", obs), 3) is None


def test_game_sampling_spreads_over_the_whole_game(cnn_agent):
    """A random-weight agent loses quickly, so one whole game is cheap to play here."""
    obs, truth = collect_with_ground_truth(cnn_agent, 4, seed=0, sample="game")
    steps = [f["step"] for f in truth.facts]
    length = truth.facts[0]["game_steps"]
    assert steps == sorted(steps) and steps[0] < length / 4 and steps[-1] > 3 * length / 4
    assert truth.facts[-1]["lives"] < truth.facts[0]["lives"]  # late in the game: lives were lost


def test_game_sampling_outside_ale_spreads_over_one_episode(mlp_agent):
    """CartPole has no emulator: no ground truth, but the observations still span the episode."""
    obs, truth = collect_with_ground_truth(mlp_agent, 3, seed=2, sample="game")
    again, _ = collect_with_ground_truth(mlp_agent, 3, seed=2, sample="game")
    assert truth is None and obs.shape == (3, 4) and torch.equal(obs, again)
    assert len({tuple(row.tolist()) for row in obs}) == 3


def test_damaged_ground_truth_is_refused(cnn_agent, tmp_path):
    obs, truth = collect_with_ground_truth(cnn_agent, 2, seed=0, warmup=4, stride=2)
    truth.ram = truth.ram[:, :, :1]  # one raw frame's RAM instead of two
    path = save_observations(tmp_path / "bad.npz", obs, truth)
    with pytest.raises(ValueError, match="ground_truth_ram must be uint8"):
        load_ground_truth(path, 2)
    with pytest.raises(ValueError, match="unknown sample 'middle'"):
        collect_with_ground_truth(cnn_agent, 2, sample="middle")
