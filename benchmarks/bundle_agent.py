"""Bundle a trained registry model as one of the package's agents (maintainers' tool).

Re-plots the training curve, evaluates the agent when asked (unclipped full games, stochastic
policy, seed 10000 as ``interpret-rl train`` does), and exports it into ``interpret_rl/bundled/NAME``
(weights, meta.json, curve) and, with ``--resume-dir``, with its optimizer state into a folder a
later run can ``--resume`` from. A folder is replaced only after its new copy is complete, and a
README.md kept in the resume folder survives.

    python benchmarks/bundle_agent.py breakout-a2c --evaluate 30 --resume-dir benchmarks/breakout-run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from interpret_rl import registry
from interpret_rl.atomic import sha256_file
from interpret_rl.evaluate import evaluate
from interpret_rl.training_log import plot_training_curve


def refresh_curve(model_dir: Path) -> None:
    """Re-plot the curve and record the new picture's hash (the trainer plots after its last save)."""
    png = plot_training_curve(model_dir)
    if png is not None:
        meta = registry.read_meta(model_dir)
        registry.update_meta(model_dir, files={**meta["files"], png.name: sha256_file(png)})


def replace_folder(dest: Path, fill) -> None:
    """``fill(staging)`` writes the new copy into a sibling temp folder; dest's README.md is carried
    over, then the folders are swapped, so dest is never half written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the bundled folder ships in the package
    try:
        fill(staging)
        if (dest / "README.md").is_file():
            shutil.copy2(dest / "README.md", staging / "README.md")
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_with_export(model_dir: Path, dest: Path, with_optimizer: bool) -> None:
    """Export into a sibling temp folder, carry dest's README.md over, then swap folders."""
    replace_folder(dest, lambda staging: registry.export_model(model_dir, staging, with_optimizer=with_optimizer))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="registry model to bundle (also the bundled name)")
    parser.add_argument("--evaluate", type=int, default=0, metavar="EPISODES",
                        help="evaluate over this many games first and record the result (0: keep the recorded one)")
    parser.add_argument("--resume-dir", type=Path, help="also export weights + optimizer state here")
    args = parser.parse_args()

    model_dir = registry.resolve(args.name)
    refresh_curve(model_dir)
    if args.evaluate:
        agent = registry.load_agent(model_dir)
        result = evaluate(agent, episodes=args.evaluate, seed=agent.meta.get("seed", 0) + 10_000)
        registry.update_meta(model_dir, evaluation=result.as_dict())
        print(f"{args.name} at {agent.steps_trained:,} steps: {result.mean:.1f} +/- {result.std:.1f} "
              f"over {args.evaluate} games (min {min(result.scores):.0f}, max {max(result.scores):.0f})")
    replace_with_export(model_dir, registry.BUNDLED_DIR / args.name, with_optimizer=False)
    if args.resume_dir:
        replace_with_export(model_dir, args.resume_dir, with_optimizer=True)
    print(f"bundled {args.name} into {registry.BUNDLED_DIR / args.name}")


if __name__ == "__main__":
    main()
