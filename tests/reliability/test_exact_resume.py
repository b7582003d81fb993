"""On CPU with a fixed seed, a run split by an interrupt and resumed ends bit-identical to a straight run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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
