"""The training-curve plot written beside a model's training_curve.csv."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from interpret_rl.training_log import CSV_COLUMNS, plot_training_curve


def write_curve(folder, rows):
    """A training_curve.csv as TrainingLog writes it, with only ``step`` and ``ep_rew_mean`` filled."""
    with (folder / "training_curve.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows({"step": step, "ep_rew_mean": score} for step, score in rows)


def test_curve_png_is_drawn_beside_the_csv(tmp_path):
    write_curve(tmp_path, [(1000, "nan"), (2000, 9.5), (3000, 21.0), (4000, 40.25)])  # no game finished at 1000
    path = plot_training_curve(tmp_path)
    assert path == tmp_path / "training_curve.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (600, 350)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10  # a drawn plot, not a blank canvas
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training_curve.csv", "training_curve.png"]


def test_no_curve_yet_draws_nothing(tmp_path):
    assert plot_training_curve(tmp_path) is None  # no CSV
    write_curve(tmp_path, [(1000, "nan"), (2000, "")])
    assert plot_training_curve(tmp_path) is None  # no finished game
    assert not (tmp_path / "training_curve.png").exists()
