"""Fuzzing (hypothesis) the target-spec parser and the option parsers: clear errors, no tracebacks."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import make_cnn_agent, make_mlp_agent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interpret_rl.cli import cli
from interpret_rl.methods import build_method, parse_option_args
from interpret_rl.names import UnknownNameError
from interpret_rl.targets import Target, TargetError, parse_target

AGENTS = {"cnn": make_cnn_agent(), "mlp": make_mlp_agent()}

# Text that looks like target specs, plus arbitrary text.
spec_parts = st.sampled_from(["action", "value", "conv3", "trunk.conv1", "fc", "fc1", "policy", "relu2",
                              "FIRE", "LEFT", "0", "3", "-1", "99", "x", "", " ", "1e3", "٣"])
specs = st.one_of(st.lists(spec_parts, min_size=1, max_size=5).map(":".join), st.text(max_size=30))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, which=st.sampled_from(sorted(AGENTS)))
def test_target_parser_returns_a_target_or_a_one_line_target_error(spec, which):
    try:
        target = parse_target(spec, AGENTS[which])
    except TargetError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert isinstance(target, Target)


@settings(max_examples=200, deadline=None)
@given(args=st.lists(st.text(max_size=20), max_size=4))
def test_option_parser_returns_a_dict_or_raises_value_error(args):
    try:
        parsed = parse_option_args(args)
    except ValueError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert isinstance(parsed, dict)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["saliency", "optim", "occlusion", "nope"]),
       key=st.sampled_from(["steps", "samples", "stride", "absolute", "seed", "bogus", "window"]),
       value=st.text(max_size=12))
def test_building_a_method_from_strings_gives_a_method_or_a_clear_error(name, key, value):
    try:
        build_method(name, {key: value})
    except (ValueError, UnknownNameError) as err:
        assert str(err) and "\n" not in str(err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.text(max_size=10), lr=st.text(max_size=10), name=st.text(max_size=12))
def test_train_options_never_reach_the_user_as_a_traceback(steps, lr, name):
    result = CliRunner().invoke(cli, ["train", "--steps", steps, "--lr", lr, "--name", name, "--quiet",
                                      "--eval-episodes", "0", "--env", "CartPole-v1"])
    # A valid combination (say --steps 3 --lr 0.1 --name a) trains a few steps and exits 0;
    # everything else must be a clean usage error, never an exception escaping click.
    assert result.exit_code in (0, 2), (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
