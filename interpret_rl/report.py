"""Write a ``ComparisonResult``: ``grid.png``, a self-contained ``report.html`` and ``results.json``.

Layout (grid and HTML alike): one row per (target, observation), one column for the observation
itself and one per method. A stack of frames ``(C, H, W)`` is shown as a strip of its C frames,
oldest left, so a per-frame attribution stays visible; a vector observation as a bar chart.

Colour scale: attributions of different methods come in different units (a gradient, a change of
the target score, ...), so one absolute scale would blank out some methods. Instead each map is
divided by its method's largest ``|attribution|`` on that observation (all frames together). A map
with no value below 0 (|gradient|, perturbation, Grad-CAM) is drawn on a sequential scale 0 … 1; a
signed map on a diverging scale -1 … 1 (half of which an absolute map would never use). That
maximum and the scale's kind are printed under each cell so the raw numbers stay recoverable
(results.json has the full statistics). Heat maps are drawn over the grey frame with an opacity
that grows with ``|attribution|``; a method that gives one map for the whole stack (Grad-CAM) says so.
Cells show each frame at twice its size (a 2-pixel ball is 4 screen pixels); a click enlarges one.
A synthesis (optim) is shown as the optimised observation in the target's first row, with the
indices of the real observations that excite the target most (``dataset_examples``).

``write_checkpoint_report`` writes a ``CheckpointComparison`` (the same observations explained at
several training checkpoints): ``checkpoints.png``, one strip per method and target with a column
per checkpoint, plus the usual files for the newest of them with a section on the strips added.
"""

from __future__ import annotations

import html
import io
import json
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from interpret_rl.atomic import atomic_write_bytes, atomic_write_text, check_output_dir
from interpret_rl.compare import ComparisonResult
from interpret_rl.html_page import data_uri, image_html, json_safe, page
from interpret_rl.observations import save_observations
from interpret_rl.report_metrics import CSS as METRICS_CSS
from interpret_rl.report_metrics import render_metrics_section
from interpret_rl.report_objects import render_ground_truth_section
from interpret_rl.report_synthesis import CSS as SYNTHESIS_CSS
from interpret_rl.report_synthesis import honest_lines, render_synthesis_section

CMAP = colormaps["RdBu_r"]  # signed maps: −max … max, white at 0
# absolute maps (no value below 0): 0 … max. Not one that starts at black (inferno, magma): Atari
# backgrounds are black, and weak attribution would vanish into them; opacity grows with the value.
SEQUENTIAL_CMAP = colormaps["YlOrRd_r"]
GAP = 3  # white pixels between the frames of a strip
HTML_ZOOM = 2  # frames are 84 pixels: drawn twice that (a 2-px ball is 4 screen pixels); click enlarges
SCALE_LABEL = ("attribution ÷ max |attribution| of its method on this observation; absolute maps (no value "
               "below 0) on a sequential scale 0 … 1 (dark red to pale yellow), signed maps on a diverging scale "
               "−1 … 1 (blue, white, red)")
FEATURE_NAMES = {"CartPole-v1": ["cart position", "cart velocity", "pole angle", "pole ang. velocity"]}


@dataclass
class RenderedCell:
    """What one grid position shows: an RGB image (uint8 ``(H, W, 3)``) or only text."""

    image: np.ndarray | None
    caption: str
    error: bool = False


def _display_range(space: dict, observations: np.ndarray) -> tuple[float, float]:
    """Grey-level range: the space's uniform bounds (0..255 for Atari), else the data's range."""
    low, high = space.get("low") or [None], space.get("high") or [None]
    if len(low) == 1 and len(high) == 1 and low[0] is not None and high[0] is not None and high[0] > low[0]:
        return float(low[0]), float(high[0])
    lo, hi = float(observations.min()), float(observations.max())
    return lo, (hi if hi > lo else lo + 1.0)


