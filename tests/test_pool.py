"""The real-state pool: the agent's own play, several games, cached per weights and settings."""

from __future__ import annotations

import pytest
import torch

from interpret_rl.artefacts import weights_sha256
from interpret_rl.observations import save_observations
from interpret_rl.pool import pool_path, real_state_pool


def test_pool_is_collected_once_then_read_from_its_cache(mlp_agent, isolated_home):
    pool = real_state_pool(mlp_agent, size=10, seed=0)
    assert pool.shape == (10, 4) and pool.dtype == torch.float32
    path = pool_path(mlp_agent, 10, 0, 0.0)
    assert path.is_file() and path.is_relative_to(isolated_home)
    assert weights_sha256(mlp_agent)[:12] in path.name
    save_observations(path, torch.full_like(pool, 0.25))  # what the cache holds is what comes back
    assert torch.equal(real_state_pool(mlp_agent, size=10, seed=0), torch.full_like(pool, 0.25))
    path.write_bytes(b"not an npz")  # a damaged cache is collected again
    assert torch.equal(real_state_pool(mlp_agent, size=10, seed=0), pool)


def test_other_seed_other_games_and_exploration_changes_the_states(mlp_agent):
    pool = real_state_pool(mlp_agent, size=8, seed=0)
    assert not torch.equal(pool, real_state_pool(mlp_agent, size=8, seed=1))
    exploring = real_state_pool(mlp_agent, size=8, seed=0, epsilon=1.0)
    assert not torch.equal(pool, exploring)
    assert pool_path(mlp_agent, 8, 0, 1.0) != pool_path(mlp_agent, 8, 0, 0.0)


def test_other_weights_get_their_own_cache(mlp_agent):
    before = pool_path(mlp_agent, 8, 0, 0.0)
    with torch.no_grad():
        next(mlp_agent.network.parameters()).add_(1.0)
    assert pool_path(mlp_agent, 8, 0, 0.0) != before


@pytest.mark.parametrize("kwargs, message", [({"size": 0}, "at least 1"), ({"epsilon": 1.5}, r"\[0, 1\]")])
def test_bad_settings_are_refused(mlp_agent, kwargs, message):
    with pytest.raises(ValueError, match=message):
        real_state_pool(mlp_agent, **kwargs)
