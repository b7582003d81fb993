"""On CPU with a fixed seed, a run split by an interrupt and resumed ends bit-identical to a straight run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from test_interrupts import _start_training, _wait_for_first_curve_row

from interpret_rl import registry
from interpret_rl.a2c import A2CConfig, config_from_preset, train


def _straight(total: int) -> dict:
    config = config_from_preset("cartpole", total_steps=total, seed=0)
    return train(config).agent.network.state_dict()


def test_split_in_process_run_equals_straight_run(tmp_path):
    out = tmp_path / "split"
    train(config_from_preset("cartpole", total_steps=1_200, seed=0), out_dir=out)
    agent = registry.load_agent(out)
    config = A2CConfig(**{**agent.meta["config"], "total_steps": 2_400})
    resumed = train(config, out_dir=out, agent=agent, resume=True).agent.network.state_dict()
    straight = _straight(2_400)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


@pytest.mark.slow
def test_run_interrupted_by_sigint_then_resumed_equals_straight_run(isolated_home):
    proc = _start_training(isolated_home, "cut")
    _wait_for_first_curve_row(isolated_home, "cut", proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    interrupted_at = registry.read_meta(isolated_home / "models" / "cut")["steps_trained"]
    total = interrupted_at + 800
    env = {**os.environ, "INTERPRET_RL_HOME": str(isolated_home)}
    resumed = subprocess.run([sys.executable, "-m", "interpret_rl", "train", "--resume", "cut", "--steps", str(total),
                              "--quiet", "--eval-episodes", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    split = registry.load_agent(isolated_home / "models" / "cut").network.state_dict()
    straight = _straight(total)
    assert all(torch.equal(straight[k], split[k]) for k in straight)


@pytest.mark.slow
def test_a_pendulum_run_resumes_bit_identical(tmp_path):
    """Pendulum's last torque is a numpy scalar that is None after a reset: the snapshot keeps it
    (with its dtype) and the resume check accepts it, so a continuous-action run resumes exactly."""
    from interpret_rl import ppo

    def config(total: int):
        return ppo.config_from_preset("pendulum", total_steps=total, seed=0)

    out = tmp_path / "split"
    steps = config(1).num_envs * config(1).n_steps  # one update, then one more after the resume
    ppo.train(config(steps), out_dir=out)
    last_u = registry.read_meta(out)["resume_state"]["env"]["envs"][0]["variables"]["last_u"]
    assert last_u["dtype"] == "float32" and isinstance(last_u["ndarray"], float)
    agent = registry.load_agent(out)
    resumed = ppo.train(ppo.PPOConfig(**{**agent.meta["config"], "total_steps": 2 * steps}), out_dir=out,
                        agent=agent, resume=True).agent.network.state_dict()
    straight = ppo.train(config(2 * steps)).agent.network.state_dict()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
