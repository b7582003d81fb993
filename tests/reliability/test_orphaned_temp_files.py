"""Temporary files that a killed writer (SIGKILL, power loss) left behind are removed by the next
write of the same file; a live writer's temporary file is never touched. Every temporary file
carries its writer's pid for that (``.<name>.<pid>.<random>.tmp``)."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

from interpret_rl.atomic import atomic_write_text
from interpret_rl.video_file import write_video


@pytest.fixture
def dead_pid():
    child = subprocess.Popen(["true"])
    child.wait()  # its pid now names no process
    return child.pid


def test_the_next_atomic_write_removes_a_killed_writers_temporary_file(tmp_path, dead_pid):
    orphan = tmp_path / f".report.html.{dead_pid}.k2j4x9.tmp"
    live = tmp_path / f".report.html.{os.getppid()}.a8d7f1.tmp"  # a running writer's
    other = tmp_path / f".results.json.{dead_pid}.k2j4x9.tmp"  # another file's: its own writer cleans it
    for path in (orphan, live, other):
        path.write_text("half written")
    atomic_write_text(tmp_path / "report.html", "<html></html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report.html", live.name, other.name])


def test_the_next_recorded_video_removes_a_killed_runs_partial_video(tmp_path, dead_pid):
    orphan = tmp_path / f".episode.gif.{dead_pid}.x1y2z3.tmp"
    orphan.write_bytes(b"GIF89a half")
    write_video([np.zeros((8, 8), dtype=np.uint8)] * 2, tmp_path / "episode.gif")
    assert [p.name for p in tmp_path.iterdir()] == ["episode.gif"]


def test_a_temporary_file_names_its_writer(tmp_path, monkeypatch):
    import tempfile

    seen = []
    real = tempfile.mkstemp

    def spy(*args, **kwargs):
        fd, name = real(*args, **kwargs)
        seen.append(os.path.basename(name))
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", spy)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert seen and seen[0].startswith(f".a.json.{os.getpid()}.") and seen[0].endswith(".tmp")
