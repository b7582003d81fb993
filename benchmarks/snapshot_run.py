"""Copy the last checkpoint of a training run that is still going into a resume folder
(maintainers' tool, for committing the state of a long run along the way).

The weights, optimizer state and meta.json of the last checkpoint are copied after checking their
sha256 against meta.json (a checkpoint being written at that instant is refused: run it again);
the training curve is cut to the rows up to the checkpoint's step, since a resume appends from
there. Nothing of the live run is changed. Weight snapshots are not copied.

    python benchmarks/snapshot_run.py ~/.interpret-rl/models/breakout-ppo benchmarks/breakout-ppo-run
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

from bundle_agent import replace_folder

from interpret_rl import registry
from interpret_rl.atomic import atomic_write_bytes, atomic_write_text, sha256_bytes


def checked(model_dir: Path, filename: str, meta: dict) -> bytes:
    data = (model_dir / filename).read_bytes()
    if sha256_bytes(data) != meta["files"][filename]:
        raise SystemExit(f"{model_dir / filename} does not match meta.json (a checkpoint is being written?); "
                         f"run again")
    return data


def curve_up_to(csv_path: Path, steps: int) -> bytes:
    rows = list(csv.DictReader(csv_path.open(newline="")))
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(r for r in rows if int(r["step"]) <= steps)
    return out.getvalue().encode()


def snapshot(model_dir: Path, dest: Path) -> dict:
    meta = registry.read_meta(model_dir)

    def fill(staging: Path) -> None:
        files = {}
        for filename in (registry.WEIGHTS, registry.OPTIMIZER):
            data = checked(model_dir, filename, meta)
            atomic_write_bytes(staging / filename, data)
            files[filename] = sha256_bytes(data)
        if (model_dir / "training_curve.csv").is_file():
            data = curve_up_to(model_dir / "training_curve.csv", meta["steps_trained"])
            atomic_write_bytes(staging / "training_curve.csv", data)
            files["training_curve.csv"] = sha256_bytes(data)
        atomic_write_text(staging / registry.META,
                          json.dumps({**meta, "files": files}, indent=2, sort_keys=True, allow_nan=False))

    replace_folder(dest, fill)
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="registry folder of the running training")
    parser.add_argument("dest", type=Path, help="resume folder to (re)write, e.g. benchmarks/breakout-ppo-run")
    args = parser.parse_args()
    meta = snapshot(args.model_dir, args.dest)
    print(f"{args.dest}: {meta['algo'] if 'algo' in meta else 'a2c'} checkpoint at {meta['steps_trained']:,} steps, "
          f"100-game training mean {meta.get('training', {}).get('mean_return_100')}")


if __name__ == "__main__":
    main()
