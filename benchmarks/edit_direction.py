"""How often edit's directions give an empty map on real Breakout states (benchmarks/README.md, edit).

Run: python benchmarks/edit_direction.py   (about 70 s on one thread)
"""

import time

import torch

from interpret_rl.methods import build_method
from interpret_rl.pool import real_state_pool
from interpret_rl.registry import load_agent
from interpret_rl.targets import parse_target


def main() -> None:
    torch.set_num_threads(1)
    agent = load_agent("breakout-a2c")
    states = real_state_pool(agent, 1000, 0)[::50][:20]
    for direction in ("raise", "auto"):
        start = time.time()
        result = build_method("edit", {"direction": direction}).explain(agent, parse_target("action", agent), states)
        nonempty = int((result.values.flatten(1).abs().sum(1) > 0).sum())
        changed = float(torch.tensor(result.extras["changed"]).float().median())
        print(f"{direction}: non-empty {nonempty}/{len(states)}, flipped {sum(result.extras['flipped'])}, "
              f"median entries changed {changed:g}, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
