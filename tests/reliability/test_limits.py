"""Small crafted files must not exhaust memory or hang: sizes are checked before allocation, only
regular files are read, and what a file declares is checked before numpy or torch acts on it."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import zipfile

import numpy as np
import pytest
from conftest import make_mlp_agent

from interpret_rl import registry
from interpret_rl.limits import MAX_READ_ENV
from interpret_rl.observations import load_observations, save_observations


@pytest.fixture
def model(isolated_home):
    return registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "m")


@pytest.fixture(autouse=True)
def no_hang():
    """Fail instead of hanging on a FIFO."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("hung"))
    signal.alarm(60)
    yield
    signal.alarm(0)


def _edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("hidden, message", [
    ([1_200_000_000], "bytes of weights but model.safetensors holds"),  # ~53 GB of parameters
    ([-3], "negative dimension"),
])
def test_architecture_arguments_are_checked_against_the_weights_before_allocation(model, hidden, message):
    from interpret_rl.agent import architectures

    architectures()  # the plugins load before the clock starts
    _edit_meta(model, architecture_args={"observation_shape": [4], "n_actions": 2, "hidden": hidden})
    start = time.monotonic()
    with pytest.raises(registry.ModelLoadError, match=message) as err:
        registry.load_agent("m", check_env=False)
    assert time.monotonic() - start < 10 and "\n" not in str(err.value)  # allocating 53 GB would not be


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "folder"])
def test_only_regular_files_are_read(model, kind):
    weights = model / "model.safetensors"
    weights.unlink()
    if kind == "fifo":
        os.mkfifo(weights)
    elif kind == "folder":
        weights.mkdir()
    else:
        weights.symlink_to(kind)
    with pytest.raises(registry.ModelLoadError) as err:
        registry.load_agent("m", check_env=False)
    assert "model.safetensors" in str(err.value) and "\n" not in str(err.value)


def test_a_file_above_the_size_limit_is_refused_before_it_is_read(model, monkeypatch):
    monkeypatch.setattr(registry, "MAX_TENSOR_FILE_BYTES", 1000)
    with pytest.raises(registry.ModelLoadError, match="more than the limit of 1,000"):
        registry.load_agent("m", check_env=False)


def _npz_with_header(shape) -> bytes:
    """An npz whose observations.npy declares ``shape`` (float32) but holds 8 bytes of data."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": shape})
    member.write(b"\0" * 8)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("observations.npy", member.getvalue())
    return archive.getvalue()


def test_an_npy_header_declaring_terabytes_is_refused_before_numpy_allocates(tmp_path):
    path = tmp_path / "bomb.npz"
    path.write_bytes(_npz_with_header((1_000_000, 4, 84, 84 * 1000)))  # 16 TB declared
    assert path.stat().st_size < 1000
    with pytest.raises(ValueError, match="headers declare .* more than the limit"):
        load_observations(path)


def test_an_npz_that_inflates_past_the_budget_is_refused_and_the_budget_can_be_raised(tmp_path, monkeypatch):
    path = tmp_path / "zeros.npz"
    save_observations(path, np.zeros((100, 4, 84, 84), dtype=np.uint8))  # 2.8 MB of zeros
    assert path.stat().st_size < 100_000
    monkeypatch.setenv(MAX_READ_ENV, "1000000")
    with pytest.raises(ValueError, match=f"inflate to .* more than the limit of 1,000,000 .*{MAX_READ_ENV}"):
        load_observations(path)
    monkeypatch.setenv(MAX_READ_ENV, "3000000")
    assert load_observations(path).shape == (100, 4, 84, 84)


def test_an_npy_file_is_named_as_such_and_never_loaded(tmp_path):
    path = tmp_path / "obs.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    with pytest.raises(ValueError, match="a .npy array, not a .npz"):
        load_observations(path)


def test_compare_refuses_a_bomb_in_one_line(run, tmp_path):
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(_npz_with_header((10**9, 4)))
    result = run("compare", "--model", "cartpole-a2c", "--observations", str(bomb), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "more than the limit" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_more_observations_than_the_bound_are_refused_from_the_header_and_the_bound_can_be_raised(
        run, tmp_path, monkeypatch):
    from interpret_rl.limits import DEFAULT_MAX_OBSERVATIONS, MAX_OBSERVATIONS_ENV

    rows = tmp_path / "rows.npz"
    save_observations(rows, np.zeros((DEFAULT_MAX_OBSERVATIONS + 1, 4), dtype=np.float32))  # 160 KB
    result = run("compare", "--model", "cartpole-a2c", "--observations", str(rows), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{DEFAULT_MAX_OBSERVATIONS + 1:,} observations, more than the limit of " in result.output
    assert MAX_OBSERVATIONS_ENV in result.output and not (tmp_path / "out").exists()
    monkeypatch.setenv(MAX_OBSERVATIONS_ENV, str(DEFAULT_MAX_OBSERVATIONS + 1))
    assert load_observations(rows, (4,)).shape == (DEFAULT_MAX_OBSERVATIONS + 1, 4)


def test_our_own_caches_are_not_held_to_the_bound(tmp_path, monkeypatch):
    from interpret_rl.limits import MAX_OBSERVATIONS_ENV

    rows = tmp_path / "pool.npz"
    save_observations(rows, np.zeros((5, 4), dtype=np.float32))
    monkeypatch.setenv(MAX_OBSERVATIONS_ENV, "4")
    with pytest.raises(ValueError, match="5 observations, more than the limit of 4"):
        load_observations(rows)
    assert load_observations(rows, count_limited=False).shape == (5, 4)


def test_video_steps_are_held_to_the_observation_bound_before_any_work(run, tmp_path, monkeypatch):
    """Each video step is one explained observation whose frame stays in memory until the file is
    encoded: ``--steps`` above the bound is one line and exit 2, no file; raising the bound allows it."""
    from interpret_rl.limits import MAX_OBSERVATIONS_ENV

    out = tmp_path / "v.gif"
    monkeypatch.setenv(MAX_OBSERVATIONS_ENV, "3")
    result = run("video", "--model", "cartpole-a2c", "--methods", "saliency", "--steps", "4", "--out", str(out))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "--steps 4: at most 3 steps" in result.output and MAX_OBSERVATIONS_ENV in result.output
    assert not out.exists()
    monkeypatch.setenv(MAX_OBSERVATIONS_ENV, "4")
    result = run("video", "--model", "cartpole-a2c", "--methods", "saliency", "--steps", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize("command", [
    ["video", "--model", "cartpole-a2c", "--methods", "saliency", "--steps", "4"],
    ["compare", "--model", "cartpole-a2c", "--methods", "saliency", "--collect", "4"],
])
def test_a_limit_variable_that_is_not_a_number_is_one_line(run, tmp_path, monkeypatch, command):
    from interpret_rl.limits import MAX_OBSERVATIONS_ENV

    monkeypatch.setenv(MAX_OBSERVATIONS_ENV, "abc")
    out = tmp_path / ("v.gif" if command[0] == "video" else "out")
    result = run(*command, "--out", str(out))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"{MAX_OBSERVATIONS_ENV}='abc': give a number of observations" in result.output
    assert not out.exists()
