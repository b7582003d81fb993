"""Every bundled agent loads, matches its recorded hashes, and plays; its recorded score is real."""

from __future__ import annotations

import numpy as np
import pytest

from interpret_rl import registry
from interpret_rl.atomic import sha256_file
from interpret_rl.envs import make_vector_env
from interpret_rl.evaluate import evaluate

BUNDLED = sorted(p.name for p in registry.BUNDLED_DIR.iterdir() if (p / registry.META).is_file())


def test_the_default_agents_are_bundled():
    assert "cartpole-a2c" in BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_agent_matches_its_hashes_and_plays_a_short_episode(name):
    path = registry.BUNDLED_DIR / name
    meta = registry.read_meta(path)
    for filename, digest in meta["files"].items():
        assert sha256_file(path / filename) == digest, filename
    assert {"model.safetensors", "training_curve.csv", "training_curve.png"} <= set(meta["files"])
    assert meta["evaluation"]["episodes"] >= 10 and meta["steps_trained"] > 0
    agent = registry.load_agent(name)
    registry.check_spaces(meta, meta["observation_space"], meta["action_space"])
    envs = make_vector_env(agent.env_id, 1, for_training=False, settings=agent.env_settings)
    obs = envs.reset(seed=0)
    for _ in range(200):
        action = agent.act(obs)
        assert 0 <= int(action[0]) < agent.n_actions
        obs = envs.step(action).obs
    envs.close()
    assert obs.shape == (1, *agent.observation_shape)


@pytest.mark.parametrize("name", [n for n in BUNDLED if not n.startswith("breakout")])
def test_recorded_score_is_reproduced_within_its_spread(name):
    """Short games only (Breakout's full games take too long for the unit suite)."""
    agent = registry.load_agent(name)
    recorded = agent.meta["evaluation"]
    result = evaluate(agent, episodes=3, seed=recorded["seed"])
    assert abs(result.mean - recorded["mean"]) <= 3 * recorded["std"] + 0.05 * abs(recorded["mean"]) + 1e-6
    assert np.isfinite(result.scores).all()


@pytest.mark.slow
def test_bundled_breakout_agent_plays_a_full_game_well():
    """One full game (all lives, unclipped, stochastic policy) scores what the issue asked of the
    agent: at least 100. The recorded evaluation's worst of 30 games was 217, random play about 1."""
    if "breakout-a2c" not in BUNDLED:
        pytest.skip("no bundled Breakout agent")
    agent = registry.load_agent("breakout-a2c")
    recorded = agent.meta["evaluation"]
    assert recorded["episodes"] == 30 and recorded["mean"] >= 100
    assert recorded["steps_trained"] == agent.steps_trained
    result = evaluate(agent, episodes=1, seed=recorded["seed"])
    assert result.scores[0] >= 100, result.scores
