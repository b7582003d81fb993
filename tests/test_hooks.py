"""Every hook works for a stranger's plugin, has a test, and is documented in README.md."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from interpret_rl import hookspecs, registry
from interpret_rl.agent import architectures
from interpret_rl.cli import cli
from interpret_rl.hookspecs import hookimpl
from interpret_rl.plugin_manager import get_plugin_manager, reset_plugin_manager

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def plugin_manager():
    reset_plugin_manager()
    yield get_plugin_manager()
    reset_plugin_manager()


class TinyNet(nn.Module):
    """A stranger's architecture: takes the observation shape like plugin networks do."""

    def __init__(self, observation_shape, n_actions):
        super().__init__()
        self.policy = nn.Linear(observation_shape[0], n_actions)
        self.value = nn.Linear(observation_shape[0], 1)

    def forward(self, obs):
        x = obs.float()
        return self.policy(x), self.value(x).squeeze(-1)


class ArchitecturePlugin:
    @hookimpl
    def register_architectures(self, register):
        register("tiny-net", TinyNet)


def test_register_architectures_makes_a_network_trainable_saveable_and_loadable(plugin_manager):
    plugin_manager.register(ArchitecturePlugin(), name="tiny-net-plugin")
    assert architectures()["tiny-net"] is TinyNet
    from interpret_rl.a2c import A2CConfig, train

    result = train(A2CConfig(total_steps=200, architecture="tiny-net", log_every_steps=10**9))
    path = registry.save_agent(result.agent, registry.user_models_dir() / "tiny")
    loaded = registry.load_agent("tiny")
    assert isinstance(loaded.network, TinyNet) and loaded.architecture == "tiny-net"
    assert torch.equal(loaded.network.policy.weight, result.agent.network.policy.weight)
    assert registry.read_meta(path)["architecture_args"] == {"observation_shape": [4], "n_actions": 2}


class CommandPlugin:
    @hookimpl
    def register_commands(self, cli):
        @cli.command(name="hello-plugin")
        @click.argument("who")
        def hello(who):
            """Say hello (added by a plugin)."""
            click.echo(f"hello {who}")


def test_register_commands_adds_a_subcommand(plugin_manager):
    plugin_manager.register(CommandPlugin(), name="command-plugin")
    plugin_manager.hook.register_commands(cli=cli)
    try:
        result = CliRunner().invoke(cli, ["hello-plugin", "world"])
        assert result.exit_code == 0 and result.output == "hello world\n"
        assert "hello-plugin" in CliRunner().invoke(cli, ["--help"]).output
    finally:
        cli.commands.pop("hello-plugin", None)


HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_tested(hook):
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^#+ .*`{hook}", readme, re.MULTILINE), f"README.md needs a heading for {hook}"
    # A test plugin implements the hook (its name merely appearing somewhere would not do).
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"@hookimpl\n\s*def {hook}\(", tests), f"no test plugin implements {hook}"
