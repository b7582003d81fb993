"""Explanations across training: ``compare --checkpoints`` on a short real training run that keeps
weight snapshots."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from interpret_rl import registry
from interpret_rl.a2c import config_from_preset, train
from interpret_rl.across_training import CheckpointError, compare_checkpoints, select_checkpoints


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    """A registry home holding "run": 1,200 CartPole steps with a snapshot every 400 (about 3 s)."""
    home = tmp_path_factory.mktemp("trained-home")
    config = config_from_preset("cartpole", total_steps=1200, checkpoint_every_steps=400, keep_checkpoints=True,
                                log_every_steps=10**9)
    train(config, out_dir=home / "models" / "run")
    return home


@pytest.fixture
def home(trained_home, monkeypatch):
    monkeypatch.setenv("INTERPRET_RL_HOME", str(trained_home))  # instead of the empty isolated home
    return trained_home


@pytest.mark.slow
def test_compare_all_checkpoints_writes_the_strip_and_lists_them(run, home, tmp_path):
    out = tmp_path / "out"
    result = run("compare", "--model", "run", "--checkpoints", "all", "--methods", "saliency", "--out", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out / "checkpoints.png") as strip:
        assert strip.format == "PNG" and strip.width > 4 * 200  # observation + three checkpoints
    data = json.loads((out / "results.json").read_text())
    listed = data["checkpoints"]["checkpoints"]
    assert [c["step"] for c in listed] == [400, 800, 1200]
    assert len({c["sha256"] for c in listed}) == 3  # each column is its own snapshot
    assert data["agent"] == "run at step 1,200" and data["model_sha256"] == listed[-1]["sha256"]
    assert all(set(c["results"]["saliency"]) == {"action:LEFT", "action:RIGHT", "value"} for c in listed)
    assert "Explanations across training" in (out / "report.html").read_text()


def test_maps_change_between_the_first_and_the_last_checkpoint(home):
    comparison = compare_checkpoints("run", ["saliency"], targets=["action", "value"], seed=1)
    assert comparison.steps == [400, 800, 1200] and len(comparison.observations) == 1
    assert comparison.targets[0].kind == "action"  # "action" pinned to the final model's choice
    for target in ("value", comparison.targets[0].spec):
        first, last = (r.cell("saliency", target).explanation.values for r in comparison.results[::2])
        assert first.shape == last.shape == (1, 4) and not torch.equal(first, last)
    # every checkpoint explained the very same observation
    assert all(torch.equal(r.observations, comparison.observations) for r in comparison.results)


def test_chosen_steps_only(run, home, tmp_path):
    result = run("compare", "--model", "run", "--checkpoints", "1200,400", "--methods", "saliency",
                 "--targets", "value", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["checkpoints"]["steps"] == [400, 1200]


def test_select_checkpoints(home):
    assert [s for s, _ in select_checkpoints("run", "ALL")] == [400, 800, 1200]
    assert select_checkpoints("run", [800]) == [(800, "step_000000000800.safetensors")]
    with pytest.raises(CheckpointError, match="steps like 400,1200"):
        select_checkpoints("run", "last")
    with pytest.raises(CheckpointError, match="no snapshot at step 5; it has: 400, 800, 1200"):
        select_checkpoints("run", "5")


@pytest.fixture
def no_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the command started working on a request it should have refused")

    monkeypatch.setattr(registry, "load_agent", refuse)


def test_a_model_without_snapshots_says_how_to_get_them(run, no_work):
    result = run("compare", "--model", "cartpole-a2c", "--checkpoints", "all")
    assert result.exit_code == 2
    assert "keeps no weight snapshots" in result.output and "interpret-rl train --keep-checkpoints" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_step_fails_in_one_line_before_any_work(run, home, no_work):
    result = run("compare", "--model", "run", "--checkpoints", "400,999", "--methods", "saliency")
    assert result.exit_code == 2 and "no snapshot at step 999; it has: 400, 800, 1200" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_loaded_snapshot_knows_its_own_step(home):
    for step, file in registry.snapshots("run"):
        agent = registry.load_agent("run", snapshot=file)
        assert agent.steps_trained == step
        assert registry.snapshot_step(file) == step
    assert registry.load_agent("run").steps_trained == 1200
    with pytest.raises(registry.ModelLoadError, match="not a snapshot file name"):
        registry.snapshot_step("model.safetensors")
