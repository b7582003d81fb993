"""Crash-safe file writes: a full disk or a kill mid-write never destroys the last good file.

Write to a temporary file in the same folder, flush and fsync it, ``os.replace`` it over the target
(atomic on POSIX), then fsync the folder so the rename itself survives a power loss. On any error
the temporary file is removed and the old file is untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import stat
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A temporary file carries its writer's pid (``.<name>.<pid>.<random><suffix>``), so the next writer
# of the same file removes what a killed one (SIGKILL, power loss) left, and never a live one's.

def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_orphans(folder: str | os.PathLike, name: str, suffix: str) -> None:
    """Remove ``folder/.<name>.<pid>.*<suffix>`` temporary files whose writer process is gone."""
    prefix = f".{name}."
    for entry in Path(folder).glob(f"{glob.escape(prefix)}*{glob.escape(suffix)}"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)) and entry.is_file():
            _remove(entry)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent, path.name, ".tmp")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(err, OSError) and err.filename is None:  # a write on a full disk names no file:
            raise OSError(err.errno, err.strerror, str(path)) from err  # say which one could not be written
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- Several files committed as one -----------------------------------------------------------
# A checkpoint is several files (weights, optimizer state, a snapshot) described by one pointer
# file (meta.json, which records each file's sha256). Replacing them one by one leaves a window
# where the pointer describes files that are not there yet (or no longer), so a kill or a full disk
# in between loses the checkpoint. Instead every new file is first written complete and fsynced
# under a *pending* name that carries its sha256; replacing the pointer is the single atomic commit;
# only then do the pending files take their real names. A reader that finds a file whose sha256
# differs from the pointer's record takes the pending file with the recorded sha256 instead, so the
# folder always reads as the old state (crash before the commit) or the new one (crash after it).

PENDING_SUFFIX = ".pending"


def pending_path(folder: str | os.PathLike, name: str, sha256: str) -> Path:
    """Where ``folder/name`` waits, complete, for the commit that records ``sha256``."""
    final = Path(folder) / name
    return final.with_name(f".{final.name}.{sha256[:16]}{PENDING_SUFFIX}")


def commit_files(folder: str | os.PathLike, contents: dict[str, bytes], pointer: str, pointer_text: str) -> None:
    """Write ``contents`` (relative name -> bytes) and ``pointer`` so that a crash or a full disk at
    any instant leaves ``folder`` describing either its previous files or all the new ones.

    On an error before the commit the staged files are removed and the error re-raised; the
    previous files and pointer are untouched.
    """
    folder = Path(folder)
    staged: list[tuple[Path, Path]] = []
    new_pointer = pointer_text.encode("utf-8")
    try:
        for name, data in contents.items():
            waiting = pending_path(folder, name, sha256_bytes(data))
            staged.append((waiting, folder / name))
            atomic_write_bytes(waiting, data)  # complete and fsynced (file and folder) before the commit
        atomic_write_bytes(folder / pointer, new_pointer)  # the commit
    except BaseException:
        if not _holds(folder / pointer, new_pointer):  # not committed: the staged files are garbage
            for waiting, _ in staged:
                _remove(waiting)
        raise
    for waiting, final in staged:  # committed: a crash from here on is finished by settle()
        os.replace(waiting, final)
    for parent in {final.parent for _, final in staged}:
        fsync_dir(parent)


def settle(folder: str | os.PathLike, recorded: dict[str, str], managed: tuple[str, ...]) -> None:
    """Finish a commit that a crash interrupted (move committed pending files to their names) and
    remove what an uncommitted one left behind: stale pending files, and temporary files of the
    ``managed`` names (``atomic_write_bytes`` names them ``.<name>.<random>.tmp``).

    :param recorded: relative name -> sha256, as the committed pointer records them.
    """
    folder = Path(folder)
    for name, sha in recorded.items():
        waiting = pending_path(folder, name, sha)
        if waiting.is_file():
            os.replace(waiting, folder / name)
    parents = {folder} | {(folder / name).parent for name in recorded}
    for parent in parents:
        if not parent.is_dir():
            continue
        for entry in parent.iterdir():
            stale_pending = entry.name.startswith(".") and PENDING_SUFFIX in entry.name  # also its .tmp
            stale_temp = entry.name.endswith(".tmp") and any(entry.name.startswith(f".{m}") for m in managed)
            if (stale_pending or stale_temp) and entry.is_file():
                _remove(entry)
        fsync_dir(parent)


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- Bounded reads ----------------------------------------------------------------------------

class UnsafeFileError(ValueError):
    """A file that is not a regular file (a FIFO, a device such as /dev/zero) or is too large."""


def read_regular_file(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Opened non-blocking and checked on the open descriptor, so a FIFO cannot hang the reader and a
    file swapped in after a check cannot slip through; a file that grows while read is refused.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{path}: not a regular file")
        if info.st_size > max_bytes:
            raise UnsafeFileError(f"{path}: {info.st_size:,} bytes, more than the limit of {max_bytes:,}")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 22, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{path}: grew past the limit of {max_bytes:,} bytes while being read")
    return data


# --- One writer at a time ---------------------------------------------------------------------

class BusyError(RuntimeError):
    """Another process holds the writer lock."""


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike, what: str):
    """Hold an exclusive ``flock`` on ``lock_path`` for the block, or raise ``BusyError`` at once.

    The kernel drops the lock when the holder dies (also on SIGKILL), so a crash never leaves a
    stale lock; the file itself is left in place (removing it would race with the next locker).
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise BusyError(f"{what} is being written by another interpret-rl process (pid {holder}); "
                            f"wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_output_dir(path: str | os.PathLike) -> Path:
    """Prove that ``path`` can be written: a writable folder, or a missing one whose nearest existing
    ancestor is a writable folder (nothing is created). ``ValueError`` naming the path and the reason
    otherwise. Called before any work, so a long comparison is never lost at the end."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"lies under the file {existing}"
        raise ValueError(f"output folder {path} {what}, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):  # a real write: os.access lies for root and some mounts
            pass
    except OSError as err:
        raise ValueError(f"output folder {path} is not writable: {existing}: {err.strerror or err}") from None
    return path
