"""SIGINT / SIGTERM to a training process: save at the last completed update, exit 130 / 143, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from interpret_rl import registry


def _start_training(home, name, extra=()):
    env = {**os.environ, "INTERPRET_RL_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "interpret_rl", "train", "--env", "CartPole-v1", "--steps", "50000000",
         "--name", name, "--quiet", "--eval-episodes", "0", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # like a job started in the background with nohup / setsid
    )


def _wait_for_first_curve_row(home, name, proc, timeout=120):
    curve = home / "models" / name / "training_curve.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if curve.is_file() and len(curve.read_text().splitlines()) >= 2:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("training wrote no curve row in time")


@pytest.mark.slow
@pytest.mark.parametrize("signum, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_exits_with_the_shell_code(isolated_home, signum, exit_code):
    proc = _start_training(isolated_home, "sig")
    _wait_for_first_curve_row(isolated_home, "sig", proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == exit_code, stderr
    assert "--resume sig" in stderr
    meta = registry.read_meta(isolated_home / "models" / "sig")
    assert meta["steps_trained"] >= 10_000 and meta["steps_trained"] % 40 == 0  # whole updates only
    agent = registry.load_agent(isolated_home / "models" / "sig")
    assert agent.steps_trained == meta["steps_trained"]
    leftovers = [p.name for p in (isolated_home / "models" / "sig").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    with pytest.raises(ProcessLookupError):  # no orphan worker left in the run's process group
        os.killpg(proc.pid, 0)


@pytest.mark.slow
def test_interrupted_run_resumes_with_its_step_counter(isolated_home):
    proc = _start_training(isolated_home, "again")
    _wait_for_first_curve_row(isolated_home, "again", proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    saved = registry.read_meta(isolated_home / "models" / "again")["steps_trained"]
    env = {**os.environ, "INTERPRET_RL_HOME": str(isolated_home)}
    resumed = subprocess.run(
        [sys.executable, "-m", "interpret_rl", "train", "--resume", "again", "--steps", str(saved + 2000),
         "--quiet", "--eval-episodes", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming again at step {saved:,}" in resumed.stderr
    assert registry.read_meta(isolated_home / "models" / "again")["steps_trained"] == saved + 2000
