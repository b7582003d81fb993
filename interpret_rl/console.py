"""The ``interpret-rl`` console script: the command line, with a Ctrl-C during start-up quiet.

Loading the command line imports click, the registry and the commands' modules; a Ctrl-C in that
second or two used to print a 25-line ``KeyboardInterrupt`` traceback from whatever import was
running. Nothing has been read or written yet, so it ends the way click ends a Ctrl-C later on:
"Aborted!" and the shell's code for SIGINT.
"""

from __future__ import annotations

import sys


def main() -> None:
    # The guard spans the whole start-up, up to the moment click takes over Ctrl-C itself (it ends
    # one with "Aborted!" too): a CI run caught a Ctrl-C in cli.main's own imports (the plugin
    # warnings' importlib.metadata), after the command-line modules had loaded.
    try:
        from interpret_rl.cli import main as command_line

        command_line()
    except KeyboardInterrupt:
        print("Aborted!", file=sys.stderr)
        sys.exit(130)
