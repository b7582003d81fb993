"""Env steps until the 100-episode mean return first reaches 475 on CartPole-v1: the settings
``interpret-rl tune`` found (its preset file) against the algorithm's ``cartpole`` preset, seed by
seed, alternating in one process so both see the same machine load. Steps do not depend on the
load; seconds do.

    interpret-rl tune --env CartPole-v1 --trials 20 --budget 100000
    python benchmarks/tuned_to_475.py ~/.interpret-rl/studies/cartpole-a2c-best.json --seeds 0 1 2 3 4

A run that never reaches 475 within ``--budget`` steps counts as not reached. Settings with a
linear schedule (PPO's lr and clip range) anneal over ``--budget``, not over the tune budget.
"""

from __future__ import annotations

import argparse
import statistics

import torch

TARGET = 475.0


def steps_to_target(algo: str, values: dict, seed: int, budget: int) -> tuple[int | None, float]:
    from interpret_rl.rollout import algorithm_module, config_from_meta

    algorithm = algorithm_module(algo)
    config = config_from_meta(algorithm.CONFIG, {**values, "seed": seed, "total_steps": budget,
                                                 "target_return": TARGET, "log_every_steps": 10**12,
                                                 "torch_threads": 1})
    config.validate()
    result = algorithm.train(config)
    return result.reached_target_at, result.seconds


def main() -> None:
    from dataclasses import asdict

    from interpret_rl.rollout import algorithm_module
    from interpret_rl.tune import read_preset_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset_file", help="the JSON file tune wrote (studies/<study>-best.json)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budget", type=int, default=500_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    algo, tuned = read_preset_file(args.preset_file)
    preset = asdict(algorithm_module(algo).config_from_preset("cartpole"))
    runs: dict[str, list[tuple[int | None, float]]] = {"tuned": [], "preset": []}
    for seed in args.seeds:
        for label, values in (("tuned", tuned), ("preset", preset)):
            steps, seconds = steps_to_target(algo, values, seed, args.budget)
            runs[label].append((steps, seconds))
            print(f"{label} {algo} seed {seed}: {steps} steps, {seconds:.1f} s", flush=True)
    for label, results in runs.items():
        steps = [s if s is not None else float("inf") for s, _ in results]
        reached = sum(s is not None for s, _ in results)
        print(f"{label:>6}: reached {reached}/{len(results)}, median {statistics.median(steps):,.0f} steps "
              f"(range {min(steps):,.0f}-{max(steps):,.0f})", flush=True)


if __name__ == "__main__":
    main()
