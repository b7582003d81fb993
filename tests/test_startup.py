"""The command line starts without its heavy libraries (issue 15): ``--help``, ``models`` and a
misspelled method name import none of torch, captum, lucent or matplotlib, and each costs at most
a second or two of CPU time more than a bare ``python -c "import sys"``.

CPU time, not wall time: the test machines are shared, and a loaded machine stretches wall time
several-fold while CPU time stays what the command costs. benchmarks/README.md records both.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

HEAVY = ("torch", "captum", "lucent", "matplotlib", "kornia", "safetensors", "tensorboard")

# Runs the real entry point in a fresh interpreter, then names the heavy modules it imported.
PROBE = """
import sys
sys.argv = ["interpret-rl", *{args!r}]
try:
    from interpret_rl.cli import main
    main()
except SystemExit:
    pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def run_cpu_seconds(argv: list[str], env: dict) -> tuple[float, subprocess.CompletedProcess]:
    """CPU seconds (user + system) a child process took, and its result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), result


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "INTERPRET_RL_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}


def heavy_imports(result: subprocess.CompletedProcess) -> list[str]:
    line = next(line for line in result.stderr.splitlines() if line.startswith("HEAVY:"))
    return [name for name in line.removeprefix("HEAVY:").split(",") if name]


@pytest.mark.parametrize("args, budget", [
    (["--help"], 1.0),
    (["models"], 2.0),
    (["compare", "--methods", "salincy", "--out", "OUT"], 2.0),
])
def test_commands_start_without_heavy_libraries(args, budget, env, tmp_path):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    baseline, _ = run_cpu_seconds([sys.executable, "-c", "import sys"], env)
    seconds, result = run_cpu_seconds([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)], env)
    assert heavy_imports(result) == [], result.stderr
    if args[0] == "compare":  # the misspelling is answered, in one line, exit 2
        assert "unknown method 'salincy'; did you mean saliency?" in result.stderr
    assert seconds - baseline < budget, f"{' '.join(args)}: {seconds:.2f} s CPU (bare python {baseline:.2f} s)"


def test_importing_the_library_imports_no_torch(env):
    code = "import sys, interpret_rl, interpret_rl.cli; print(sorted(m for m in {!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code.format(HEAVY)], capture_output=True, text=True, env=env)
    assert result.stdout.strip() == "[]", result.stderr
