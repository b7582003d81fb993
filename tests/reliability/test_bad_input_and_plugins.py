"""Typos and broken plugins through the real CLI: exit code 2 with a suggestion, or one warning and
everything else still working. The model is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from interpret_rl import plugin_manager, registry
from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Method
from interpret_rl.plugin_manager import get_plugin_manager, reset_plugin_manager


@pytest.fixture
def tiny(isolated_home):
    from conftest import make_cnn_agent

    registry.save_agent(make_cnn_agent(), registry.user_models_dir() / "tiny-bo")
    return "tiny-bo"


@pytest.mark.parametrize("args, message", [
    (["compare", "--model", "tiny-bo", "--methods", "salincy"], "did you mean saliency"),
    (["compare", "--model", "tiny-b0"], "did you mean tiny-bo"),
    (["compare", "--model", "tiny-bo", "--targets", "conv9:1"], "trunk.conv3"),
    (["compare", "--model", "tiny-bo", "--targets", "conv3:99"], "0..63"),
    (["compare", "--model", "tiny-bo", "--targets", "action:JUMP"], "NOOP, FIRE, RIGHT, LEFT"),
    (["compare", "--model", "tiny-bo", "--frames", "0"], "--frames"),
    (["train", "--env", "ALE/Brekout-v5", "--steps", "100"], "did you mean ALE/Breakout-v5"),
    (["train", "--steps", "-3"], "must be positive"),
    (["video", "--model", "tiny-bo", "--steps", "0"], "--steps"),
])
def test_bad_input_exits_2_with_a_one_line_hint_before_any_work(run, tiny, tmp_path, args, message):
    result = run(*args, *(["--out", str(tmp_path / "out")] if args[0] == "compare" else []))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.slow
def test_a_plugin_that_fails_to_import_leaves_help_methods_and_compare_working(tmp_path):
    """A real broken entry point, installed like a stranger's plugin, in a fresh interpreter."""
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[interpret_rl]\nbroken = broken_plugin_module\n")
    (site / "broken_plugin_module.py").write_text("raise RuntimeError('this plugin is broken')\n")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "INTERPRET_RL_HOME": str(tmp_path / "home")}
    env.pop(plugin_manager.STRICT_ENV, None)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "interpret_rl", *args], env=env, capture_output=True,
                              text=True, timeout=180)

    assert cli("--help").returncode == 0
    methods = cli("methods")
    assert methods.returncode == 0 and "saliency" in methods.stdout
    warning_lines = [line for line in methods.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning_lines) == 1 and "'broken'" in warning_lines[0] and "this plugin is broken" in warning_lines[0]
    compared = cli("compare", "--model", "cartpole-a2c", "--methods", "saliency", "--frames", "1",
                   "--out", str(tmp_path / "out"))
    assert compared.returncode == 0, compared.stderr
    assert (tmp_path / "out" / "report.html").is_file()
    strict = subprocess.run([sys.executable, "-m", "interpret_rl", "methods"], capture_output=True, text=True,
                            env={**env, plugin_manager.STRICT_ENV: "1"}, timeout=180)
    assert strict.returncode != 0 and "this plugin is broken" in strict.stderr


class RaisingMethod(Method):
    name = "raises"
    description = "always fails"
    kind = "attribution"

    def explain(self, agent, target, observations):
        # leave a hook behind and then fail: compare must clean up after it
        agent.network.trunk.register_forward_hook(lambda *a: None)
        raise RuntimeError("explain exploded")


class RaisingPlugin:
    @hookimpl
    def register_methods(self, register):
        register(RaisingMethod)


class DuplicatePlugin:
    @hookimpl
    def register_methods(self, register):
        from interpret_rl_plugins.saliency import Saliency

        register(Saliency)


@pytest.mark.slow
def test_a_method_that_raises_shows_its_error_in_the_report_and_leaves_the_model(run, tiny, tmp_path):
    reset_plugin_manager()
    get_plugin_manager().register(RaisingPlugin(), name="raising-plugin")
    try:
        before = {k: v.clone() for k, v in registry.load_agent("tiny-bo").network.state_dict().items()}
        result = run("compare", "--model", "tiny-bo", "--methods", "raises,saliency", "--frames", "1",
                     "--targets", "value", "--out", str(tmp_path / "out"))
        assert result.exit_code == 0, result.output
        html = (tmp_path / "out" / "report.html").read_text()
        assert "explain exploded" in html
        assert "saliency" in html
        after = registry.load_agent("tiny-bo").network.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
    finally:
        reset_plugin_manager()


def test_a_duplicate_method_name_warns_naming_both_plugins_and_everything_keeps_working(run, tiny, tmp_path):
    reset_plugin_manager()
    get_plugin_manager().register(DuplicatePlugin(), name="copycat")
    try:
        with pytest.warns(plugin_manager.PluginLoadWarning, match="'copycat'.*keeping 'saliency'"):
            listing = run("methods")
        assert listing.exit_code == 0 and "saliency" in listing.output
        assert run("--help").exit_code == 0
        compared = run("compare", "--model", "tiny-bo", "--methods", "saliency", "--frames", "1",
                       "--targets", "value", "--out", str(tmp_path / "out"))
        assert compared.exit_code == 0 and (tmp_path / "out" / "report.html").is_file()
    finally:
        reset_plugin_manager()
