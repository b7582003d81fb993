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
