"""Every command, every option that option_checks knows, every bad value: one line, exit 2, before
any work (nothing loaded long enough to write, no folder created)."""

from __future__ import annotations

import pytest
import torch

from interpret_rl.cli import cli
from interpret_rl.option_checks import CHECKS, MAX_SEED

BAD_VALUES = {
    "seed": ["-1", str(MAX_SEED + 1), str(2**64)],
    "device": ["nope", "mps", "meta", "cuda:99", "cpu\n"] + ([] if torch.cuda.is_available() else ["cuda"]),
    "lr": ["nan", "inf", "1e39", "-0.1"],
    "target_return": ["nan", "inf", "-inf"],
    "eval_episodes": ["-1"],
    "name": ["", "abc\n", "../escape", "x" * 65],
    "env_id": ["", "CartPole-v1\n", " CartPole-v1"],
    "frames": [str(10**9)],
    "states": [str(10**9)],
}


def _cases():
    for command_name, command in sorted(cli.commands.items()):
        required = ["cartpole-a2c" for p in command.params if p.param_type_name == "argument" and p.required]
        for param in command.params:
            if param.name in CHECKS and param.param_type_name == "option":
                for value in BAD_VALUES[param.name]:
                    yield pytest.param([command_name, *required, param.opts[-1], value],
                                       id=f"{command_name}-{param.opts[-1]}={value!r}")


def test_every_checked_option_has_bad_values_to_try():
    assert set(BAD_VALUES) == set(CHECKS)


@pytest.mark.parametrize("args", list(_cases()))
def test_a_bad_option_value_is_one_line_and_exit_2_before_any_work(run, tmp_path, monkeypatch, isolated_home, args):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {args[-2]} "), result.output
    assert list(tmp_path.iterdir()) == []  # no output folder in the working directory, no registry home


def test_the_walk_reaches_the_commands_that_train_play_and_explain():
    walked = {case.values[0][0] for case in _cases()}
    assert {"train", "evaluate", "compare", "video"} <= walked


@pytest.mark.parametrize("name", ["abc\n", "", "a/b", "x" * 65])
def test_the_library_refuses_the_same_names(name):
    from interpret_rl import registry

    with pytest.raises(registry.InvalidNameError):
        registry.check_name(name)


def test_the_largest_seed_works(run):
    result = run("evaluate", "cartpole-a2c", "--episodes", "1", "--seed", str(MAX_SEED))
    assert result.exit_code == 0, result.output
