"""`evaluate --record` writes its video atomically: a full disk mid-write leaves the previous file
(or none) and no partial file."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from interpret_rl.evaluate import write_video

FRAMES = [np.full((8, 8), i * 20, dtype=np.uint8) for i in range(5)]


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_video_is_written_whole(tmp_path, suffix):
    path = write_video(FRAMES, tmp_path / f"v{suffix}")
    assert path.stat().st_size > 0 and [p.name for p in tmp_path.iterdir()] == [f"v{suffix}"]


def test_a_full_disk_mid_video_keeps_the_previous_file_and_leaves_no_partial(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    path = tmp_path / "episode.gif"
    write_video(FRAMES, path)
    before = path.read_bytes()

    def half_written(target, frames, **kwargs):
        with open(target, "wb") as f:
            f.write(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imageio, "mimsave", half_written)
    with pytest.raises(OSError, match="No space left"):
        write_video(FRAMES[::-1], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["episode.gif"]


class FullDiskWriter:
    """An imageio writer on a full disk: a gif is written when closed, and every close fails."""

    def __init__(self, path):
        self.path = path

    def append_data(self, frame):
        with open(self.path, "ab") as f:
            f.write(b"half a gif")

    def close(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_video_out_on_a_full_disk_leaves_no_partial_gif_even_when_close_fails_twice(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    from interpret_rl.video import video_writer

    path = tmp_path / "explained.gif"
    path.write_bytes(b"the previous video")
    monkeypatch.setattr(imageio, "get_writer", lambda target, **kwargs: FullDiskWriter(target))
    with pytest.raises(OSError, match="No space left"):
        with video_writer(path, fps=15) as writer:
            writer.append_data(FRAMES[0])
    assert path.read_bytes() == b"the previous video"
    assert [p.name for p in tmp_path.iterdir()] == ["explained.gif"]


def test_the_next_video_removes_the_partial_file_a_killed_run_left(tmp_path):
    import os
    import subprocess

    from interpret_rl.video import video_writer

    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    left_by_killed = tmp_path / f".explained.{gone.pid}.partial.gif"
    being_written = tmp_path / f".explained.{os.getppid()}.partial.gif"  # a live process's: kept
    left_by_killed.write_bytes(b"half")
    being_written.write_bytes(b"half")
    with video_writer(tmp_path / "explained.gif", fps=15) as writer:
        writer.append_data(np.zeros((8, 8, 3), dtype=np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["explained.gif", being_written.name])
