"""Run by tests/test_distributed.py under torchrun: a few data-parallel updates, then each rank
writes its weights so the test can check they are identical."""

import sys

from safetensors.torch import save_file

from interpret_rl.a2c import config_from_preset, train
from interpret_rl.distributed import Ranks

if __name__ == "__main__":
    out = sys.argv[1]
    config = config_from_preset("cartpole", total_steps=2 * 8 * 5 * 10, seed=0, log_every_steps=10**9)
    result = train(config)  # 10 updates per rank
    state = {k: v.contiguous() for k, v in result.agent.network.state_dict().items()}
    save_file(state, f"{out}/rank{Ranks().rank}.safetensors")
    print(f"rank {Ranks().rank} steps {result.steps}")
