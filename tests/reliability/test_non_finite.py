"""A NaN reward stops training at the first non-finite loss, keeping the last good checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpret_rl import registry
from interpret_rl.a2c import config_from_preset, train
from interpret_rl.envs import ClassicVectorEnv
from interpret_rl.rollout import NonFiniteLossError


def _poison_rewards_after(monkeypatch, calls: int):
    real_step = ClassicVectorEnv.step
    count = {"n": 0}

    def step(self, actions):
        result = real_step(self, actions)
        count["n"] += 1
        if count["n"] > calls:
            result.reward = result.reward * np.nan
        return result

    monkeypatch.setattr(ClassicVectorEnv, "step", step)


def test_nan_reward_stops_training_and_keeps_the_last_finite_checkpoint(monkeypatch, tmp_path):
    out = tmp_path / "model"
    config = config_from_preset("cartpole", total_steps=100_000, checkpoint_every_steps=400,
                                log_every_steps=10**9)
    _poison_rewards_after(monkeypatch, calls=130)  # 26 updates of 5 steps: checkpoints at 400 and 800
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at step"):
        train(config, out_dir=out)
    meta = registry.read_meta(out)
    assert meta["steps_trained"] == 800  # the last checkpoint before the poisoned update
    agent = registry.load_agent(out)
    assert all(torch.isfinite(t).all() for t in agent.network.state_dict().values())
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_cli_reports_a_non_finite_loss_in_one_line(monkeypatch):
    from click.testing import CliRunner

    from interpret_rl.cli import cli

    _poison_rewards_after(monkeypatch, calls=10)
    result = CliRunner().invoke(cli, ["train", "--steps", "4000", "--name", "nan", "--quiet"])
    assert result.exit_code == 1
    assert "non-finite loss" in result.output and "Traceback" not in result.output
