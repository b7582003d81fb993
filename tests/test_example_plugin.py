"""The example third-party plugin in examples/plugin-example: once registered, its method is listed
by ``methods`` and works in ``compare`` with no change to the core.

pip-installing it here would be slow and would change the environment for other tests, so its
module is registered directly, exactly as the entry point would register it; examples/README.md
shows the pip-install check.
"""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import make_mlp_agent

from interpret_rl import compare, registry
from interpret_rl.cli import cli
from interpret_rl.plugin_manager import get_plugin_manager, reset_plugin_manager
from interpret_rl.targets import parse_target
from interpret_rl_plugins.saliency import input_gradient

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "examples" / "plugin-example"


@pytest.fixture
def example_plugin(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    import interpret_rl_example_plugin

    get_plugin_manager().register(interpret_rl_example_plugin, name="input_x_gradient")
    yield interpret_rl_example_plugin
    reset_plugin_manager()


def test_setup_cfg_declares_the_entry_point():
    config = configparser.ConfigParser()
    config.read(PLUGIN_DIR / "setup.cfg")
    entry = config["options.entry_points"]["interpret_rl"].strip()
    assert entry == "input_x_gradient = interpret_rl_example_plugin"
    assert config["options"]["packages"].strip() == "interpret_rl_example_plugin"
    assert (PLUGIN_DIR / "pyproject.toml").is_file()


def test_listed_by_methods(example_plugin):
    result = CliRunner().invoke(cli, ["methods"], catch_exceptions=False)
    line = next(line for line in result.output.splitlines() if line.startswith("input-x-gradient "))
    assert line.split()[1:3] == ["attribution", "input_x_gradient"]


@pytest.mark.slow
def test_works_in_compare(example_plugin, tmp_path):
    registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "tiny")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["compare", "--model", "tiny", "--methods", "input-x-gradient,saliency",
                                      "--frames", "2", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    assert all(cell["ok"] for cell in data["results"]["input-x-gradient"].values())
    assert data["methods"][0]["plugin"] == "input_x_gradient"


def test_values_are_gradient_times_input(example_plugin):
    agent = make_mlp_agent()
    observations = torch.tensor([[0.1, -0.5, 0.05, 0.8], [-1.0, 0.3, -0.1, -0.2]])
    result = compare(agent, ["input-x-gradient"], targets=["action", "value"], observations=observations)
    for spec in ("action", "value"):
        target = parse_target(spec, agent)
        actions = agent.network(observations)[0].argmax(-1) if spec == "action" else None
        expected = input_gradient(agent, target, observations, actions) * observations
        assert torch.allclose(result.cell("input-x-gradient", spec).explanation.values, expected)
