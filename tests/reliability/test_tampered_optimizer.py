"""A tampered optimizer state (with a matching sha256 in meta.json) is refused in one line when a
run resumes, instead of failing inside the first optimizer step."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from interpret_rl import registry


def _tamper(path, change):
    tensors = load_file(path / "optimizer.safetensors")
    save_file(change(tensors), path / "optimizer.safetensors")
    meta = json.loads((path / "meta.json").read_text())
    meta["files"]["optimizer.safetensors"] = registry.sha256_file(path / "optimizer.safetensors")
    (path / "meta.json").write_text(json.dumps(meta))


def _wrong_shape(tensors):
    key = next(k for k, v in tensors.items() if v.dim() == 2)
    return {**tensors, key: torch.zeros(3, 3)}


def _unknown_parameter(tensors):
    return {**tensors, "99.square_avg": torch.zeros(2)}


def _not_an_index(tensors):
    return {**tensors, "weights": torch.zeros(2)}


@pytest.mark.parametrize("change, message", [
    (_wrong_shape, "has shape [3, 3], its parameter"),
    (_unknown_parameter, "'99.square_avg' does not fit an optimizer of"),
    (_not_an_index, "'weights' does not fit"),
])
def test_resume_refuses_a_tampered_optimizer_state_in_one_line(run, isolated_home, change, message):
    trained = run("train", "--env", "CartPole-v1", "--steps", "80", "--name", "t", "--quiet", "--eval-episodes", "0")
    assert trained.exit_code == 0, trained.output
    _tamper(isolated_home / "models" / "t", change)
    result = run("train", "--resume", "t", "--steps", "160", "--quiet", "--eval-episodes", "0")
    assert result.exit_code == 2, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and message in error[0] and "Traceback" not in result.output
    assert registry.read_meta(isolated_home / "models" / "t")["steps_trained"] == 80  # nothing written
