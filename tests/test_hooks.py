"""Every hook works for a stranger's plugin, has a test, and is documented in README.md."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
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


def _implemented(node: ast.AST) -> set[str]:
    """Hooks implemented (``@hookimpl def <hook>``) by ``node`` itself or anything nested in it."""
    def is_hookimpl(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return (isinstance(target, ast.Name) and target.id == "hookimpl") or (
            isinstance(target, ast.Attribute) and target.attr == "hookimpl")

    return {n.name for n in ast.walk(node)
            if isinstance(n, ast.FunctionDef) and any(map(is_hookimpl, n.decorator_list))}


def hooks_tested(source: str) -> dict[str, set[str]]:
    """Per test function of a test module's ``source``: the hooks implemented by the plugins it
    defines inside itself or names (a module-level plugin class or function). A hook's name in a
    string, a comment or an unused plugin counts for nothing."""
    tree = ast.parse(source)
    module_level = {node.name: _implemented(node) for node in tree.body
                    if isinstance(node, (ast.ClassDef, ast.FunctionDef))}
    tested = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            named = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & module_level.keys()
            tested[node.name] = _implemented(node).union(*(module_level[name] for name in named))
    return tested


def test_the_hook_meta_test_counts_only_tests_that_use_a_plugin_implementing_the_hook():
    source = textwrap.dedent('''
        class Plugin:
            @hookimpl
            def register_metrics(register): ...

        class Unused:
            @hookimpl
            def register_commands(cli): ...

        def test_named():
            registered(Plugin, "p")

        def test_nested():
            class Inner:
                @staticmethod
                @hookspecs.hookimpl
                def register_methods(register): ...

        def test_mentions_only():
            assert "register_commands" in "@hookimpl def register_commands"

        def helper_not_a_test():
            registered(Unused, "u")
    ''')
    assert hooks_tested(source) == {"test_named": {"register_metrics"}, "test_nested": {"register_methods"},
                                    "test_mentions_only": set()}


ALL_TESTS = {f"{path.relative_to(ROOT)}::{name}": hooks
             for path in sorted((ROOT / "tests").rglob("test_*.py"))
             for name, hooks in hooks_tested(path.read_text()).items()}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_has_a_test_of_its_own(hook):
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"^#+ .*`{hook}", readme, re.MULTILINE), f"README.md needs a heading for {hook}"
    # A test that registers a plugin implementing the hook, not the hook's name appearing somewhere.
    assert [test for test, hooks in ALL_TESTS.items() if hook in hooks], \
        f"no test registers a plugin implementing {hook}: write one (see this file's tests)"
