"""Who may write a model: never a bundled one (however its path is spelled), and one process at a
time per model; the second writer gets one line and exit 2 before any work."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest
from conftest import make_mlp_agent

from interpret_rl import registry

BUNDLED = registry.BUNDLED_DIR / "cartpole-a2c"


def _bundled_bytes():
    """The model's own files (shipped artefacts in subfolders are another matter)."""
    return {p.name: p.read_bytes() for p in BUNDLED.iterdir() if p.is_file()}


@pytest.fixture
def bundled_untouched():
    before = _bundled_bytes()
    yield
    assert _bundled_bytes() == before
    assert not list(registry.BUNDLED_DIR.rglob("*.lock"))


@pytest.mark.parametrize("spelling", ["symlink outside", "symlink in the registry", "./ inside the package"])
def test_evaluate_save_never_writes_a_bundled_model(run, tmp_path, monkeypatch, isolated_home, bundled_untouched,
                                                    spelling):
    if spelling == "symlink outside":
        model = str(tmp_path / "link")
        (tmp_path / "link").symlink_to(BUNDLED)
    elif spelling == "symlink in the registry":
        (isolated_home / "models").mkdir(parents=True)
        (isolated_home / "models" / "mine").symlink_to(BUNDLED)
        model = "mine"
    else:
        monkeypatch.chdir(registry.BUNDLED_DIR)
        model = "./cartpole-a2c"
    result = run("evaluate", model, "--save", "--episodes", "1")
    assert result.exit_code == 2, result.output
    assert "bundled model" in result.output and "score" not in result.output  # refused before playing


def test_resume_and_library_writes_refuse_a_bundled_model_behind_a_symlink(run, tmp_path, bundled_untouched):
    link = tmp_path / "link"
    link.symlink_to(BUNDLED)
    result = run("train", "--resume", str(link), "--steps", "100000000", "--quiet")
    assert result.exit_code == 2 and "bundled models are read-only" in result.output
    for write in (lambda: registry.save_agent(make_mlp_agent(), link),
                  lambda: registry.update_meta(link, evaluation={"mean": 1.0}),
                  lambda: registry.writer_lock(link).__enter__()):
        with pytest.raises(registry.ReadOnlyModelError, match="bundled model"):
            write()


def _hold_lock(path, ready):
    with registry.writer_lock(path):
        ready.set()
        time.sleep(120)  # until killed
    os._exit(0)


@pytest.fixture
def locked(isolated_home):
    """Another process holds the writer lock of model ``busy`` until it is SIGKILLed."""
    path = isolated_home / "models" / "busy"
    registry.save_agent(make_mlp_agent(), path)
    fork = multiprocessing.get_context("fork")
    ready = fork.Event()
    holder = fork.Process(target=_hold_lock, args=(path, ready))
    holder.start()
    assert ready.wait(30)
    yield holder
    holder.kill()
    holder.join(10)


@pytest.mark.parametrize("args", [
    ["train", "--env", "CartPole-v1", "--name", "busy", "--force", "--steps", "80", "--quiet"],
    ["train", "--resume", "busy", "--steps", "100000000", "--quiet"],
    ["evaluate", "busy", "--save", "--episodes", "1"],
])
def test_a_second_writer_gets_one_line_and_exit_2_before_any_work(run, locked, isolated_home, args):
    meta_before = (isolated_home / "models" / "busy" / "meta.json").read_bytes()
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert f"is being written by another interpret-rl process (pid {locked.pid})" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert (isolated_home / "models" / "busy" / "meta.json").read_bytes() == meta_before


def test_the_lock_of_a_killed_writer_is_free_at_once(run, locked, isolated_home):
    os.kill(locked.pid, signal.SIGKILL)
    locked.join(10)
    result = run("train", "--env", "CartPole-v1", "--name", "busy", "--force", "--steps", "80", "--quiet",
                 "--eval-episodes", "0")
    assert result.exit_code == 0, result.output
    assert registry.read_meta(isolated_home / "models" / "busy")["steps_trained"] == 80


def test_readers_are_not_blocked_by_a_writer(run, locked):
    result = run("evaluate", "busy", "--episodes", "1")
    assert result.exit_code == 0, result.output


def test_artefacts_of_a_bundled_model_behind_a_symlink_go_to_the_home_not_the_package(isolated_home, bundled_untouched):
    from interpret_rl.artefacts import artefact_dirs

    (isolated_home / "models").mkdir(parents=True)
    (isolated_home / "models" / "mine").symlink_to(BUNDLED)
    writable, *read_only = artefact_dirs(registry.load_agent("mine", check_env=False))
    assert writable.is_relative_to(isolated_home / "artefacts") and not registry.is_bundled(writable)
    assert [registry.is_bundled(p) for p in read_only] == [True]
