"""What a training run reports: a progress bar, the CSV training curve (and its plot), TensorBoard scalars."""

from __future__ import annotations

import csv
import math
import time
from collections import deque
from pathlib import Path

CSV_COLUMNS = [
    "step", "seconds", "fps", "ep_rew_mean", "ep_len_mean", "episodes",
    "policy_loss", "value_loss", "entropy", "explained_variance", "grad_norm", "lr",
]

# SB3-style TensorBoard keys, so existing dashboards and habits carry over.
TENSORBOARD_KEYS = {
    "ep_rew_mean": "rollout/ep_rew_mean", "ep_len_mean": "rollout/ep_len_mean", "fps": "time/fps",
    "policy_loss": "train/policy_loss", "value_loss": "train/value_loss", "entropy": "train/entropy",
    "explained_variance": "train/explained_variance", "grad_norm": "train/grad_norm", "lr": "train/learning_rate",
}


def next_multiple(steps: int, every: int) -> int:
    """The first multiple of ``every`` after ``steps``: logs and checkpoints fall on round step
    counts (500,000, 1,000,000...) however often a run was interrupted and resumed."""
    return (steps // every + 1) * every


class TrainingLog:
    """Collects finished games and writes a curve row every ``config.log_every_steps``.

    Returns are those of full games with unclipped rewards (the score a person would report).
    """

    def __init__(self, out_dir, config, start_steps: int = 0, progress: bool = False,
                 tensorboard: bool = False):
        self.config = config
        self._last_steps = start_steps
        self._next_log = next_multiple(start_steps, config.log_every_steps)
        self.returns: deque[float] = deque(maxlen=100)
        self.lengths: deque[int] = deque(maxlen=100)
        self.episodes = 0
        self._start = self._last_time = time.perf_counter()
        # An algorithm's own statistics (PPO's clip fraction, PQN's epsilon) after the common ones.
        self.columns = CSV_COLUMNS + list(getattr(config, "extra_log_columns", ()))
        self.csv_path: Path | None = None
        self._csv_file = self._csv = None
        if out_dir is not None:
            self.csv_path = Path(out_dir) / "training_curve.csv"
            self.csv_path.parent.mkdir(parents=True, exist_ok=True)
            resuming = self.csv_path.exists() and self.csv_path.stat().st_size > 0
            self._csv_file = open(self.csv_path, "a", newline="")
            self._csv = csv.DictWriter(self._csv_file, fieldnames=self.columns)
            if not resuming:
                self._csv.writeheader()
        self._tb = None
        if tensorboard and out_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        self._bar = None
        if progress:
            from tqdm import tqdm

            self._bar = tqdm(total=config.total_steps, initial=start_steps, unit="step", unit_scale=True,
                             dynamic_ncols=True)

    def record_games(self, finished: list[tuple[float, int]]) -> None:
        for score, length in finished:
            self.returns.append(score)
            self.lengths.append(length)
            self.episodes += 1

    def state(self) -> dict:
        """The recent games, so a resumed run's mean return continues where it stopped."""
        return {"returns": list(self.returns), "lengths": list(self.lengths), "episodes": self.episodes}

    def restore(self, state: dict) -> None:
        self.returns.extend(state["returns"])
        self.lengths.extend(state["lengths"])
        self.episodes = state["episodes"]

    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns) if self.returns else float("nan")

    def should_log(self, steps: int) -> bool:
        if self._bar is not None:
            self._bar.update(steps - self._bar.n)
        return steps >= self._next_log

    def write(self, steps: int, stats: dict) -> None:
        self._next_log = next_multiple(steps, self.config.log_every_steps)
        now = time.perf_counter()
        fps = (steps - self._last_steps) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_steps = now, steps
        row = {
            "step": steps,
            "seconds": round(now - self._start, 3),
            "fps": round(fps, 1),
            "ep_rew_mean": self.mean_return(),
            "ep_len_mean": sum(self.lengths) / len(self.lengths) if self.lengths else float("nan"),
            "episodes": self.episodes,
            **{k: stats.get(k, float("nan")) for k in self.columns[6:]},
        }
        if self._csv is not None:
            self._csv.writerow(row)
            self._csv_file.flush()
        if self._tb is not None:
            extra = {k: f"train/{k}" for k in self.columns if k not in TENSORBOARD_KEYS and k in stats}
            for key, tag in {**TENSORBOARD_KEYS, **extra}.items():
                value = row.get(key)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self._tb.add_scalar(tag, value, steps)
        if self._bar is not None:
            self._bar.set_postfix(fps=f"{fps:.0f}", ep_rew_mean=f"{row['ep_rew_mean']:.1f}", refresh=False)

    def summary(self) -> dict:
        mean = self.mean_return()
        return {"mean_return_100": None if math.isnan(mean) else round(mean, 3), "episodes": self.episodes}

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._csv_file is not None:
            self._csv_file.close()
        if self._tb is not None:
            self._tb.close()


def plot_training_curve(model_dir: str | Path) -> Path | None:
    """The model's training_curve.csv -> training_curve.png beside it (mean return of the last 100
    games against environment steps), written atomically; None when there is no curve to draw yet.
    matplotlib is imported here, not with the module: training and the CLI start without it."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from interpret_rl.atomic import atomic_write_bytes

    model_dir = Path(model_dir)
    csv_path = model_dir / "training_curve.csv"
    if not csv_path.is_file():
        return None
    with csv_path.open(newline="") as f:
        points = [(int(r["step"]), float(r["ep_rew_mean"])) for r in csv.DictReader(f)
                  if r["ep_rew_mean"] not in ("", "nan")]
    if not points:
        return None
    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot([step for step, _ in points], [score for _, score in points])
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean return, last 100 games")
    ax.set_title(model_dir.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write_bytes(model_dir / "training_curve.png", buffer.getvalue())
    return model_dir / "training_curve.png"
