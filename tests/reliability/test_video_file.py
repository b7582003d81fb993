"""Videos (`evaluate --record`, `video --out`) are written whole or not at all: on a real full disk
the command ends with one line and exit code 1, the previous file is kept, nothing partial is left,
and no second traceback follows (imageio used to retry the write when its writer was collected;
ffmpeg left a cut-short .mp4 that was reported as written)."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from interpret_rl.video_file import mp4_is_complete, write_video

FRAMES = [np.full((8, 8), i * 20, dtype=np.uint8) for i in range(5)]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_video_is_written_whole(tmp_path, suffix):
    path = write_video(FRAMES, tmp_path / f"v{suffix}")
    assert path.stat().st_size > 0 and [p.name for p in tmp_path.iterdir()] == [f"v{suffix}"]


def test_an_mp4_cut_short_is_recognised(tmp_path):
    data = write_video(FRAMES, tmp_path / "v.mp4").read_bytes()
    assert mp4_is_complete(data)
    assert not any(mp4_is_complete(data[:cut]) for cut in range(1, len(data), max(1, len(data) // 50)))


@pytest.fixture
def full_disk(tmp_path):
    """A 300 KiB tmpfs, filled but for a few KiB (root only; skipped otherwise)."""
    disk = tmp_path / "small"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)]).returncode:
        pytest.skip("needs root and tmpfs mounts")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def _fill(disk):
    with open(disk / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


@pytest.mark.slow  # a fresh interpreter per case (the garbage-collected writer's traceback went to its stderr)
@pytest.mark.parametrize("command", [  # m: a random CartPole agent, whose games are short
    ["evaluate", "m", "--episodes", "1", "--record", "{out}.gif"],
    ["evaluate", "m", "--episodes", "1", "--record", "{out}.mp4"],
    ["video", "--model", "m", "--methods", "saliency", "--steps", "5", "--out", "{out}.gif"],
    ["video", "--model", "m", "--methods", "saliency", "--steps", "5", "--out", "{out}.mp4"],
])
def test_a_video_onto_a_full_disk_is_one_line_keeps_the_previous_file_and_leaves_nothing(full_disk, isolated_home,
                                                                                       command):
    from conftest import make_mlp_agent

    from interpret_rl import registry

    registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "m")
    target = full_disk / f"video{command[-1][-4:]}"
    target.write_bytes(b"the previous video")
    _fill(full_disk)
    args = [part.replace("{out}", str(full_disk / "video")) for part in command]
    result = subprocess.run(["interpret-rl", *args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], output
    assert target.read_bytes() == b"the previous video"
    assert sorted(p.name for p in full_disk.iterdir()) == sorted(["filler", target.name])


def test_a_full_disk_error_names_the_file_that_could_not_be_written(full_disk):
    """Every atomic write (reports, results.json, videos) says which file a full disk stopped: the
    write itself raises ENOSPC with no file name, and "cannot write a file" helps nobody."""
    import errno

    from interpret_rl.atomic import atomic_write_bytes

    target = full_disk / "results.json"
    target.write_bytes(b"previous")
    _fill(full_disk)
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(target, b"x" * 200_000)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "results.json"]
