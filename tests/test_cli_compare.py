"""The ``compare`` and ``methods`` commands through click's CliRunner."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_mlp_agent

from interpret_rl import registry
from interpret_rl.observations import save_observations

BUILTINS = {"saliency": "saliency", "perturbation": "perturbation", "integrated-gradients": "captum_methods",
            "gradcam": "captum_methods", "occlusion": "captum_methods", "deeplift": "captum_methods",
            "gradient-shap": "captum_methods", "optim": "optim"}


@pytest.fixture
def tiny():
    """A CartPole agent saved in the isolated registry home as "tiny"; returns its folder."""
    return registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "tiny")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command started working on a request it should have refused")

    monkeypatch.setattr(registry, "load_agent", refuse)


def test_methods_lists_every_builtin_with_plugin_and_description(run):
    result = run("methods")
    assert result.exit_code == 0
    lines = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    for name, plugin in BUILTINS.items():
        assert lines[name][1] in ("attribution", "synthesis") and lines[name][2] == plugin and len(lines[name]) > 3
    verbose = run("methods", "-v")
    assert "options: steps=256" in verbose.output


@pytest.mark.slow
def test_compare_writes_the_three_files(run, tiny, tmp_path):
    out = tmp_path / "out"
    result = run("compare", "--model", "tiny", "--methods", "saliency,optim,gradcam", "--targets", "action,value",
                 "--frames", "2", "-o", "optim.steps=8", "-o", "optim.pool=0", "--out", str(out), "--seed", "4")
    assert result.exit_code == 0, result.output
    for name in ("grid.png", "report.html", "results.json"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "results.json").read_text())
    assert data["model_sha256"] == json.loads((tiny / "meta.json").read_text())["files"]["model.safetensors"]
    assert data["observations"]["count"] == 2 and data["seed"] == 4
    assert data["options"] == {"optim": {"steps": "8", "pool": "0"}}
    assert set(data["results"]["optim"]) == {"action", "value"}
    summary = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    assert " s  ok" in summary["saliency"] and " s  ok" in summary["optim"]
    assert "failed on 2 of 2 targets: NotApplicableError" in summary["gradcam"]
    assert str(out) in result.output


def test_compare_reuses_an_observations_file(run, tiny, tmp_path):
    save_observations(tmp_path / "obs.npz", torch.full((1, 4), 0.1))
    result = run("compare", "--model", "tiny", "--methods", "saliency", "--observations", str(tmp_path / "obs.npz"),
                 "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["observations"]["count"] == 1 and "obs.npz" in data["observations"]["source"]
    bad = tmp_path / "bad.npz"
    save_observations(bad, torch.zeros(2, 3))
    refused = run("compare", "--model", "tiny", "--observations", str(bad), "--out", str(tmp_path / "o2"))
    assert refused.exit_code == 2 and "expected shape (N, 4)" in refused.output


@pytest.mark.slow
def test_compare_with_no_arguments_uses_a_bundled_model(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("compare", "--methods", "optim,saliency")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "compare-out" / "results.json").read_text())
    expected = "breakout-a2c" if (registry.BUNDLED_DIR / "breakout-a2c").is_dir() else "cartpole-a2c"
    assert data["agent"] == expected and data["model_sha256"]
    assert [m["name"] for m in data["methods"]] == ["optim", "saliency"]


def test_unknown_method_suggests_and_exits_2(run, tiny, tmp_path):
    result = run("compare", "--model", "tiny", "--methods", "saliency,optimm", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "did you mean optim" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "0 is not in the range"),
    (["--frames", "2", "--observations", "__OBS__"], "exclude each other"),
    (["-o", "optim.steps"], "must look like <method>.<option>=<value>"),
])
def test_bad_options_fail_before_work(run, no_work, tmp_path, args, message):
    (tmp_path / "obs.npz").write_bytes(b"")
    args = [a.replace("__OBS__", str(tmp_path / "obs.npz")) for a in args]
    result = run("compare", "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["file", "under-file"])
def test_unwritable_out_fails_before_work(run, no_work, tmp_path, where):
    (tmp_path / "taken").write_text("a file, not a folder")
    out = tmp_path / "taken" if where == "file" else tmp_path / "taken" / "report"
    result = run("compare", "--out", str(out))
    assert result.exit_code == 2 and str(out) in result.output and "not a folder" in result.output


def test_bad_target_and_option_exit_2(run, tiny, tmp_path):
    target = run("compare", "--model", "tiny", "--targets", "value,conv3:1", "--out", str(tmp_path / "o"))
    assert target.exit_code == 2 and "unknown layer 'conv3'" in target.output
    option = run("compare", "--model", "tiny", "--methods", "saliency", "-o", "optim.steps=3", "--out",
                 str(tmp_path / "o"))
    assert option.exit_code == 2 and "not among the compared methods" in option.output
