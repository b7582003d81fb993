"""Pendulum-v1 with a continuous (Gaussian) policy: steps to a mean return of -300, evaluation return, wall time.

Trains with the ``pendulum`` preset of ``--algo`` for up to ``--steps`` env steps per seed and
records the first step at which the mean return of the last 100 training episodes reaches -300 (the
done-when of issue 14); with ``--stop`` training ends there. Then it plays 20 evaluation episodes
with the stochastic policy and 20 with its mean (deterministic). Prints one line per seed and the medians.

    python benchmarks/pendulum.py --seeds 0 1 2 3 4 [--algo ppo] [--steps 200000] [--stop]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

THRESHOLD = -300.0


def _cpu_seconds() -> float:
    """CPU time of this process (user + system): on a shared, loaded machine the wall time says
    more about the other jobs than about the training."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(seed: int, algo: str, steps: int, stop: bool) -> dict:
    from interpret_rl.evaluate import evaluate
    from interpret_rl.rollout import algorithm_module

    algorithm = algorithm_module(algo)
    config = algorithm.config_from_preset("pendulum", seed=seed, total_steps=steps,
                                          target_return=THRESHOLD if stop else None)
    crossed: list[int] = []  # env steps of the first update whose training mean reaches the threshold

    def on_update(steps: int, stats: dict) -> None:
        if not crossed and stats["ep_rew_mean"] >= THRESHOLD:  # NaN before the first episode: False
            crossed.append(steps)

    start, cpu_start = time.perf_counter(), _cpu_seconds()
    result = algorithm.train(config, on_update=on_update)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    stochastic = evaluate(result.agent, episodes=20, seed=seed + 10_000)
    greedy = evaluate(result.agent, episodes=20, seed=seed + 10_000, deterministic=True)
    return {"seed": seed, "steps": result.steps, "reached": crossed[0] if crossed else None, "seconds": seconds,
            "cpu": cpu, "train_mean": result.mean_return,
            "eval_stochastic": stochastic.mean, "eval_mean_action": greedy.mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--algo", choices=["a2c", "ppo"], default="ppo")
    parser.add_argument("--steps", type=int, default=None, help="default: the preset's total_steps")
    parser.add_argument("--stop", action="store_true", help=f"stop once the training mean reaches {THRESHOLD:g}")
    args = parser.parse_args()
    import torch

    from interpret_rl.rollout import algorithm_module

    torch.set_num_threads(1)
    steps = args.steps or algorithm_module(args.algo).PRESETS["pendulum"]["total_steps"]
    rows = []
    for seed in args.seeds:
        row = run(seed, args.algo, steps, args.stop)
        rows.append(row)
        reached = "not reached" if row["reached"] is None else f"reached at {row['reached']:,} steps"
        print(f"{args.algo} seed {seed}: {THRESHOLD:g} {reached}; {row['steps']:,} steps in {row['seconds']:.0f} s "
              f"({row['cpu']:.0f} s CPU); "
              f"mean return of the "
              f"last 100 training episodes {row['train_mean']:.0f}; evaluation (20 episodes) "
              f"{row['eval_stochastic']:.0f} sampled, {row['eval_mean_action']:.0f} with the mean action", flush=True)
    for key in ("train_mean", "eval_stochastic", "eval_mean_action", "seconds", "cpu"):
        print(f"median {key}: {statistics.median(r[key] for r in rows):.0f}")


if __name__ == "__main__":
    main()
