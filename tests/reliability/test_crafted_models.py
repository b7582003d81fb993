"""Crafted model folders whose files hash correctly but whose content cannot be used: refused by
``load_agent`` (and so by every command) in one line, before an environment opens a window or a
NaN reaches a forward pass."""

from __future__ import annotations

import json

import pytest
from conftest import make_mlp_agent
from safetensors.torch import load_file, save_file

from interpret_rl import registry


@pytest.fixture
def model(isolated_home):
    return registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "m")


def _edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


def _nan_weights(path):
    tensors = load_file(path / "model.safetensors")
    tensors["policy.weight"][0, 0] = float("nan")
    save_file(tensors, path / "model.safetensors")
    meta = json.loads((path / "meta.json").read_text())
    _edit_meta(path, files={**meta["files"], "model.safetensors": registry.sha256_file(path / "model.safetensors")})


@pytest.mark.parametrize("craft, message", [
    (_nan_weights, "policy.weight hold NaN or infinite values"),
    (lambda p: _edit_meta(p, action_meanings=[]), "action_meanings must be 2 non-empty strings"),
    (lambda p: _edit_meta(p, action_meanings=[1, 2]), "action_meanings must be 2"),
    (lambda p: _edit_meta(p, action_meanings=["LEFT", ""]), "action_meanings must be 2"),
    (lambda p: _edit_meta(p, env_settings={"render_mode": "human"}), "may not set render_mode"),
    (lambda p: _edit_meta(p, env_settings={"gravity_on_mars": 3.7}), "env_settings ['gravity_on_mars'] do not fit"),
])
def test_a_crafted_folder_is_refused_in_one_line(model, run, craft, message):
    craft(model)
    with pytest.raises(registry.ModelLoadError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        registry.load_agent("m")
    assert "\n" not in str(err.value)
    result = run("evaluate", "m", "--episodes", "1")
    assert result.exit_code == 2 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_the_untouched_folder_loads(model):
    assert registry.load_agent("m").action_meanings == ["LEFT", "RIGHT"]

