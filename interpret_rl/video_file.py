"""The one video writer: videos (.gif, .mp4; ``evaluate --record``, ``video``) reach their file whole
or not at all, also on a full disk.

Writing straight into the destination failed in two ways on a full disk: Pillow's GIF writer
raised, and imageio retried the write when the writer was garbage-collected, printing a second
traceback after the one-line error; ffmpeg only logged "Error writing trailer" and left a cut-short
.mp4 that was reported as written. So a video is made first where there is room (a GIF in memory,
where Pillow keeps every frame until it closes anyway; an MP4 in a private temporary folder, frame by
frame through ffmpeg), checked to be complete, then written with ``atomic_write_bytes``: the
destination keeps what it had, or gets the whole new video, and any failure is one ``OSError``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from interpret_rl.atomic import atomic_write_bytes, check_output_dir

SUFFIXES = (".gif", ".mp4")


class _Frames:
    """Collects the frames of a GIF (``append_data`` as imageio's writers)."""

    def __init__(self):
        self.frames: list[np.ndarray] = []

    def append_data(self, frame) -> None:
        self.frames.append(np.asarray(frame))


def check_video_path(path: str | os.PathLike) -> Path:
    """``path`` as an absolute ``Path`` if it ends in .mp4 or .gif and can be written; else
    ``ValueError`` naming the path and the reason (called before any work)."""
    path = Path(path).expanduser().absolute()
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"video file {path.name!r} must end in .mp4 or .gif")
    if path.is_dir():
        raise ValueError(f"video file {path} is a folder")
    check_output_dir(path.parent)  # a writable folder, or one that can be created
    return path


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 30, scale: int = 4) -> Path:
    """Write ``frames`` to ``path`` (its folder created if missing); grey ``(H, W)`` frames are
    upscaled ``scale`` times (nearest neighbour), RGB ``(H, W, 3)`` frames written as they are."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with video_writer(path, fps) as writer:
        for frame in frames:
            writer.append_data(np.kron(frame, np.ones((scale, scale), dtype=np.uint8)) if frame.ndim == 2 else frame)
    return path


@contextmanager
def video_writer(path: str | Path, fps: float) -> Iterator:
    """A writer with ``append_data(frame)``; the video is written to ``path`` when the block ends
    without an error (nothing is written if it raises)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"video file must end in .gif or .mp4, not {path.suffix or path.name!r}")
    if suffix == ".gif":
        import imageio.v3 as iio

        collected = _Frames()
        yield collected
        data = iio.imwrite("<bytes>", np.stack(collected.frames), extension=".gif", duration=1000 / fps, loop=0)
    else:
        import imageio.v2 as imageio

        with tempfile.TemporaryDirectory(prefix="interpret-rl-video-") as folder:
            scratch = Path(folder) / "video.mp4"
            writer = imageio.get_writer(scratch, fps=fps, codec="libx264", macro_block_size=1)
            try:
                yield writer
            finally:
                writer.close()
            data = scratch.read_bytes()
        if not mp4_is_complete(data):  # ffmpeg only logs a failed write of its trailer
            raise OSError(errno.ENOSPC, "the video encoder could not finish the file (is the temporary "
                                        "folder full?)", tempfile.gettempdir())
    atomic_write_bytes(path, data)


def mp4_is_complete(data: bytes) -> bool:
    """The top-level boxes of ``data`` tile it exactly and include the ``moov`` index, which ffmpeg
    writes last: a file cut short by a full disk fails one or the other."""
    position, kinds = 0, set()
    while position < len(data):
        if position + 8 > len(data):
            return False
        size, kind = int.from_bytes(data[position:position + 4], "big"), data[position + 4:position + 8]
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[position + 8:position + 16], "big")
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - position
        if size < 8 or position + size > len(data):
            return False
        kinds.add(kind)
        position += size
    return b"moov" in kinds
