"""The tune report: one self-contained HTML page (``html_page.page``; every picture embedded as a PNG).

Optuna's own matplotlib plots (optimisation history, parameter importances, slices, intermediate
values), then what the explanation numbers say: the share of saliency per feature against the
score, a table of every trial, and the saliency pictures of the best trials.
"""

from __future__ import annotations

import html
import io
import math
import warnings
from pathlib import Path

from interpret_rl.html_page import data_uri, page

TOP_PICTURES = 5
"""Saliency pictures shown (the best trials first)."""


def _png(fig) -> str:
    """A pyplot figure (Optuna draws with pyplot) as a PNG data URI; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return data_uri(buffer.getvalue())


def _optuna_plots(study) -> list[tuple[str, str | None, str]]:
    """``(title, PNG data URI or None, note)`` per Optuna plot; a plot that cannot be drawn says why."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as optuna_plots

    plots = [
        ("Optimisation history", optuna_plots.plot_optimization_history,
         "score of each complete trial and the best so far"),
        ("Parameter importances", optuna_plots.plot_param_importances,
         "fANOVA: share of the score's variance each parameter explains (complete trials)"),
        ("Slices", optuna_plots.plot_slice, "score against each parameter's value"),
        ("Learning curves reported", optuna_plots.plot_intermediate_values,
         "running mean of the training return at each report point; pruned trials stop early"),
    ]
    drawn = []
    for title, plot, note in plots:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = plot(study)
            first = axes.flat[0] if hasattr(axes, "flat") else axes
            figure = first.get_figure()
            if hasattr(axes, "flat"):
                figure.set_size_inches(min(2.8 * len(axes.flat), 30), 3.6)  # one panel per parameter
            drawn.append((title, _png(figure), note))
        except Exception as err:  # noqa: BLE001 - e.g. importances need two complete trials
            drawn.append((title, None, f"not drawn: {str(err).splitlines()[0] if str(err) else type(err).__name__}"))
    return drawn


def _share_plot(complete) -> str | None:
    """Share of saliency per feature against the score, one dot per complete trial."""
    rows = [(t.value, t.user_attrs["explain.share"]) for t in complete if "explain.share" in t.user_attrs]
    if len(rows) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows[0][1])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name in names:
        ax.scatter([score for score, _ in rows], [share.get(name, math.nan) for _, share in rows], label=name, s=18)
    ax.set_xlabel("trial score")
    ax.set_ylabel("share of |saliency|")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _trial_table(trials) -> str:
    params = sorted({name for t in trials for name in t.params})
    shares = sorted({name for t in trials for name in t.user_attrs.get("explain.share", {})})
    head = ["trial", "state", "score", "eval", "curve", "deletion", *params, *[f"share: {s}" for s in shares]]
    rows = []
    for t in sorted(trials, key=lambda t: (t.value is None, -(t.value or 0))):
        attrs = t.user_attrs
        cells = [t.number, t.state.name.lower(), "" if t.value is None else t.value, attrs.get("eval_mean", ""),
                 attrs.get("curve_area", ""), attrs.get("explain.deletion", ""),
                 *[t.params.get(p, "") for p in params],
                 *[attrs.get("explain.share", {}).get(s, "") for s in shares]]
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join(rows) + "</table>")


def _saliency_pictures(study, complete, artifacts_dir: Path) -> str:
    from optuna.artifacts import FileSystemArtifactStore, download_artifact

    store = FileSystemArtifactStore(str(artifacts_dir))
    parts = []
    for trial in sorted(complete, key=lambda t: -t.value)[:TOP_PICTURES]:
        artifact_id = trial.user_attrs.get("explain.picture_artifact")
        if not artifact_id:
            continue
        local = artifacts_dir / f".report-{artifact_id}.png"
        try:
            download_artifact(artifact_store=store, file_path=str(local), artifact_id=artifact_id)
            picture = data_uri(local.read_bytes())
        except Exception:  # noqa: BLE001 - the artifact lives on another machine's disk
            continue
        finally:
            local.unlink(missing_ok=True)
        top = html.escape(str(trial.user_attrs.get("explain.top")))
        parts.append(f"<figure><img src='{picture}'><figcaption>trial {trial.number}, "
                     f"score {trial.value:.1f}; most attention on {top}</figcaption></figure>")
    return "".join(parts) or "<p>No saliency pictures in this machine's artifact store.</p>"


STYLE = """body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0}figure{display:inline-block;margin:6px}img{max-width:100%}.note{color:#666;font-size:13px}
h2{margin-top:28px}"""


def write_report(study, path: Path, artifacts_dir: Path, summary: dict) -> Path:
    """Write the report of ``study`` to ``path`` (atomically) and return it."""
    from optuna.trial import TrialState

    from interpret_rl.atomic import atomic_write_text

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    parts = [f"<h1>Tune report: {html.escape(study.study_name)}</h1>",
             "<p>" + ", ".join(f"{html.escape(k)}: <b>{html.escape(str(v))}</b>" for k, v in summary.items()) + "</p>",
             "<p>" + ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n) + " trials. "
             "<span class='note'>score = (mean evaluation return + mean of the training return at 20 evenly "
             "spaced points of the budget) / 2.</span></p>"]
    if complete:
        best = max(complete, key=lambda t: t.value)
        parts.append(f"<h2>Best: trial {best.number}, score {best.value:.1f}</h2><pre>"
                     + html.escape("\n".join(f"{k} = {v!r}" for k, v in best.params.items())) + "</pre>")
    for title, picture, note in _optuna_plots(study):
        parts.append(f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(note)}</p>")
        if picture:
            parts.append(f"<img src='{picture}'>")
    parts.append("<h2>What the agents look at</h2><p class='note'>Gradient saliency of the chosen action over "
                 "a few states of each trial's agent: the share of |saliency| per observation feature, MinAtar "
                 "object channel (paddle, ball...) or stacked Atari frame. "
                 "Deletion: area under the action-probability curve as the most salient units are removed "
                 "(lower: the map found what matters).</p>")
    share_plot = _share_plot(complete)
    parts.append(f"<img src='{share_plot}'>" if share_plot
                 else "<p>Fewer than two trials with explanation numbers.</p>")
    parts.append(_saliency_pictures(study, complete, artifacts_dir))
    parts.append("<h2>All trials</h2><p class='note'>A pruned trial's score is its curve average where it was "
                 "stopped (what Optuna keeps as its value); it has no evaluation.</p>" + _trial_table(trials))
    atomic_write_text(path, page(f"tune {study.study_name}", parts, STYLE))
    return path
