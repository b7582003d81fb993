"""The plugin author's kit from outside this repository: a stranger's plugin (one method, one
metric, one architecture, one command), installed as an entry point in a folder of its own, runs
the shipped contract checks (interpret_rl.testing) in its own pytest run and passes; so does
the example plugin (examples/plugin-example). Then `interpret-rl plugins` lists the stranger."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A stranger's interpret-rl plugin, written from docs/methods-api.md."""

from dataclasses import dataclass

import click
import torch
from torch import nn

from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Method
from interpret_rl.metrics import Metric
from interpret_rl.targets import actions_for, target_scores


class GradientSign(Method):
    name = "gradient-sign"
    description = "sign of the gradient of the target"
    kind = "attribution"

    @dataclass
    class Options:
        scale: float = 1.0

    def explain(self, agent, target, observations):
        x = observations.detach().float().requires_grad_(True)
        actions = actions_for(agent, target, x.detach())
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(target_scores(agent, target, x, actions=actions).sum(), x)
        return self.explanation(target, grad.sign() * self.options.scale)


class MapMass(Metric):
    name = "map-mass"
    description = "mean absolute value of the map"
    higher_is_better = None

    def evaluate(self, agent, method, target, observations, explanation):
        per_observation = explanation.values.abs().flatten(1).mean(1).tolist()
        return self.result(sum(per_observation) / len(per_observation), per_observation=per_observation)


class TwoLayer(nn.Module):
    def __init__(self, observation_shape, n_actions, width=16):
        super().__init__()
        inputs = int(torch.tensor(observation_shape).prod())
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(inputs, width), nn.ReLU())
        self.policy, self.value = nn.Linear(width, n_actions), nn.Linear(width, 1)

    def forward(self, obs):
        hidden = self.body(obs.float())
        return self.policy(hidden), self.value(hidden).squeeze(-1)


@hookimpl
def register_methods(register):
    register(GradientSign)


@hookimpl
def register_metrics(register):
    register(MapMass)


@hookimpl
def register_architectures(register):
    register("two-layer", TwoLayer)


@hookimpl
def register_commands(cli):
    @cli.command(name="stranger-hello")
    def hello():
        """Say hello."""
        click.echo("hello from a stranger")
'''

PLUGIN_TESTS = '''
from click.testing import CliRunner

from interpret_rl.cli import cli
from interpret_rl.testing import check_architecture, check_method, check_metric


def test_method():
    assert check_method("gradient-sign") == {"cnn": "ok", "mlp": "ok"}


def test_metric():
    assert check_metric("map-mass", "gradient-sign") == {"cnn": "ok", "mlp": "ok"}


def test_architecture():
    check_architecture("two-layer", observation_shape=(4, 84, 84), n_actions=4, width=8)


def test_example_plugin_method():
    assert check_method("input-x-gradient") == {"cnn": "ok", "mlp": "ok"}


def test_command():
    result = CliRunner().invoke(cli, ["stranger-hello"])
    assert result.exit_code == 0 and result.output == "hello from a stranger\\n"
'''


def install(site: Path, module: str, dist: str, source: str | None, entry: str) -> None:
    """What pip leaves behind, without pip: the module and a dist-info naming its entry point."""
    if source is not None:
        (site / f"{module}.py").write_text(source)
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[interpret_rl]\n{entry} = {module}\n")


@pytest.mark.slow
def test_a_strangers_plugin_passes_the_shipped_checks_outside_the_repository(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "stranger_plugin", "stranger-plugin", textwrap.dedent(PLUGIN), "stranger")
    install(site, "interpret_rl_example_plugin", "example-plugin", None, "input_x_gradient")
    project = tmp_path / "their-project"
    project.mkdir()
    (project / "test_their_plugin.py").write_text(PLUGIN_TESTS)
    path = os.pathsep.join([str(site), str(ROOT / "examples" / "plugin-example")])
    env = {**os.environ, "PYTHONPATH": path, "INTERPRET_RL_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1",
           "INTERPRET_RL_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_their_plugin.py"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout
    listing = subprocess.run([sys.executable, "-m", "interpret_rl", "plugins"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=300)
    line = next(line for line in listing.stdout.splitlines() if line.startswith("stranger "))
    assert line.split()[1:3] == ["stranger-plugin", "0.1"]
    assert "register_architectures, register_commands, register_methods, register_metrics" in line


@pytest.mark.slow
def test_a_broken_plugin_costs_one_line_and_plugins_says_why(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "interpret_rl_no_such_module", "broken-plugin", None, "broken")
    env = {**os.environ, "PYTHONPATH": str(site), "INTERPRET_RL_STRICT_PLUGINS": "0", "OMP_NUM_THREADS": "1",
           "INTERPRET_RL_HOME": str(tmp_path / "home")}
    methods = subprocess.run([sys.executable, "-m", "interpret_rl", "methods"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    assert methods.returncode == 0 and "saliency" in methods.stdout
    assert [line for line in methods.stderr.splitlines() if "broken" in line] == [
        "warning: interpret-rl plugin 'broken' (interpret_rl_no_such_module) failed to load: "
        "ModuleNotFoundError: No module named 'interpret_rl_no_such_module'"]
    listing = subprocess.run([sys.executable, "-m", "interpret_rl", "plugins"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
    line = next(line for line in listing.stdout.splitlines() if line.startswith("broken "))
    assert "FAILED: ModuleNotFoundError" in line


BUILTIN_SHAPES = {"mlp": (4,), "mlp-q": (4,), "nature-cnn": (4, 84, 84), "nature-cnn-q": (4, 84, 84),
                  "small-cnn": (4, 10, 10)}


@pytest.mark.parametrize("architecture", sorted(BUILTIN_SHAPES))
def test_every_built_in_network_follows_the_one_constructor_contract(architecture):
    """Built-in networks are built as a plugin's: Network(observation_shape=..., n_actions=..., **args)."""
    from interpret_rl.networks import BUILTIN_ARCHITECTURES
    from interpret_rl.testing import check_architecture

    assert set(BUILTIN_ARCHITECTURES) == set(BUILTIN_SHAPES)  # a new built-in gets its shape here
    check_architecture(architecture, observation_shape=BUILTIN_SHAPES[architecture], n_actions=3)
