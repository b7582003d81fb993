"""Ctrl-C while the command line is still starting (importing its modules) ends with "Aborted!" and
no Python traceback, as a Ctrl-C later on does."""

from __future__ import annotations

import configparser
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def test_the_console_script_is_the_one_that_quiets_a_start_up_ctrl_c():
    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[2] / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"]
    assert "interpret-rl = interpret_rl.console:main" in scripts.splitlines()


def _ctrl_c_as_in_a_terminal():
    """A shell starts background jobs (CI's, `nohup ... &`) with SIGINT ignored, and the child would
    inherit that: Python then installs no handler and a Ctrl-C does nothing at all. Restore it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("after", [0.3, 0.6, 1.0, 1.5])
def test_ctrl_c_during_start_up_is_one_line_without_a_traceback(after, isolated_home):
    process = subprocess.Popen([sys.executable, "-m", "interpret_rl", "train", "--env", "CartPole-v1", "--steps",
                                "100000", "--name", "early", "--quiet", "--eval-episodes", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    time.sleep(after)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    # still starting: "Aborted!" (1 from click, 130 from the start-up guard); already training: saved, 130.
    # -SIGINT (the shell shows 130 too): seen 1 in 8 runs at 1.6 s, after click's "Aborted!" and no
    # traceback. CPython re-kills itself with SIGINT at exit when its "unhandled KeyboardInterrupt"
    # flag is set; our reading is that the Ctrl-C passed through code an extension ran with
    # PyRun_String during torch's import, which sets that flag even though click caught it.
    assert process.returncode in (1, 130, -signal.SIGINT), (process.returncode, output)
