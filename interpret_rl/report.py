"""Write a ``ComparisonResult``: ``grid.png``, a self-contained ``report.html`` and ``results.json``.

Layout (grid and HTML alike): one row per (target, observation), one column for the observation
itself and one per method. A stack of frames ``(C, H, W)`` is shown as a strip of its C frames,
oldest left, so a per-frame attribution stays visible; a vector observation as a bar chart.

Colour scale: attributions of different methods come in different units (a gradient, a change of
the target score, ...), so one absolute scale would blank out some methods. Instead each map is
divided by its method's largest ``|attribution|`` on that observation (all frames together), which
puts every map of a row on one shared scale from -1 to 1: the row's colour bar. That maximum is
printed under each cell so the raw numbers stay recoverable (results.json has the full statistics).
Heat maps are drawn over the grey frame with an opacity that grows with ``|attribution|``.
A synthesis (optim) is shown as the optimised observation in the target's first row, with the
indices of the real observations that excite the target most (``dataset_examples``).

``write_checkpoint_report`` writes a ``CheckpointComparison`` (the same observations explained at
several training checkpoints): ``checkpoints.png``, one strip per method and target with a column
per checkpoint, plus the usual files for the newest of them with a section on the strips added.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from interpret_rl.atomic import atomic_write_bytes, atomic_write_text
from interpret_rl.compare import ComparisonResult
from interpret_rl.observations import save_observations

CMAP = colormaps["RdBu_r"]
GAP = 3  # white pixels between the frames of a strip
HTML_ZOOM = 2  # frames are 84 pixels; the browser scales the strips to the page width, pixelated
SCALE_LABEL = "attribution ÷ max |attribution| of its method on this observation"
ROW_SCALE_LABEL = "−1 … 1: attribution ÷ its method's max |attribution| in this row"
FEATURE_NAMES = {"CartPole-v1": ["cart position", "cart velocity", "pole angle", "pole ang. velocity"]}


def check_output_dir(path: str | os.PathLike) -> Path:
    """Prove that ``path`` can be written: a writable folder, or a missing one whose nearest existing
    ancestor is a writable folder (nothing is created). ``ValueError`` naming the path and the reason
    otherwise. Called before any work, so a long comparison is never lost at the end."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not existing.is_dir():
        what = "is a file" if existing == path else f"lies under the file {existing}"
        raise ValueError(f"output folder {path} {what}, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):  # a real write: os.access lies for root and some mounts
            pass
    except OSError as err:
        raise ValueError(f"output folder {path} is not writable: {existing}: {err.strerror or err}") from None
    return path


@dataclass
class RenderedCell:
    """What one grid position shows: an RGB image (uint8 ``(H, W, 3)``) or only text."""

    image: np.ndarray | None
    caption: str
    error: bool = False


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _display_range(space: dict, observations: np.ndarray) -> tuple[float, float]:
    """Grey-level range: the space's uniform bounds (0..255 for Atari), else the data's range."""
    low, high = space.get("low") or [None], space.get("high") or [None]
    if len(low) == 1 and len(high) == 1 and low[0] is not None and high[0] is not None and high[0] > low[0]:
        return float(low[0]), float(high[0])
    lo, hi = float(observations.min()), float(observations.max())
    return lo, (hi if hi > lo else lo + 1.0)


def _frames(x: np.ndarray) -> list[np.ndarray]:
    """An image observation ``(C, H, W)`` or ``(H, W)`` -> its 2-D frames."""
    return list(x) if x.ndim == 3 else [x]


def _strip(frames_rgb: list[np.ndarray]) -> np.ndarray:
    """Frames ``(H, W, 3)`` float 0..1 side by side with white gaps -> uint8 ``(H, W_total, 3)``."""
    height = frames_rgb[0].shape[0]
    gap = np.ones((height, GAP, 3))
    parts = [p for frame in frames_rgb for p in (frame, gap)][:-1]
    return (np.concatenate(parts, axis=1) * 255).round().astype(np.uint8)


def _grey(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    grey = np.clip((frame - lo) / (hi - lo), 0, 1)
    return np.repeat(grey[..., None], 3, axis=2)


def _overlay(grey: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Heat in [-1, 1] over a grey frame; opacity grows with |heat| so weak attribution shows the frame."""
    colour = CMAP((np.clip(heat, -1, 1) + 1) / 2)[..., :3]
    alpha = (0.85 * np.sqrt(np.clip(np.abs(heat), 0, 1)))[..., None]
    return grey * (1 - alpha) + colour * alpha


def _bars(values: np.ndarray, names: list[str], colours, ylim: tuple[float, float] | None) -> np.ndarray:
    """A small bar chart rendered to uint8 RGB."""
    fig = Figure(figsize=(3.2, 1.7), dpi=90)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(values)), values, color=colours)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(values)), names, fontsize=6, rotation=20)
    ax.tick_params(axis="y", labelsize=6)
    if ylim:
        ax.set_ylim(*ylim)
    fig.tight_layout(pad=0.3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class CellRenderer:
    """Renders the observation, attribution and synthesis cells of one result."""

    def __init__(self, result: ComparisonResult):
        self.result = result
        self.observations = result.observations.numpy()
        self.is_image = self.observations.ndim in (3, 4)
        self.lo, self.hi = _display_range(result.observation_space, self.observations)
        size = int(np.prod(self.observations.shape[1:]))
        default_names = [f"x{i}" for i in range(size)]
        self.names = FEATURE_NAMES.get(result.env_id, default_names) if size == 4 else default_names

    def observation(self, x: np.ndarray) -> np.ndarray:
        if self.is_image:
            return _strip([_grey(f, self.lo, self.hi) for f in _frames(x)])
        return _bars(x.reshape(-1), self.names, "0.5", None)

    def attribution(self, x: np.ndarray, values: np.ndarray, scale: float) -> np.ndarray:
        """``values`` shaped like ``x``, shown divided by ``scale`` (see the module docstring)."""
        heat = values / scale
        if self.is_image:
            return _strip([_overlay(_grey(f, self.lo, self.hi), h) for f, h in zip(_frames(x), _frames(heat))])
        flat = heat.reshape(-1)
        return _bars(flat, self.names, CMAP((np.clip(flat, -1, 1) + 1) / 2), (-1.05, 1.05))

    def rows(self) -> list[tuple]:
        """``(target, observation index, [RenderedCell per column])`` for every grid row."""
        result, rows = self.result, []
        shown = [self.observation(x) for x in self.observations]
        for target in result.targets:
            for i, x in enumerate(self.observations):
                policy = result.policy[i]
                first = RenderedCell(shown[i], f"obs {i}: policy {policy['action']} "
                                               f"(p={policy['probability']:.2f}), value {policy['value']:.3g}")
                cells = [self.method_cell(m.name, target.spec, i, x) for m in result.methods]
                rows.append((target, i, [first, *cells]))
        return rows

    def method_cell(self, method: str, target: str, i: int, x: np.ndarray) -> RenderedCell:
        cell = self.result.cell(method, target)
        if not cell.ok:
            return RenderedCell(None, f"failed: {cell.error}", error=True)
        explanation = cell.explanation
        values = explanation.values.detach().cpu().numpy()
        if explanation.kind == "attribution":
            scale = float(np.abs(values[i]).max())
            return RenderedCell(self.attribution(x, values[i], scale if scale > 0 else 1.0),
                                f"max |attribution| {scale:.3g} · {cell.seconds:.2f} s")
        return self.synthesis_cell(cell, values, i)

    def synthesis_cell(self, cell, values: np.ndarray, i: int) -> RenderedCell:
        extras = cell.explanation.extras
        examples = extras.get("dataset_examples", [])
        listed = ", ".join(f"obs {e}" for e in examples) or "none"
        if i < len(values):
            activation = extras.get("activation", [None] * len(values))
            text = f"optimised input {i}"
            if i < len(activation) and activation[i] is not None:
                text += f": target {activation[i]:.3g}"
            if extras.get("max_real_activation") is not None:
                text += f" (best real {extras['max_real_activation']:.3g})"
            return RenderedCell(self.observation(values[i]), f"{text}; dataset examples: {listed}")
        rank = f"ranks {examples.index(i) + 1} among" if i in examples else "is not among"
        return RenderedCell(None, f"obs {i} {rank} the real observations exciting this target most "
                                  f"(dataset examples: {listed})")


def _colourbar_png() -> bytes:
    fig = Figure(figsize=(3.6, 0.55), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0.05, 0.55, 0.9, 0.3])
    fig.colorbar(ScalarMappable(Normalize(-1, 1), CMAP), cax=ax, orientation="horizontal")
    ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def render_grid(result: ComparisonResult, rows: list[tuple]) -> bytes:
    """The PNG grid: rows = targets x observations, columns = observation then each method, and a
    colour bar per row."""
    columns = ["observation"] + [f"{m.name} ({m.kind})" for m in result.methods]
    sample = next((c.image for _, _, cells in rows for c in cells if c.image is not None), np.zeros((1, 4, 3)))
    cell_w = 3.6
    cell_h = cell_w * sample.shape[0] / sample.shape[1] + 0.55  # room for the caption under the image
    fig = Figure(figsize=(1.6 + cell_w * len(columns) + 0.9, 0.8 + cell_h * len(rows)), dpi=100)
    canvas = FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), len(columns) + 1, width_ratios=[cell_w] * len(columns) + [0.12],
                            left=1.6 / fig.get_figwidth(), right=0.96, top=1 - 0.75 / fig.get_figheight(),
                            bottom=0.2 / fig.get_figheight(), hspace=0.55, wspace=0.08)
    fig.suptitle(f"{result.agent_name} on {result.env_id}, seed {result.seed}; colour: {SCALE_LABEL}",
                 fontsize=10, y=1 - 0.12 / fig.get_figheight(), va="top")
    for r, (target, i, cells) in enumerate(rows):
        for c, rendered in enumerate(cells):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([]), ax.set_yticks([])
            if rendered.image is not None:
                ax.imshow(rendered.image, interpolation="nearest")
            else:
                ax.axis("off")
            colour = "firebrick" if rendered.error else "black"
            text = "\n".join(textwrap.wrap(rendered.caption, 70)[:3])
            if rendered.image is not None:
                ax.set_xlabel(text, fontsize=6.5, color=colour)
            else:
                ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, color=colour, transform=ax.transAxes)
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{target.label}\nobs {i}", fontsize=8, rotation=0, ha="right", va="center")
        bar = fig.colorbar(ScalarMappable(Normalize(-1, 1), CMAP), cax=fig.add_subplot(grid[r, -1]))
        bar.ax.tick_params(labelsize=6)
        if r == 0:
            bar.ax.set_title("÷ max|a|", fontsize=6)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


CURVE_METRICS = ("deletion", "insertion")


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _curves_png(result: ComparisonResult, method: str) -> bytes | None:
    """A small plot of ``method``'s deletion / insertion curves (mean over targets), or None."""
    lines = []
    for metric in CURVE_METRICS:
        curves = [(tuple(r.details["fractions"]), r.details["curve"]) for r in result.metric_results(method, metric)
                  if not isinstance(r, str) and "curve" in r.details and "fractions" in r.details]
        if curves and all(f == curves[0][0] for f, _ in curves):
            lines.append((metric, curves[0][0], np.mean([c for _, c in curves], axis=0)))
    if not lines:
        return None
    fig = Figure(figsize=(2.6, 1.7), dpi=90)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for metric, fractions, curve in lines:
        ax.plot(fractions, curve, label=metric, color="firebrick" if metric == "deletion" else "steelblue")
    ax.set_xlabel("fraction of units replaced", fontsize=6)
    ax.set_ylabel("normalised target score", fontsize=6)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def render_metrics_section(result: ComparisonResult) -> str:
    """The "Metrics" section: one row per method, one column per metric with the mean over targets,
    its rank among the methods (1 = best), pass/fail badges for checks, and the curves."""
    if not result.metrics:
        return ""
    esc = html.escape
    out = ["<h2>Metrics</h2>",
           f"<p>Each number is the metric's mean over the targets ({len(result.targets)}) on the same "
           f"{len(result.observations)} observations; ↑ higher is better, ↓ lower is better. The report ranks "
           f"methods per metric (#1 = best; ties share a rank); the best value is bold. "
           f"n/a: the metric gave no value (hover for why).</p>",
           "<table class='kv metrics'><tr><th>method</th>"]
    for m in result.metrics:
        arrow = {True: " ↑", False: " ↓", None: ""}[m.higher_is_better]
        opts = ", ".join(f"{k}={v}" for k, v in m.options.items()) or "no options"
        out.append(f"<th title='{esc(m.description)} ({esc(m.plugin)}; {esc(opts)})'>{esc(m.name)}{arrow}</th>")
    has_curves = any(m.name in CURVE_METRICS for m in result.metrics)
    if has_curves:
        out.append("<th>deletion / insertion curves</th>")
    out.append("</tr>")
    ranks = {m.name: result.metric_ranks(m.name) for m in result.metrics}
    for method in result.methods:
        out.append(f"<tr><th>{esc(method.name)}</th>")
        for m in result.metrics:
            mean = result.metric_mean(method.name, m.name)
            if mean is None:
                error = result.metric_error(method.name, m.name) or "no value"
                out.append(f"<td class='na' title='{esc(error)}'>n/a</td>")
                continue
            rank = ranks[m.name].get(method.name)
            text = _fmt(mean)
            if rank == 1 and len(ranks[m.name]) > 1:
                text = f"<b>{text}</b>"
            cell = text + (f" <span class='rank'>#{rank}</span>" if rank is not None else "")
            passed = result.metric_passed(method.name, m.name)
            if passed is not None:
                cell += f" <span class='badge {'pass' if passed else 'fail'}'>{'pass' if passed else 'fail'}</span>"
            error = result.metric_error(method.name, m.name)
            title = f" title='failed on some targets: {esc(error)}'" if error else ""
            out.append(f"<td{title}>{cell}</td>")
        if has_curves:
            png = _curves_png(result, method.name)
            image = f"<img class='curve' src='{_data_uri(png)}' alt='curves of {esc(method.name)}'>" if png else "n/a"
            out.append(f"<td>{image}</td>")
        out.append("</tr>")
    out.append("</table>")
    for m in result.metrics:
        verdicts = {method.name: result.metric_passed(method.name, m.name) for method in result.methods}
        if all(v is None for v in verdicts.values()):
            continue
        passing = [name for name, v in verdicts.items() if v is True]
        failing = [name for name, v in verdicts.items() if v is False]
        unknown = [name for name, v in verdicts.items() if v is None]
        words = [f"passes: {', '.join(passing)}" if passing else "no method passes",
                 f"fails: {', '.join(failing)}" if failing else "no method fails"]
        if unknown:
            words.append(f"no verdict: {', '.join(unknown)}")
        out.append(f"<p class='verdict'>Sanity check <b>{esc(m.name)}</b> ({esc(m.description)}): "
                   f"{esc('; '.join(words))}.</p>")
    return "\n".join(out)


def _image_html(image: np.ndarray, zoom: int) -> str:
    if zoom > 1:
        image = image.repeat(zoom, axis=0).repeat(zoom, axis=1)
    return f'<img src="{_data_uri(_png(image))}" width="{image.shape[1]}" height="{image.shape[0]}" alt="">'


def render_html(result: ComparisonResult, rows: list[tuple], is_image: bool) -> str:
    esc = html.escape
    zoom = HTML_ZOOM if is_image else 1
    colourbar = _data_uri(_colourbar_png())
    settings = [
        ("model", result.agent_name), ("model sha256", result.model_sha256 or "unknown (not a saved model)"),
        ("environment", result.env_id),
        ("observations", f"{len(result.observations)} of shape {tuple(result.observations.shape[1:])}; "
                         f"{result.observation_source}"),
        ("seed", str(result.seed)), ("targets", ", ".join(t.spec for t in result.targets)),
        ("colour scale", SCALE_LABEL), ("created", result.created),
        ("versions", ", ".join(f"{k} {v}" for k, v in result.versions.items())),
    ]
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<title>interpret-rl comparison: {esc(result.agent_name)}</title><style>{CSS}</style></head><body>",
           f"<h1>{esc(result.agent_name)} on {esc(result.env_id)}</h1><h2>Settings</h2><table class='kv'>"]
    out += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in settings]
    out.append("</table><h2>Methods</h2><table class='kv'><tr><th>method</th><th>kind</th><th>plugin</th>"
               "<th>options</th><th>seconds</th><th>outcome</th></tr>")
    for m in result.methods:
        errors = result.method_errors(m.name)
        outcome = (f"<span class='error'>{len(errors)} of {len(result.targets)} targets failed: "
                   f"{esc(errors[0])}</span>" if errors else "ok")
        options = ", ".join(f"{k}={v}" for k, v in m.options.items()) or "none"
        out.append(f"<tr><td>{esc(m.name)}</td><td>{esc(m.kind)}</td><td>{esc(m.plugin)}</td><td>{esc(options)}</td>"
                   f"<td>{result.method_seconds(m.name):.2f}</td><td>{outcome}</td></tr>")
    out.append("</table>")
    out.append(render_metrics_section(result))
    out.append("<h2>Explanations</h2><table class='grid'><tr><th>target / observation</th><th>observation</th>")
    out += [f"<th>{esc(m.name)}<br><small>{esc(m.description)}</small></th>" for m in result.methods]
    out.append("</tr>")
    for target, i, cells in rows:
        out.append(f"<tr><th class='row'>{esc(target.label)}<br><small>obs {i}</small>"
                   f"<figure class='bar'><img src='{colourbar}' alt='colour scale from -1 to 1'>"
                   f"<figcaption>{esc(ROW_SCALE_LABEL)}</figcaption></figure></th>")
        for rendered in cells:
            image = _image_html(rendered.image, zoom) if rendered.image is not None else ""
            klass = " class='error'" if rendered.error else ""
            out.append(f"<td><figure>{image}<figcaption{klass}>{esc(rendered.caption)}</figcaption></figure></td>")
        out.append("</tr>")
    out.append("</table><p>Also written: grid.png (the same grid as one image), results.json (per method and "
               "target: seconds, statistics and metrics), observations.npz (rerun with --observations).</p>"
               "</body></html>")
    return "\n".join(out)


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #ddd;padding:4px 6px;vertical-align:top}
table.kv th{text-align:left;background:#f6f6f6}table.grid{width:100%;table-layout:fixed}
table.grid th.row{text-align:right;width:9em}figure{margin:0}figcaption{font-size:12px}
img{image-rendering:pixelated;display:block;width:100%;height:auto}
figure.bar figcaption{font-weight:normal;font-size:10px}
.error{color:#b22222;font-family:monospace;white-space:pre-wrap}small{font-weight:normal;color:#555}
table.metrics td{text-align:right;white-space:nowrap}td.na{color:#888;cursor:help}.rank{color:#555;font-size:11px}
.badge{font-size:11px;padding:0 4px;border-radius:3px;color:white}.badge.pass{background:#2e7d32}
.badge.fail{background:#b22222}img.curve{width:234px;image-rendering:auto}"""


def _json_safe(value):
    """NaN and infinity -> None (JSON has neither), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_report(result: ComparisonResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write grid.png, report.html, results.json and observations.npz into ``out_dir`` (created if
    missing), each atomically. Returns ``{"grid": path, "html": path, "json": path, "observations": path}``."""
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    renderer = CellRenderer(result)
    rows = renderer.rows()
    paths = {"grid": out_dir / "grid.png", "html": out_dir / "report.html", "json": out_dir / "results.json",
             "observations": out_dir / "observations.npz"}
    atomic_write_bytes(paths["grid"], render_grid(result, rows))
    atomic_write_text(paths["html"], render_html(result, rows, renderer.is_image))
    atomic_write_text(paths["json"], json.dumps(_json_safe(result.to_dict()), indent=2, allow_nan=False))
    save_observations(paths["observations"], result.observations)
    return paths
