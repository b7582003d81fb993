"""Explanations across training (``interpret-rl compare --checkpoints``).

The same observations (collected once with the final model) and the same targets, explained at
every chosen training snapshot of one model, so a strip per method shows how what the agent looks
at changes while it learns. ``compare_checkpoints`` computes; ``write_checkpoint_report`` draws
``checkpoints.png`` and the report section.
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
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from interpret_rl.agent import Agent
from interpret_rl.atomic import atomic_write_bytes, atomic_write_text, check_output_dir
from interpret_rl.compare import ComparisonResult, MethodInfo, compare, prepare_methods, prepare_targets
from interpret_rl.html_page import image_html, json_safe
from interpret_rl.observations import check_observations, collect_observations, save_observations
from interpret_rl.report import (
    HTML_ZOOM,
    CellRenderer,
    RenderedCell,
    grey_rgb,
    overlay_heat,
    render_grid,
    render_html,
    side_by_side,
    split_frames,
)
from interpret_rl.targets import Target, chosen_actions, parse_target


class CheckpointError(ValueError):
    """A model without weight snapshots, or a checkpoint step it does not have."""


@dataclass
class CheckpointComparison:
    """The same observations and targets explained at several training checkpoints of one model.

    :ivar steps: training steps of the compared checkpoints, oldest first.
    :ivar results: one ``ComparisonResult`` per checkpoint, in the order of ``steps``; each names the
        checkpoint (``agent_name`` "NAME at step N") and its weight file's sha256.
    :ivar observations: ``(B, *obs_shape)``, collected once with the final model (or given).
    """

    model: str
    env_id: str
    steps: list[int]
    files: list[str]
    results: list[ComparisonResult]
    observations: torch.Tensor
    observation_source: str
    targets: list[Target]
    seed: int

    @property
    def methods(self) -> list[MethodInfo]:
        return self.results[0].methods

    def to_dict(self) -> dict:
        """JSON-able: per checkpoint its step, file, sha256, policy and per method and target the cell."""
        return {
            "model": self.model, "env_id": self.env_id, "seed": self.seed, "steps": self.steps,
            "observations": {"count": len(self.observations), "source": self.observation_source},
            "targets": [{"spec": t.spec, "label": t.label, "kind": t.kind} for t in self.targets],
            "checkpoints": [
                {"step": step, "file": f"checkpoints/{file}", "sha256": result.model_sha256, "policy": result.policy,
                 "results": result.to_dict()["results"]}
                for step, file, result in zip(self.steps, self.files, self.results)],
        }


def select_checkpoints(name: str, checkpoints: str | Sequence[int] = "all") -> list[tuple[int, str]]:
    """``(step, file name)`` of the chosen weight snapshots of model ``name``, oldest first.

    :param checkpoints: ``"all"``, steps as ``"400,1200"`` or a list of ints.
    ``CheckpointError`` when the model keeps no snapshots or lacks a step (the message lists them).
    """
    from interpret_rl import registry

    available = registry.snapshots(name)
    if not available:
        raise CheckpointError(f"model {name!r} keeps no weight snapshots; train one that does with "
                              f"`interpret-rl train --keep-checkpoints`")
    if isinstance(checkpoints, str) and checkpoints.strip().lower() == "all":
        return available
    if isinstance(checkpoints, str):
        texts = [t.strip() for t in checkpoints.split(",") if t.strip()]
        bad = [t for t in texts if not t.isdigit()]
        if bad or not texts:
            raise CheckpointError(f"checkpoints must be 'all' or steps like 400,1200, got {checkpoints!r}")
        checkpoints = [int(t) for t in texts]
    by_step = dict(available)
    missing = [step for step in checkpoints if step not in by_step]
    if missing:
        raise CheckpointError(f"model {name!r} has no snapshot at step {', '.join(map(str, missing))}; "
                              f"it has: {', '.join(str(s) for s, _ in available)}")
    return [(step, by_step[step]) for step in sorted(set(checkpoints))]


def _pinned_targets(final, targets: list[Target], observations: torch.Tensor) -> list[Target]:
    """``action`` (each model's own most likely action) becomes the final model's choice when it is
    the same on every observation, so every checkpoint explains the same logit."""
    if not any(t.kind == "chosen-action" for t in targets):
        return targets
    actions = chosen_actions(final, observations.to(final.device)).unique()
    if len(actions) != 1:
        return targets  # no one action to pin; each checkpoint explains its own choice
    pinned = parse_target(f"action:{final.action_meanings[int(actions[0])]}", final)
    return prepare_targets(final, [pinned if t.kind == "chosen-action" else t for t in targets])


@dataclass
class CheckpointRequest:
    """A checked ``compare --checkpoints`` request: every name, step, target and option valid,
    nothing computed yet. ``observations`` is None when they are to be collected."""

    model_dir: Path
    final: Agent
    chosen: list[tuple[int, str]]
    methods: list[str]
    targets: list[Target]
    observations: torch.Tensor | None
    frames: int
    seed: int
    options: dict[str, dict[str, Any]] | None
    device: str


def check_checkpoint_request(name: str, methods: Sequence[str], targets: Sequence[str | Target] | None = None,
                             observations: torch.Tensor | None = None, frames: int = 1, seed: int = 0,
                             options: dict[str, dict[str, Any]] | None = None,
                             checkpoints: str | Sequence[int] = "all", device: str = "cpu") -> CheckpointRequest:
    """Raise on an unknown model, method, target or step, a bad option or observation shape, before
    any work; arguments as for ``compare_checkpoints``."""
    from interpret_rl import registry

    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    chosen = select_checkpoints(name, checkpoints)
    prepare_methods(methods, options)  # fail on a bad method or option before loading anything
    final = registry.load_agent(name, device=device)
    parsed = prepare_targets(final, targets)
    if observations is not None:
        observations = check_observations(observations, final.observation_shape)
    return CheckpointRequest(model_dir=registry.resolve(name), final=final, chosen=chosen, methods=list(methods),
                             targets=parsed, observations=observations, frames=frames, seed=seed, options=options,
                             device=device)


def run_checkpoint_comparison(request: CheckpointRequest) -> CheckpointComparison:
    """Explain the request's observations (collected now with the final model when it has none) at
    each chosen checkpoint."""
    from interpret_rl import registry

    final, seed = request.final, request.seed
    if request.observations is None:
        observations = collect_observations(final, request.frames, seed=seed)
        source = (f"collected once with the final model ({final.steps_trained:,} steps): {request.frames} "
                  f"observations playing {final.env_id} with the stochastic policy, seed {seed}")
    else:
        observations, source = request.observations, "given by the caller"
    targets = _pinned_targets(final, request.targets, observations)
    results = []
    for step, file in request.chosen:
        # the snapshots share the final model's meta.json, whose spaces were checked when it loaded
        agent = registry.load_agent(request.model_dir, device=request.device, snapshot=file, check_env=False)
        result = compare(agent, request.methods, targets=targets, observations=observations, seed=seed,
                         options=request.options)
        result.agent_name = f"{final.name} at step {step:,}"
        result.model_sha256 = agent.meta["files"].get(f"checkpoints/{file}")  # the snapshot's, not the final weights'
        result.observation_source = source
        results.append(result)
    return CheckpointComparison(model=final.name, env_id=final.env_id, steps=[s for s, _ in request.chosen],
                                files=[f for _, f in request.chosen], results=results, observations=observations.cpu(),
                                observation_source=source, targets=targets, seed=seed)


def compare_checkpoints(name: str, methods: Sequence[str], targets: Sequence[str | Target] | None = None,
                        observations: torch.Tensor | None = None, frames: int = 1, seed: int = 0,
                        options: dict[str, dict[str, Any]] | None = None, checkpoints: str | Sequence[int] = "all",
                        device: str = "cpu") -> CheckpointComparison:
    """Explain the same observations and targets with every method at each kept checkpoint of ``name``.

    The observations are collected once, by the final model (``frames`` of them, seeded), so every
    checkpoint is judged on states a trained agent reaches. A target ``action`` is pinned to the
    final model's most likely action when that is one action on every observation (always so with
    one frame). Arguments as for ``compare``; ``checkpoints`` as for ``select_checkpoints``.
    Unknown models, methods, targets, steps and bad options raise before any work.
    """
    return run_checkpoint_comparison(check_checkpoint_request(
        name, methods, targets=targets, observations=observations, frames=frames, seed=seed, options=options,
        checkpoints=checkpoints, device=device))


class StripCellRenderer(CellRenderer):
    """Cells of the across-training strip. An image observation shows only its newest frame, with
    the map summed over the stacked frames and divided by its own largest ``|value|``: one square
    picture per cell keeps a strip of many checkpoints readable. Vectors are drawn as in the grid."""

    def observation(self, x: np.ndarray) -> np.ndarray:
        if self.is_image:
            return side_by_side([grey_rgb(split_frames(x)[-1], self.lo, self.hi)])
        return super().observation(x)

    def attribution(self, x: np.ndarray, values: np.ndarray, scale: float) -> np.ndarray:
        if not self.is_image:
            return super().attribution(x, values, scale)
        summed = sum(split_frames(values))
        peak = float(np.abs(summed).max())
        newest = grey_rgb(split_frames(x)[-1], self.lo, self.hi)
        return side_by_side([overlay_heat(newest, summed / (peak if peak > 0 else 1.0))])


def checkpoint_rows(comparison: CheckpointComparison) -> list[tuple[str, object, int, list[RenderedCell]]]:
    """``(method, target, observation index, cells)`` per strip row (method x target x observation);
    cells: the observation, then one per checkpoint, oldest first, captioned with its policy."""
    renderers = [StripCellRenderer(result) for result in comparison.results]
    observations = renderers[0].observations
    shown = [renderers[0].observation(x) for x in observations]
    rows = []
    for method in comparison.methods:
        for target in comparison.targets:
            for i, x in enumerate(observations):
                cells = [RenderedCell(shown[i], f"obs {i}")]
                for renderer, result in zip(renderers, comparison.results):
                    cell = renderer.method_cell(method.name, target.spec, i, x)
                    policy = result.policy[i]
                    cell.caption += (f"; policy {policy['action']} ({policy['strength']}), "
                                     f"value {policy['value']:.3g}")
                    cells.append(cell)
                rows.append((method.name, target, i, cells))
    return rows


def render_checkpoint_strip(comparison: CheckpointComparison, rows: list[tuple]) -> bytes:
    """checkpoints.png: rows = method x target (x observation), columns = the observation, then
    each checkpoint by training step."""
    columns = ["observation"] + [f"step {step:,}" for step in comparison.steps]
    sample = next((c.image for *_, cells in rows for c in cells if c.image is not None), np.zeros((1, 1, 3)))
    cell_w = 2.2 if sample.shape[0] == sample.shape[1] else 3.2
    image_h, caption_h = cell_w * sample.shape[0] / sample.shape[1], 0.6  # inches; captions have three lines
    fig = Figure(figsize=(1.9 + cell_w * len(columns), 0.7 + (image_h + caption_h) * len(rows)), dpi=100)
    canvas = FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(rows), len(columns), left=1.9 / fig.get_figwidth(), right=0.99,
                            top=1 - 0.7 / fig.get_figheight(), bottom=caption_h / fig.get_figheight(),
                            hspace=caption_h / image_h, wspace=0.08)
    fig.suptitle(f"{comparison.model} on {comparison.env_id} across training, seed {comparison.seed}; "
                 f"each map ÷ its own max |attribution|", fontsize=10, y=1 - 0.12 / fig.get_figheight(), va="top")
    for r, (method, target, i, cells) in enumerate(rows):
        for c, rendered in enumerate(cells):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([]), ax.set_yticks([])
            colour = "firebrick" if rendered.error else "black"
            text = "\n".join(textwrap.wrap(rendered.caption, 42)[:3])
            if rendered.image is not None:
                ax.imshow(rendered.image, interpolation="nearest")
                ax.set_xlabel(text, fontsize=6, color=colour)
            else:
                ax.axis("off")
                ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=6.5, color=colour, transform=ax.transAxes)
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(f"{method}\n{target.label}\nobs {i}", fontsize=8, rotation=0, ha="right", va="center")
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def render_checkpoint_section(comparison: CheckpointComparison, rows: list[tuple], is_image: bool) -> str:
    """The "Explanations across training" section of report.html (same rows as checkpoints.png)."""
    esc = html.escape
    zoom = HTML_ZOOM if is_image else 1
    out = ["<h2>Explanations across training</h2>",
           f"<p>The same observations ({esc(comparison.observation_source)}) and targets explained at each kept "
           f"checkpoint of {esc(comparison.model)}. Each map is divided by its own largest |attribution|"
           f"{' (the newest frame, map summed over the stacked frames)' if is_image else ''}; "
           f"also written as checkpoints.png.</p>",
           "<table class='grid'><tr><th>method / target</th><th>observation</th>"]
    out += [f"<th>step {step:,}</th>" for step in comparison.steps]
    out.append("</tr>")
    for method, target, i, cells in rows:
        out.append(f"<tr><th class='row'>{esc(method)}<br>{esc(target.label)}<br><small>obs {i}</small></th>")
        for rendered in cells:
            image = image_html(rendered.image, zoom) if rendered.image is not None else ""
            klass = " class='error'" if rendered.error else ""
            out.append(f"<td><figure>{image}<figcaption{klass}>{esc(rendered.caption)}</figcaption></figure></td>")
        out.append("</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_checkpoint_report(comparison: CheckpointComparison, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write checkpoints.png, and for the newest compared checkpoint the usual grid.png, report.html
    (with an "Explanations across training" section added), results.json (with a ``checkpoints``
    entry: per checkpoint its step, sha256, policy and cells) and observations.npz."""
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    newest = comparison.results[-1]
    renderer = CellRenderer(newest)
    rows, strip = renderer.rows(), checkpoint_rows(comparison)
    paths = {"checkpoints": out_dir / "checkpoints.png", "grid": out_dir / "grid.png",
             "html": out_dir / "report.html", "json": out_dir / "results.json",
             "observations": out_dir / "observations.npz"}
    atomic_write_bytes(paths["checkpoints"], render_checkpoint_strip(comparison, strip))
    atomic_write_bytes(paths["grid"], render_grid(newest, rows))
    section = render_checkpoint_section(comparison, strip, renderer.is_image)
    atomic_write_text(paths["html"], render_html(newest, rows, renderer.is_image, more=[section]))
    data = {**newest.to_dict(), "checkpoints": comparison.to_dict()}
    atomic_write_text(paths["json"], json.dumps(json_safe(data), indent=2, allow_nan=False))
    save_observations(paths["observations"], comparison.observations)
    return paths
