"""The `prior` commands: train (once, then reused), show, and a clear refusal for vector observations."""

from __future__ import annotations

import json

import pytest

from interpret_rl import registry
from interpret_rl.prior import META, WEIGHTS


@pytest.mark.slow
def test_cli_trains_reuses_and_shows_a_prior(run, cnn_agent):
    registry.save_agent(cnn_agent, registry.user_models_dir() / "tiny-cnn")
    first = run("prior", "train", "tiny-cnn", "--steps", "2", "--latent-dim", "2", "--pool-size", "4")
    assert first.exit_code == 0, first.output
    folder = registry.user_models_dir() / "tiny-cnn" / "prior"
    assert (folder / WEIGHTS).is_file() and (folder / META).is_file() and "saved to" in first.output
    meta = json.loads((folder / META).read_text())
    assert meta["training"]["training_states"] == 8 and meta["architecture"]["latent_dim"] == 2
    again = run("prior", "train", "tiny-cnn")
    assert again.exit_code == 0 and "reusing it" in again.output
    shown = run("prior", "show", "tiny-cnn")
    assert shown.exit_code == 0 and "latent 2" in shown.output


def test_cli_refuses_a_prior_for_vector_observations(run):
    result = run("prior", "train", "cartpole-a2c", "--steps", "1")
    assert result.exit_code == 2
    assert "a prior needs image observations" in result.output and len(result.output.strip().splitlines()) == 1
