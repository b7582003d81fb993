"""torchrun data parallelism: two CPU ranks (gloo) stay bit-identical and count global steps."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


@pytest.mark.slow
def test_two_ranks_keep_identical_weights(tmp_path):
    worker = Path(__file__).with_name("dist_worker.py")
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
         str(tmp_path)], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "rank 0 steps 800" in run.stdout and "rank 1 steps 800" in run.stdout  # global steps
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and training moved them: not the initial weights
    torch.manual_seed(0)
    from interpret_rl.networks import MLPActorCritic

    initial = MLPActorCritic((4,), 2).state_dict()
    assert not torch.equal(initial["policy.weight"], a["policy.weight"])