def split_frames(x: np.ndarray) -> list[np.ndarray]:
    """An image observation ``(C, H, W)`` or ``(H, W)`` -> its 2-D frames."""
    return list(x) if x.ndim == 3 else [x]


def side_by_side(frames_rgb: list[np.ndarray]) -> np.ndarray:
    """Frames ``(H, W, 3)`` float 0..1 side by side with white gaps -> uint8 ``(H, W_total, 3)``."""
    height = frames_rgb[0].shape[0]
    gap = np.ones((height, GAP, 3))
    parts = [p for frame in frames_rgb for p in (frame, gap)][:-1]
    return (np.concatenate(parts, axis=1) * 255).round().astype(np.uint8)


def grey_rgb(frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    grey = np.clip((frame - lo) / (hi - lo), 0, 1)
    return np.repeat(grey[..., None], 3, axis=2)


def heat_colours(heat: np.ndarray, signed: bool) -> np.ndarray:
    """RGBA of ``heat`` in [-1, 1] on the diverging scale when ``signed``, else of [0, 1] on the
    sequential one (half of a diverging scale would never be used by an absolute map)."""
    return CMAP((np.clip(heat, -1, 1) + 1) / 2) if signed else SEQUENTIAL_CMAP(np.clip(heat, 0, 1))


def overlay_heat(grey: np.ndarray, heat: np.ndarray, signed: bool | None = None) -> np.ndarray:
    """Heat over a grey frame (``signed`` None: signed when any value is below 0); opacity grows with
    |heat| so weak attribution shows the frame."""
    colour = heat_colours(heat, bool((heat < 0).any()) if signed is None else signed)[..., :3]
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
            return side_by_side([grey_rgb(f, self.lo, self.hi) for f in split_frames(x)])
        return _bars(x.reshape(-1), self.names, "0.5", None)

    def attribution(self, x: np.ndarray, values: np.ndarray, scale: float) -> np.ndarray:
        """``values`` shaped like ``x``, shown divided by ``scale`` (see the module docstring); on the
        sequential scale when no value is below 0, else the diverging one (all frames alike)."""
        heat, signed = values / scale, bool((values < 0).any())
        if self.is_image:
            return side_by_side([overlay_heat(grey_rgb(f, self.lo, self.hi), h, signed)
                                 for f, h in zip(split_frames(x), split_frames(heat))])
        flat = heat.reshape(-1)
        return _bars(flat, self.names, heat_colours(flat, signed), (-1.05 if signed else -0.05, 1.05))

    def rows(self) -> list[tuple]:
        """``(target, observation index, [RenderedCell per column])`` for every grid row."""
        result, rows = self.result, []
        shown = [self.observation(x) for x in self.observations]
        for target in result.targets:
            for i, x in enumerate(self.observations):
                policy = result.policy[i]
                first = RenderedCell(shown[i], f"obs {i}: policy {policy['action']} "
                                               f"({policy['strength']}), value {policy['value']:.3g}")
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
            kind = "signed, −max … max" if (values[i] < 0).any() else "absolute, 0 … max"
            same = " · same map for all frames" if explanation.extras.get("same_map_for_all_frames") else ""
            return RenderedCell(self.attribution(x, values[i], scale if scale > 0 else 1.0),
                                f"{kind}: max |attribution| {scale:.3g}{same} · {cell.seconds:.2f} s")
        return self.synthesis_cell(cell, values, i)

    def synthesis_cell(self, cell, values: np.ndarray, i: int) -> RenderedCell:
        """Synthetic image ``i`` with its honest numbers (report_synthesis.honest_lines); rows past the
        last image point to the section that shows the dataset examples."""
        extras = cell.explanation.extras
        if i < len(values):
            text = "; ".join(line for line, _ in honest_lines(extras, i)) or "optimised input"
            flagged = any(warn for _, warn in honest_lines(extras, i))
            return RenderedCell(self.observation(values[i]), f"optimised input {i}: {text}", error=flagged)
        examples = extras.get("dataset_examples", [])
        return RenderedCell(None, f"the {len(examples)} real states exciting this target most are shown in "
                                  f"'Synthetic images' below the grid" if examples else "no dataset examples")


def strip_legend(env_id: str) -> str:
    """What left to right means in a strip: MinAtar's channels are object layers (named by the game),
    not a stack of frames as in Atari."""
    from interpret_rl.envs import channel_names

    channels = channel_names(env_id)
    if channels:
        return (f"The observation's channels are object layers, not frames; left to right: {', '.join(channels)}. "
                "Each method that can tell them apart draws a map per channel")
    return ("Frames of a stack run oldest to newest, left to right; each method that can tell the frames apart "
            "draws a map per frame")


def _colourbar_png(signed: bool = True) -> bytes:
    fig = Figure(figsize=(3.6, 0.55), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0.05, 0.55, 0.9, 0.3])
    scale = ScalarMappable(Normalize(-1, 1), CMAP) if signed else ScalarMappable(Normalize(0, 1), SEQUENTIAL_CMAP)
    fig.colorbar(scale, cax=ax, orientation="horizontal")
    ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def render_grid(result: ComparisonResult, rows: list[tuple]) -> bytes:
    """The PNG grid: rows = targets x observations, columns = observation then each method, and per
    row the two colour bars (absolute maps sequential, signed maps diverging)."""
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
        bars = grid[r, -1].subgridspec(2, 1, hspace=0.35)
        for k, (scale, title) in enumerate(((ScalarMappable(Normalize(0, 1), SEQUENTIAL_CMAP), "absolute"),
                                             (ScalarMappable(Normalize(-1, 1), CMAP), "signed"))):
            bar = fig.colorbar(scale, cax=fig.add_subplot(bars[k]))
            bar.ax.tick_params(labelsize=5)
            bar.ax.set_title(title, fontsize=5)
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def comparison_sections(result: ComparisonResult, rows: list[tuple], is_image: bool) -> list[str]:
    """The sections of a comparison's page, in order: settings, methods, metrics, ground truth, the
    explanation grid (``rows`` from ``CellRenderer.rows``) and the synthesised inputs."""
    esc = html.escape
    settings = [
        ("model", result.agent_name), ("model sha256", result.model_sha256 or "unknown (not a saved model)"),
        ("environment", result.env_id),
        ("observations", f"{len(result.observations)} of shape {tuple(result.observations.shape[1:])}; "
                         f"{result.observation_source}"),
        ("seed", str(result.seed)), ("targets", ", ".join(t.spec for t in result.targets)),
        ("colour scale", SCALE_LABEL), ("created", result.created),
        ("versions", ", ".join(f"{k} {v}" for k, v in result.versions.items())),
    ]
    heading = [f"<h1>{esc(result.agent_name)} on {esc(result.env_id)}</h1><h2>Settings</h2><table class='kv'>"]
    heading += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in settings]
    methods = ["</table><h2>Methods</h2><table class='kv'><tr><th>method</th><th>kind</th><th>plugin</th>"
               "<th>options</th><th>seconds</th><th>outcome</th></tr>"]
    for m in result.methods:
        errors = result.method_errors(m.name)
        outcome = (f"<span class='error'>{len(errors)} of {len(result.targets)} targets failed: "
                   f"{esc(errors[0])}</span>" if errors else "ok")
        options = ", ".join(f"{k}={v}" for k, v in m.options.items()) or "none"
        methods.append(f"<tr><td>{esc(m.name)}</td><td>{esc(m.kind)}</td><td>{esc(m.plugin)}</td>"
                       f"<td>{esc(options)}</td><td>{result.method_seconds(m.name):.2f}</td><td>{outcome}</td></tr>")
    methods.append("</table>")
    return ["\n".join(heading), "\n".join(methods), render_metrics_section(result), render_ground_truth_section(result),
            _explanations_section(result, rows, is_image) + render_synthesis_section(result, CellRenderer(result))]


