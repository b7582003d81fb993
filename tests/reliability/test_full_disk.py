"""A real full disk (a 1 MiB tmpfs) under a training run that keeps weight snapshots: one line,
exit 1, the last checkpoint loads, and once space is freed the run resumes from it."""

from __future__ import annotations

import os
import subprocess

import pytest

from interpret_rl import registry


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_training_onto_a_full_disk_keeps_the_last_checkpoint_and_resumes_after_space_is_freed(
        run, small_disk, monkeypatch):
    monkeypatch.setenv("INTERPRET_RL_HOME", str(small_disk))
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 300_000)  # removed later to free space
    result = run("train", "--env", "CartPole-v1", "--steps", "5000000", "--name", "full", "--checkpoint-every", "40",
                 "--keep-checkpoints", "--quiet", "--eval-episodes", "0")
    assert result.exit_code == 1, result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "No space left on device" in error[0] and "Traceback" not in result.output
    path = small_disk / "models" / "full"
    agent = registry.load_agent(path, check_env=False)
    saved = agent.steps_trained
    assert saved >= 40 and [s for s, _ in registry.snapshots(path)][-1] == saved
    assert not [p for p in path.rglob(".*") if p.name.endswith((".tmp", ".pending"))]

    filler.unlink()
    resumed = run("train", "--resume", "full", "--steps", str(saved + 80), "--quiet", "--eval-episodes", "0")
    assert resumed.exit_code == 0, resumed.output
    assert registry.load_agent(path, check_env=False).steps_trained == saved + 80
