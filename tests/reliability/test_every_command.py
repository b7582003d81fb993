"""Walk every command the CLI has at test time (built in, other modules' and plugins', nested groups
included) and give each option and argument values that cannot be meant: negative, huge and NaN
numbers, empty strings, paths under a regular file. Each must end in one ``Error:`` line with exit
code 2 (a bad request) or 1 (a destination that cannot be written), never a Python traceback.

The values are chosen to be wrong for every option of their type (a negative ``--target-return``
is a real request, so floats get only non-finite values), so a command that accepts one has a gap.
"""

from __future__ import annotations

import signal

import click
import pytest
from click.testing import CliRunner

from interpret_rl.cli import cli

CASE_SECONDS = 60  # a refused value costs milliseconds; a case running this long was accepted and is working

BAD_INTS = ["-1", str(2**64), "nan", "", "1.5"]
BAD_FLOATS = ["nan", "inf", "-inf", "", "1e400"]
BAD_CHOICES = ["", "nope"]
UNDER_A_FILE = "{tmp}/a-file/x"  # neither readable nor writable: its parent is a regular file
BAD_TEXTS = ["", UNDER_A_FILE]
# What a required argument gets while another parameter is under test.
GOOD_ARGUMENTS = {"model": "cartpole-a2c"}


def _leaf_commands(group: click.Group, path: tuple[str, ...] = ()):
    context = click.Context(group)
    for name in group.list_commands(context):  # the lazily added plugin commands too
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*path, name))
        elif command is not None:
            yield (*path, name), command


def _bad_values(param: click.Parameter) -> list[str]:
    kind = param.type
    if isinstance(kind, click.Choice):
        return BAD_CHOICES
    if isinstance(kind, (click.types.IntParamType, click.IntRange)):
        return BAD_INTS
    if isinstance(kind, (click.types.FloatParamType, click.FloatRange)):
        return BAD_FLOATS
    return BAD_TEXTS


def _is_flag(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and (param.is_flag or param.count)


def _cases():
    for path, command in _leaf_commands(cli):
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        for param in command.params:
            if _is_flag(param) or param.name == "help":
                continue
            for value in _bad_values(param):
                if isinstance(param, click.Argument):
                    given = [value if p is param else GOOD_ARGUMENTS.get(p.name, "x") for p in arguments]
                    args = [*path, *given]
                    label = f"{' '.join(path)} {param.name.upper()}={value!r}"
                else:
                    # the option first, so it is checked before the arguments are
                    given = [GOOD_ARGUMENTS.get(p.name, "x") for p in arguments]
                    args = [*path, param.opts[-1], value, *given]
                    label = f"{' '.join(path)} {param.opts[-1]}={value!r}"
                yield pytest.param(args, id=label)


class TookTooLong(Exception):
    pass


def _alarm(signum, frame):
    raise TookTooLong(f"still running after {CASE_SECONDS} s: the value was accepted and work started")


@pytest.mark.parametrize("args", list(_cases()))
def test_a_bad_value_of_any_option_of_any_command_is_one_error_line(args, tmp_path, monkeypatch, isolated_home):
    (tmp_path / "a-file").write_text("a regular file, not a folder")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    monkeypatch.chdir(tmp_path)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    output = result.output
    assert isinstance(result.exception, SystemExit), (args, output, repr(result.exception))
    assert "Traceback" not in output, output
    assert result.exit_code in (1, 2), (args, result.exit_code, output)
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output


def test_the_walk_reaches_every_command_and_its_options():
    walked = {tuple(case.values[0][:2]) for case in _cases()}
    names = {path for path, _ in _leaf_commands(cli)}
    assert {("train", "--steps"), ("evaluate", "--episodes"), ("compare", "--frames"), ("video", "--out")} <= walked
    assert {("prior", "train"), ("models",)} <= names
