"""The train / evaluate / models commands through click's CliRunner, and the bundled agent."""

from __future__ import annotations

import json

import pytest
import torch

from interpret_rl import registry


def test_help_works_everywhere(run):
    for command in ([], ["train"], ["evaluate"], ["models"]):
        result = run(*command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_bundled_cartpole_agent_is_listed_and_plays_well(run):
    listing = run("models")
    assert listing.exit_code == 0
    assert "cartpole-a2c" in listing.output and "bundled" in listing.output
    result = run("evaluate", "cartpole-a2c", "--episodes", "3", "--seed", "1")
    assert result.exit_code == 0, result.output
    score = float(result.output.split("score ")[1].split()[0])
    assert score >= 475  # recorded 500.0 +/- 0.0 over 30 episodes when it was bundled


def test_bundled_cartpole_value_near_the_time_limit_does_not_collapse():
    """a2c-checklist item 1: at step ~490 of a perfect episode V stays near 1/(1-gamma) = 100.

    A learner that treated the 500-step time limit as a terminal would have V(s_490) ~ 10.
    """
    from interpret_rl.envs import make_vector_env

    agent = registry.load_agent("cartpole-a2c")
    envs = make_vector_env("CartPole-v1", 1)
    obs = envs.reset(seed=0)
    for _ in range(490):
        result = envs.step(agent.act(obs, deterministic=True))
        assert not result.terminated[0] and not result.truncated[0]
        obs = result.obs
    envs.close()
    value = agent.network(torch.as_tensor(obs))[1].item()
    assert value > 50, value


def test_train_then_models_then_evaluate(run, isolated_home):
    result = run("train", "--env", "CartPole-v1", "--steps", "2000", "--name", "tiny", "--quiet",
                 "--eval-episodes", "2")
    assert result.exit_code == 0, result.output
    path = registry.user_models_dir() / "tiny"
    assert {"model.safetensors", "meta.json", "training_curve.csv", "optimizer.safetensors"} <= {
        p.name for p in path.iterdir()}
    meta = json.loads((path / "meta.json").read_text())
    assert meta["steps_trained"] == 2000 and meta["evaluation"]["episodes"] == 2
    assert meta["evaluation"]["steps_trained"] == 2000  # which weights the recorded score belongs to
    assert "tiny" in run("models").output
    evaluated = run("evaluate", "tiny", "--episodes", "2", "--save")
    assert evaluated.exit_code == 0 and "score" in evaluated.output


def test_existing_model_is_not_overwritten_without_force(run):
    assert run("train", "--steps", "400", "--name", "keep", "--quiet", "--eval-episodes", "0").exit_code == 0
    before = (registry.user_models_dir() / "keep" / "model.safetensors").read_bytes()
    again = run("train", "--steps", "400", "--name", "keep", "--quiet", "--eval-episodes", "0")
    assert again.exit_code == 2 and "already exists" in again.output
    assert (registry.user_models_dir() / "keep" / "model.safetensors").read_bytes() == before


def test_resume_continues_the_step_counter(run):
    assert run("train", "--steps", "800", "--name", "r", "--quiet", "--eval-episodes", "0").exit_code == 0
    # re-saving only the weights (as evaluate --save or bundling does) must keep the optimizer record
    registry.save_agent(registry.load_agent("r"), registry.user_models_dir() / "r")
    result = run("train", "--resume", "r", "--steps", "1600", "--quiet", "--eval-episodes", "0")
    assert result.exit_code == 0, result.output
    assert registry.read_meta(registry.user_models_dir() / "r")["steps_trained"] == 1600


def test_a_resumed_run_keeps_logging_and_snapshotting_at_round_steps(run):
    args = ["--quiet", "--eval-episodes", "0", "--keep-checkpoints", "--checkpoint-every", "400"]
    assert run("train", "--steps", "600", "--name", "round", *args).exit_code == 0
    result = run("train", "--resume", "round", "--steps", "1300", "--quiet", "--eval-episodes", "0")
    assert result.exit_code == 0, result.output
    # one update is 8 envs x 5 steps = 40: the final saves land at 600 and 1,320; the periodic
    # snapshots at the first update reaching each multiple of 400, also after the resume
    assert [step for step, _ in registry.snapshots("round")] == [400, 600, 800, 1200, 1320]


@pytest.mark.parametrize("args, message", [
    (["train", "--env", "CartPole-v7", "--steps", "10"], "did you mean CartPole-v1"),
    (["train", "--steps", "-5"], "must be positive"),
    (["train", "--steps", "10", "--name", "../x"], "invalid model name"),
    (["evaluate", "cartpole-a2d"], "did you mean cartpole-a2c"),
    (["evaluate", "cartpole-a2c", "--record", "out.avi"], "must end in .mp4 or .gif"),
    (["train", "--resume", "nothing-here"], "unknown model"),
])
def test_bad_input_is_one_line_and_exit_code_2(run, args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_breakout_trains_end_to_end_into_a_loadable_model_and_reports_full_game_scores(run, tmp_path):
    """Tiny budget: this checks the Atari path works, not that it learns (that takes millions)."""
    result = run("train", "--env", "ALE/Breakout-v5", "--steps", "800", "--num-envs", "4",
                 "--name", "bo", "--quiet", "--eval-episodes", "0")
    assert result.exit_code == 0, result.output
    agent = registry.load_agent("bo")
    assert agent.architecture == "nature-cnn" and agent.observation_shape == (4, 84, 84)
    assert agent.action_meanings == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    video = tmp_path / "episode.gif"
    evaluated = run("evaluate", "bo", "--episodes", "1", "--record", str(video))
    assert evaluated.exit_code == 0, evaluated.output
    score = float(evaluated.output.split("score ")[1].split()[0])
    assert score == int(score) and score >= 0  # unclipped game points, all five lives
    assert video.stat().st_size > 0
