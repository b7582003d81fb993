"""Size limits checked before a byte is allocated: a small crafted file must not exhaust memory.

An ``.npz`` is a zip of ``.npy`` arrays. numpy allocates an array from the shape its header
declares before reading the data, and a zip member inflates to the size it likes: a 2 KB file can
ask for terabytes. ``check_npz`` reads only the zip directory and the ``.npy`` headers and refuses
anything above the budget. The budget is ``INTERPRET_RL_MAX_READ_BYTES`` (default 1 GiB).
"""

from __future__ import annotations

import os
import stat
import zipfile

import numpy as np

DEFAULT_MAX_READ_BYTES = 1 << 30
MAX_READ_ENV = "INTERPRET_RL_MAX_READ_BYTES"


# Observations one request may explain (compare --collect, --observations): every method runs on each
# one, so 200,000 rows of CartPole (3 MB, well inside the byte budget) meant hours of work nobody asked for.
DEFAULT_MAX_OBSERVATIONS = 10_000
MAX_OBSERVATIONS_ENV = "INTERPRET_RL_MAX_OBSERVATIONS"


class TooLargeError(ValueError):
    """A file, or what it declares, is above the read budget; the message says how to raise it."""


def _limit_from_env(variable: str, default: int, unit: str) -> int:
    text = os.environ.get(variable, "")
    try:
        return int(text) if text else default
    except ValueError:
        raise TooLargeError(f"{variable}={text!r}: give a number of {unit}") from None


def max_read_bytes() -> int:
    return _limit_from_env(MAX_READ_ENV, DEFAULT_MAX_READ_BYTES, "bytes")


def max_observations() -> int:
    return _limit_from_env(MAX_OBSERVATIONS_ENV, DEFAULT_MAX_OBSERVATIONS, "observations")


def check_observation_count(count: int, what: str) -> None:
    """Refuse ``count`` observations above ``max_observations()``; ``what`` names their source."""
    limit = max_observations()
    if count > limit:
        raise TooLargeError(f"{what}: {count:,} observations, more than the limit of {limit:,} "
                            f"(set {MAX_OBSERVATIONS_ENV} to allow more)")


def _too_large(path, what: str, size: int, budget: int) -> TooLargeError:
    return TooLargeError(f"{path}: {what} {size:,} bytes, more than the limit of {budget:,} "
                         f"(set {MAX_READ_ENV} to allow more)")


def check_npz(path: str | os.PathLike, budget: int | None = None) -> None:
    """Refuse ``path`` unless it is a regular file whose arrays, as declared by the zip directory
    and by each ``.npy`` header, fit in ``budget`` bytes together. Reads no array data.

    :raises TooLargeError: above the budget. ``ValueError``: not a regular file, not a zip.
    """
    budget = max_read_bytes() if budget is None else budget
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block us here
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError(f"{path}: not a regular file")
        try:
            archive = zipfile.ZipFile(f)
        except zipfile.BadZipFile:
            f.seek(0)
            if f.read(6) == b"\x93NUMPY":  # numpy would allocate what its header declares before we see it
                raise ValueError(f"{path}: a .npy array, not a .npz file (save it with numpy.savez)") from None
            return  # not numpy at all: numpy's own loader gives the precise message
        with archive:
            declared = sum(info.file_size for info in archive.infolist())
            if declared > budget:
                raise _too_large(path, "the arrays inflate to", declared, budget)
            total = 0
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    total += _npy_bytes(archive, info, path)
            if total > budget:
                raise _too_large(path, "the arrays' headers declare", total, budget)


def _npy_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path) -> int:
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, _, dtype = read_header(member)
        except ValueError as err:
            raise ValueError(f"{path}: {info.filename} has no valid .npy header ({err})") from None
    return int(np.prod(shape, dtype=object)) * dtype.itemsize
