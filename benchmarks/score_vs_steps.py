"""Score against steps trained: evaluate a model's kept weight snapshots and print a markdown table.

Each chosen snapshot plays ``--episodes`` full games (unclipped scores, stochastic policy, seed
10000 as ``interpret-rl train`` evaluates); the 100-game training mean logged nearest that step is
printed beside it. Snapshots are kept by ``interpret-rl train --keep-checkpoints``.

    python benchmarks/score_vs_steps.py breakout-a2c --episodes 30 --every 1000000 [--min-step 5000000]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from interpret_rl import registry
from interpret_rl.evaluate import evaluate


def training_means(model_dir: Path) -> dict[int, float]:
    """step -> 100-game training mean, from the model's training_curve.csv."""
    with (model_dir / "training_curve.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["ep_rew_mean"] not in ("", "nan")]
    return {int(r["step"]): float(r["ep_rew_mean"]) for r in rows}


def nearest(means: dict[int, float], step: int) -> float | None:
    return means[min(means, key=lambda s: abs(s - step))] if means else None


def near_multiples(snapshots: list[tuple[int, str]], every: int, min_step: int = 0) -> list[tuple[int, str]]:
    """For each multiple of ``every`` the snapshot nearest to it (within ``every / 2``), and the last
    snapshot: a run resumed between checkpoints keeps snapshots off the round steps."""
    chosen = {}
    for step, file in snapshots:
        multiple = round(step / every) * every
        if multiple > 0 and abs(step - multiple) <= every / 2 and step >= min_step:
            if multiple not in chosen or abs(step - multiple) < abs(chosen[multiple][0] - multiple):
                chosen[multiple] = (step, file)
    if snapshots and snapshots[-1][0] >= min_step:
        chosen[float("inf")] = snapshots[-1]
    return sorted(set(chosen.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="registry model that keeps weight snapshots")
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--every", type=int, default=1_000_000, help="evaluate snapshots at multiples of this step")
    parser.add_argument("--min-step", type=int, default=0, help="skip snapshots before this step")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    model_dir = registry.resolve(args.name)
    chosen = near_multiples(registry.snapshots(model_dir), args.every, args.min_step)
    if not chosen:
        raise SystemExit(f"{args.name}: no snapshot near a multiple of {args.every:,} steps")
    means = training_means(model_dir)
    print(f"| steps | 100-game training mean | evaluation, {args.episodes} games: mean +/- std (min, max) |")
    print("|---|---|---|")
    rows = []
    for step, file in chosen:
        agent = registry.load_agent(model_dir, snapshot=file)
        start = time.perf_counter()
        result = evaluate(agent, episodes=args.episodes, seed=agent.meta.get("seed", 0) + 10_000)
        row = {**result.as_dict(), "training_mean": nearest(means, step), "seconds": time.perf_counter() - start}
        rows.append(row)
        training = "-" if row["training_mean"] is None else f"{row['training_mean']:.1f}"
        print(f"| {step:,} | {training} | {result.mean:.1f} +/- {result.std:.1f} "
              f"({row['min']:.0f}, {row['max']:.0f}) |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
