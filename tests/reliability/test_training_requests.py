"""Training requests that cannot work are refused in one line with exit code 2 before the first
update: a network that does not take the environment's observations, a rollout too large to
allocate, and a checkpoint whose resume state was tampered with (it could set any attribute of the
environment, render_mode included, and fed torch a random-number state it rejects)."""

from __future__ import annotations

import json
import shutil

import pytest

from interpret_rl import registry
from interpret_rl.rollout import InvalidConfigError, algorithm_module
from interpret_rl.training_checks import MAX_NUM_ENVS, MAX_ROLLOUT_TRANSITIONS


def _one_error(result, message):
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output


def test_an_architecture_that_does_not_take_the_observations_is_one_line(run, isolated_home):
    result = run("train", "--env", "CartPole-v1", "--architecture", "nature-cnn", "--steps", "80", "--name", "c",
                 "--quiet", "--eval-episodes", "0")
    _one_error(result, "architecture 'nature-cnn' does not take CartPole-v1's observations of shape (4,)")
    assert not (isolated_home / "models" / "c" / registry.META).exists()


@pytest.mark.parametrize("arg", ["observation_shape=[2,2]", "observation_shape=ab", "n_actions=7"])
def test_an_architecture_argument_may_not_override_the_env_s_shapes(run, isolated_home, arg):
    """The env decides the observation shape and action count; overriding them built a network the
    fit check passed (an MLP flattens a batch of one) and training then crashed."""
    result = run("train", "--env", "CartPole-v1", "--architecture-arg", arg, "--steps", "80", "--name", "s",
                 "--quiet", "--eval-episodes", "0")
    _one_error(result, f"architecture argument {arg.split('=')[0]} comes from the environment CartPole-v1")
    assert not (isolated_home / "models" / "s" / registry.META).exists()


@pytest.mark.parametrize("args, message", [
    (["--n-steps", "1000000000"], "transitions per rollout, more than the limit"),
    (["--num-envs", str(MAX_NUM_ENVS + 1)], f"at most {MAX_NUM_ENVS:,} environments"),
])
def test_a_rollout_too_large_to_allocate_is_refused_before_the_environments_are_made(run, isolated_home, args,
                                                                                       message):
    result = run("train", "--env", "CartPole-v1", *args, "--steps", "80", "--name", "big", "--quiet")
    _one_error(result, message)


def test_the_largest_rollout_is_accepted_by_the_config():
    ppo = algorithm_module("ppo")
    config = ppo.config_from_preset("cartpole", num_envs=8, n_steps=MAX_ROLLOUT_TRANSITIONS // 8)
    assert config.num_envs * config.n_steps == MAX_ROLLOUT_TRANSITIONS
    with pytest.raises(InvalidConfigError):
        ppo.config_from_preset("cartpole", num_envs=8, n_steps=MAX_ROLLOUT_TRANSITIONS // 8 + 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CartPole model of 80 steps with a resume state, trained once for the module."""
    from click.testing import CliRunner

    from interpret_rl.cli import cli

    home = tmp_path_factory.mktemp("trained-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INTERPRET_RL_HOME", str(home))
        result = CliRunner().invoke(cli, ["train", "--env", "CartPole-v1", "--steps", "80", "--name", "base",
                                          "--quiet", "--eval-episodes", "0"])
    assert result.exit_code == 0, result.output
    return home / "models" / "base"


def _every_env(key, value):
    def change(state):
        for sub in state["env"]["envs"]:
            sub["variables"][key] = value
    return change


def _set(key, value):
    return lambda state: state.__setitem__(key, value)


@pytest.mark.parametrize("tamper, message", [
    (_set("generator", "AAAA"), "action sampler's random-number state is not one torch accepts"),
    (_set("generator", 12), "action sampler's random-number state is not one torch accepts"),
    (lambda state: state["env"]["envs"].pop(), "it snapshots 7 environments, this run has 8"),
    (_every_env("render_mode", "human"), "render_mode='human' does not fit"),
    (_every_env("render_mode", 3), "render_mode=3 does not fit"),  # None after a reset: stays None
    (_every_env("screen", 7), "screen=7 does not fit"),
    (_every_env("step", 1), "sets other variables than"),
    (_every_env("state", {"ndarray": [1, 2], "dtype": "float64"}), "state="),
    (lambda state: [sub.__setitem__("rng", {"bit_generator": "PCG64", "state": "x"})
                    for sub in state["env"]["envs"]], "random-number state is not one numpy accepts"),
    (_set("obs", [[1.0]]), "its observations have shape (1, 1), this run's (8, 4)"),
    (_set("obs_dtype", "manual_seed"), "obs_dtype must be float32 or uint8"),
    (_set("log", "x"), "its log must hold"),
    (_set("env", 3), "its env entry has another form"),
])
def test_a_tampered_resume_state_is_refused_in_one_line_before_training(run, isolated_home, trained, tamper,
                                                                        message):
    folder = isolated_home / "models" / "t"
    shutil.copytree(trained, folder)
    meta = json.loads((folder / registry.META).read_text())
    tamper(meta["resume_state"])
    (folder / registry.META).write_text(json.dumps(meta))
    result = run("train", "--resume", "t", "--steps", "160", "--quiet", "--eval-episodes", "0")
    _one_error(result, "resume_state does not fit this run")
    assert message in result.output, result.output
    assert registry.read_meta(folder)["steps_trained"] == 80  # nothing trained, nothing written


def test_the_untouched_resume_state_resumes(run, isolated_home, trained):
    shutil.copytree(trained, isolated_home / "models" / "t")
    result = run("train", "--resume", "t", "--steps", "160", "--quiet", "--eval-episodes", "0")
    assert result.exit_code == 0, result.output
    assert registry.read_meta(isolated_home / "models" / "t")["steps_trained"] == 160


@pytest.mark.parametrize("change, message", [
    ({"lr": "x"}, "config lr='x': must be float"),
    ({"num_envs": "8"}, "config num_envs='8': must be int"),
    ({"gamma": None}, "config gamma=None: must be float"),
    ({"keep_checkpoints": 1}, "config keep_checkpoints=1: must be bool"),
    ({"architecture_args": [1]}, "config architecture_args=[1]: must be dict"),
    ({"n_steps": 10**9}, "transitions per rollout, more than the limit"),
])
def test_a_tampered_training_config_is_refused_in_one_line_before_training(run, isolated_home, trained, change,
                                                                           message):
    folder = isolated_home / "models" / "t"
    shutil.copytree(trained, folder)
    meta = json.loads((folder / registry.META).read_text())
    meta["config"].update(change)
    (folder / registry.META).write_text(json.dumps(meta))
    result = run("train", "--resume", "t", "--steps", "160", "--quiet", "--eval-episodes", "0")
    _one_error(result, message)
    assert registry.read_meta(folder)["steps_trained"] == 80