def _explanations_section(result: ComparisonResult, rows: list[tuple], is_image: bool) -> str:
    """The colour scales and the grid of maps (the HTML twin of grid.png)."""
    esc = html.escape
    zoom = HTML_ZOOM if is_image else 1
    bars = {signed: data_uri(_colourbar_png(signed)) for signed in (False, True)}
    out = ["<h2>Explanations</h2><div class='legend'>"
           f"<figure class='bar'><img src='{bars[False]}' alt='sequential colour scale from 0 to 1'>"
           "<figcaption>absolute maps (no value below 0): 0 … 1</figcaption></figure>"
           f"<figure class='bar'><img src='{bars[True]}' alt='diverging colour scale from -1 to 1'>"
           "<figcaption>signed maps: −1 … 1</figcaption></figure>"
           f"<p>{esc(SCALE_LABEL)}. {esc(strip_legend(result.env_id))}. "
           "Click a picture to enlarge it, click again "
           "to close it.</p></div>",
           "<div class='scroll'><table class='grid'><tr><th>target / observation</th><th>observation</th>"]
    out += [f"<th>{esc(m.name)}<br><small>{esc(m.description)}</small></th>" for m in result.methods]
    out.append("</tr>")
    for target, i, cells in rows:
        out.append(f"<tr><th class='row'>{esc(target.label)}<br><small>obs {i}</small></th>")
        for rendered in cells:
            image = image_html(rendered.image, zoom, enlarge=is_image) if rendered.image is not None else ""
            klass = " class='error'" if rendered.error else ""
            out.append(f"<td><figure>{image}<figcaption{klass}>{esc(rendered.caption)}</figcaption></figure></td>")
        out.append("</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def render_html(result: ComparisonResult, rows: list[tuple], is_image: bool, more: Sequence[str] = ()) -> str:
    """report.html: the comparison's sections, then ``more`` (e.g. the strips across training), then
    what else was written."""
    written = ("<p>Also written: grid.png (the same grid as one image), results.json (per method and "
               "target: seconds, statistics and metrics), observations.npz (rerun with --observations).</p>")
    return page(f"interpret-rl comparison: {result.agent_name}",
                [*comparison_sections(result, rows, is_image), *more, written], CSS)


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #ddd;padding:4px 6px;vertical-align:top}
table.kv th{text-align:left;background:#f6f6f6}div.scroll{overflow-x:auto}
table.grid th.row{text-align:right;min-width:6em}figure{margin:0}figcaption{font-size:12px;max-width:700px}
img{image-rendering:pixelated;display:block;max-width:100%;height:auto}table.grid img{max-width:none}
img.zoomable{cursor:zoom-in}img.enlarged{position:fixed;left:1vw;top:2vh;width:98vw;height:auto;z-index:10;
cursor:zoom-out;box-shadow:0 0 0 100vmax rgba(0,0,0,.6)}
div.legend{display:flex;gap:2em;align-items:flex-start}div.legend p{max-width:60em;font-size:13px;margin:0}
figure.bar img{width:260px}figure.bar figcaption{font-weight:normal;font-size:10px}
.error{color:#b22222;font-family:monospace;white-space:pre-wrap}small{font-weight:normal;color:#555}
table.metrics td{text-align:right;white-space:nowrap}td.na{color:#888;cursor:help}.rank{color:#555;font-size:11px}
.badge{font-size:11px;padding:0 4px;border-radius:3px;color:white}.badge.pass{background:#2e7d32}
.badge.fail{background:#b22222}img.curve{width:234px;image-rendering:auto}
""" + SYNTHESIS_CSS + METRICS_CSS


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
    atomic_write_text(paths["json"], json.dumps(json_safe(result.to_dict()), indent=2, allow_nan=False))
    save_observations(paths["observations"], result.observations, result.ground_truth)  # objects from RAM too
    return paths
