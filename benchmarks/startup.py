"""Start-up time of the command line (issue 15): median wall and CPU seconds of ``--help``,
``models`` and a misspelled method name, beside a bare ``python -c "import sys"``.

    python benchmarks/startup.py --repeats 5

CPU seconds (user + system of the child) are what the command costs; wall seconds also hold the
time a loaded machine makes it wait. Each run is a fresh interpreter with a private
INTERPRET_RL_HOME.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    'python -c "import sys"': [sys.executable, "-c", "import sys"],
    "interpret-rl --help": [sys.executable, "-m", "interpret_rl", "--help"],
    "interpret-rl models": [sys.executable, "-m", "interpret_rl", "models"],
    "interpret-rl compare --methods salincy": [sys.executable, "-m", "interpret_rl", "compare", "--methods",
                                               "salincy", "--out", "OUT"],
}


def timed(argv: list[str], env: dict) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "INTERPRET_RL_HOME": home, "OMP_NUM_THREADS": "1"}
        print("| command | median wall s | median CPU s |")
        print("|---|---|---|")
        for label, argv in COMMANDS.items():
            argv = [os.path.join(home, "out") if a == "OUT" else a for a in argv]
            runs = [timed(argv, env) for _ in range(args.repeats)]
            print(f"| `{label}` | {statistics.median(r[0] for r in runs):.2f} | "
                  f"{statistics.median(r[1] for r in runs):.2f} |")


if __name__ == "__main__":
    main()
