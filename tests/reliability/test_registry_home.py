"""A registry home that cannot be used (empty, a file, read-only): one line before any work."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import make_mlp_agent

from interpret_rl import registry

TRAIN = ["train", "--env", "CartPole-v1", "--steps", "80", "--name", "h", "--quiet", "--eval-episodes", "0"]


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_an_empty_home_is_refused_instead_of_meaning_the_working_directory(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INTERPRET_RL_HOME", "")
    for args in (["models"], TRAIN):
        result = run(*args)
        assert result.exit_code == 2 and "INTERPRET_RL_HOME is set but empty" in _one_line(result)
    assert list(tmp_path.iterdir()) == []


def test_a_home_that_is_a_file_is_one_line_before_training(run, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("INTERPRET_RL_HOME", str(home))
    result = run(*TRAIN)
    assert result.exit_code == 1 and _one_line(result).startswith("Error: cannot write")
    assert "training h" not in result.output


@pytest.fixture
def read_only_home(tmp_path, monkeypatch):
    """A tmpfs holding one user model, remounted read-only (root only; skipped otherwise)."""
    home = tmp_path / "ro"
    home.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(home)]).returncode:
        pytest.skip("needs root and tmpfs mounts")
    monkeypatch.setenv("INTERPRET_RL_HOME", str(home))
    registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "m")
    subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
    yield home
    subprocess.run(["umount", str(home)], check=True)


def test_a_read_only_home_is_one_line_before_any_game_or_update(run, read_only_home):
    meta = (read_only_home / "models" / "m" / "meta.json").read_bytes()
    saved = run("evaluate", "m", "--save", "--episodes", "1")
    assert saved.exit_code == 1 and "Read-only file system" in _one_line(saved) and "score" not in saved.output
    trained = run(*TRAIN)
    assert trained.exit_code == 1 and "Read-only file system" in _one_line(trained)
    assert (read_only_home / "models" / "m" / "meta.json").read_bytes() == meta
    assert run("evaluate", "m", "--episodes", "1").exit_code == 0  # reading still works
