"""Environment semantics the learner depends on (a2c-checklist items 2, 7, 8, 10, 16)."""

from __future__ import annotations

import numpy as np
import pytest

from interpret_rl.envs import UnknownEnvError, atari_rom_name, check_env_id, make_vector_env


@pytest.fixture(scope="module")
def breakout():
    envs = make_vector_env("ALE/Breakout-v5", 2, for_training=True, num_threads=1)
    yield envs
    envs.close()


def test_atari_observations_are_uint8_channels_first_newest_frame_last(breakout):
    obs = breakout.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    for _ in range(5):
        nxt = breakout.step(np.array([1, 1])).obs
        # the stack shifts left by one frame: yesterday's newest is today's second newest
        np.testing.assert_array_equal(nxt[:, :3], obs[:, 1:])
        obs = nxt


def test_sub_environments_get_different_seeds(breakout):
    obs = breakout.reset(seed=0)
    for _ in range(60):
        obs = breakout.step(np.array([3, 3])).obs
    # same actions, different seeds -> no-op starts differ -> different screens
    assert not np.array_equal(obs[0], obs[1])


def test_lost_life_is_terminal_for_learning_then_fire_is_forced_and_masked():
    envs = make_vector_env("ALE/Breakout-v5", 1, for_training=True, num_threads=1)
    envs.reset(seed=1)
    rng = np.random.default_rng(0)
    saw_life_loss = False
    for _ in range(5_000):
        result = envs.step(rng.integers(0, 4, 1))
        assert set(np.unique(result.reward)) <= {-1.0, 0.0, 1.0}  # item 7: clipped for learning
        if result.terminated[0] and not result.finished:
            saw_life_loss = True
            after = envs.step(np.array([0]))  # the agent asks for NOOP ...
            assert not after.learn_mask[0]  # ... but FIRE is sent and the step is masked (item 8)
            if after.finished:
                break
        if result.finished:
            break
    envs.close()
    assert saw_life_loss
    assert result.finished or after.finished


def test_full_game_score_is_unclipped_and_spans_all_lives():
    envs = make_vector_env("ALE/Breakout-v5", 1, for_training=False, num_threads=1)
    envs.reset(seed=3)
    rng = np.random.default_rng(3)
    terminals = 0
    for _ in range(20_000):
        result = envs.step(rng.integers(0, 4, 1))
        terminals += int(result.terminated[0])
        if result.finished:
            score, length = result.finished[0]
            break
    envs.close()
    assert terminals == 1  # for evaluation only the game over ends an episode, not each life
    assert length > 100 and score >= 0


def test_classic_envs_reset_in_the_same_step_and_keep_the_final_observation():
    envs = make_vector_env("CartPole-v1", 2)
    envs.reset(seed=0)
    for _ in range(500):
        result = envs.step(np.zeros(2, dtype=np.int64))  # always left: falls within ~10 steps
        if result.terminated.any():
            i = int(np.flatnonzero(result.terminated)[0])
            assert abs(result.final_obs[i][2]) > 0.2  # the pole had fallen in the final observation
            assert abs(result.obs[i][2]) < 0.06  # and the next observation is a fresh start
            assert result.finished and result.finished[0][0] == result.finished[0][1]
            break
    else:
        pytest.fail("CartPole never ended")
    envs.close()


def test_unknown_env_ids_are_refused_with_a_suggestion():
    with pytest.raises(UnknownEnvError, match="did you mean CartPole-v1"):
        check_env_id("CartPole-v2")
    with pytest.raises(UnknownEnvError, match="unknown environment 'ALE/Brekout-v5'"):
        check_env_id("ALE/Brekout-v5")
    assert atari_rom_name("ALE/MontezumaRevenge-v5") == "montezuma_revenge"
    assert atari_rom_name("BreakoutNoFrameskip-v4") == "breakout"
