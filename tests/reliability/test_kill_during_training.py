"""SIGKILL a training run at random instants (it checkpoints after every update, so most instants
fall inside a save): every time, the folder loads and the run resumes from it."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time

import pytest

from interpret_rl import registry


def _run_cli(args):
    from interpret_rl.cli import cli

    try:
        cli.main(args, prog_name="interpret-rl", standalone_mode=False)
    finally:
        os._exit(0)


def _steps_saved(path) -> int:
    return registry.read_meta(path)["steps_trained"] if (path / registry.META).is_file() else -1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks the test process (torch already imported) to start fast")
def test_sigkill_at_random_instants_always_leaves_a_loadable_resumable_checkpoint(isolated_home):
    from interpret_rl import cli  # noqa: F401  imported once here, not in every child
    from interpret_rl.envs import make_vector_env
    from interpret_rl.plugin_manager import get_plugin_manager

    get_plugin_manager()  # the plugins (captum, lucent) load once, here
    make_vector_env("CartPole-v1", 1, for_training=True).close()
    fork = multiprocessing.get_context("fork")
    path = isolated_home / "models" / "killed"
    start = ["train", "--env", "CartPole-v1", "--steps", "50000000", "--name", "killed", "--checkpoint-every", "40",
             "--quiet", "--eval-episodes", "0"]
    resume = ["train", "--resume", "killed", "--quiet", "--eval-episodes", "0"]
    rng = random.Random(16)
    progress = []
    for round_ in range(4):
        before = _steps_saved(path)
        child = fork.Process(target=_run_cli, args=(start if round_ == 0 else resume,))
        child.start()
        deadline = time.monotonic() + 120
        while _steps_saved(path) <= before:  # this run has committed at least one checkpoint
            assert child.is_alive(), "training exited early"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        agent = registry.load_agent(path, check_env=False)  # weights and their sha256s agree
        meta = registry.read_meta(path)
        assert agent.steps_trained == meta["steps_trained"] > before
        progress.append(agent.steps_trained)
    assert progress == sorted(progress)
    # The last kill too left a folder a resumed run continues from (optimizer state included).
    child = fork.Process(target=_run_cli, args=(["train", "--resume", "killed", "--steps", str(progress[-1] + 80),
                                                 "--quiet", "--eval-episodes", "0"],))
    child.start()
    child.join(120)
    assert _steps_saved(path) == progress[-1] + 80
    leftovers = [p.name for p in path.iterdir() if p.name.endswith((".tmp", ".pending"))]
    assert leftovers == []
