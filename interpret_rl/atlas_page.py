"""The atlas as one self-contained HTML page: a card per unit, every image inlined as a PNG.

Frames are shown as the agent sees them (84x84 grey, 0..255), enlarged by the browser without
smoothing. A stack of frames is drawn as one picture: the newest frame in grey, pixels that were
brighter in the three older frames tinted blue, so motion (the ball's trail) stays visible.
"""

from __future__ import annotations

import html

import numpy as np

from interpret_rl.atlas import Atlas, AtlasUnit
from interpret_rl.html_page import data_uri, page, png_bytes

ZOOM = 2
RED = np.array([230, 30, 30], dtype=np.uint8)


def motion_rgb(obs: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` 0..255 frames (newest last) -> ``(H, W, 3)`` uint8: newest grey, older trail blue."""
    newest = np.clip(obs[-1] / 255.0, 0, 1)
    trail = np.clip(obs[:-1].max(0) / 255.0 - newest, 0, 1) if len(obs) > 1 else np.zeros_like(newest)
    rgb = np.stack([newest * (1 - 0.6 * trail), newest * (1 - 0.3 * trail), np.clip(newest + trail, 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def frame_strip(images: np.ndarray) -> np.ndarray:
    """``(K, C, H, W)`` -> one grey picture: each image's C frames left to right (oldest first), K rows."""
    rows = []
    for image in images:
        frames = [np.clip(f, 0, 255).round().astype(np.uint8) for f in image]
        gap = np.full((frames[0].shape[0], 2), 255, np.uint8)
        rows.append(np.concatenate([p for f in frames for p in (f, gap)][:-1], 1))
        rows.append(np.full((2, rows[-1].shape[1]), 255, np.uint8))
    return np.concatenate(rows[:-1], 0)


def crop_grid(atlas: Atlas, unit: AtlasUnit, columns: int = 3) -> np.ndarray:
    """The top states' receptive-field crops (plus ``CONTEXT``), the field outlined in red, in a grid."""
    from interpret_rl.atlas import CONTEXT

    size, jump, offset = atlas.field
    side = size + 2 * CONTEXT
    crops = []
    for state, y, x, _ in unit.top:
        frame = motion_rgb(atlas.states[state])
        height, width = frame.shape[:2]
        canvas = np.full((side, side, 3), 128, np.uint8)  # grey where the window leaves the frame
        top, left = offset + y * jump - CONTEXT, offset + x * jump - CONTEXT
        ys, xs = slice(max(top, 0), min(top + side, height)), slice(max(left, 0), min(left + side, width))
        canvas[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left] = frame[ys, xs]
        lo, hi = CONTEXT - 1, CONTEXT + size
        canvas[[lo, hi], lo:hi + 1] = RED
        canvas[lo:hi + 1, [lo, hi]] = RED
        crops.append(canvas)
    while len(crops) % columns:
        crops.append(np.full((side, side, 3), 255, np.uint8))
    gap = 3
    rows = []
    for r in range(0, len(crops), columns):
        parts = [p for c in crops[r:r + columns] for p in (c, np.full((side, gap, 3), 255, np.uint8))][:-1]
        rows += [np.concatenate(parts, 1), np.full((gap, (side + gap) * columns - gap, 3), 255, np.uint8)]
    return np.concatenate(rows[:-1], 0)


def heat_over_frame(atlas: Atlas, unit: AtlasUnit, background: np.ndarray) -> np.ndarray:
    """The unit's mean activation per position, placed at its receptive fields' centres and
    interpolated over the frame, drawn over the pool's mean newest frame (``background``, 0..1)."""
    from matplotlib import colormaps

    size, jump, offset = atlas.field
    height, width = background.shape
    centres_y = offset + np.arange(unit.heat.shape[0]) * jump + (size - 1) / 2
    centres_x = offset + np.arange(unit.heat.shape[1]) * jump + (size - 1) / 2
    rows = np.stack([np.interp(np.arange(width), centres_x, row) for row in unit.heat])
    heat = np.stack([np.interp(np.arange(height), centres_y, col) for col in rows.T], 1)
    peak = heat.max()
    level = heat / peak if peak > 0 else heat
    colour = colormaps["inferno"](level)[..., :3]
    alpha = 0.75 * level[..., None]
    rgb = background[..., None] * (1 - alpha) + colour * alpha
    return (rgb * 255).round().astype(np.uint8)


def _img(image: np.ndarray, alt: str, zoom: int = ZOOM) -> str:
    height, width = image.shape[:2]
    return (f'<img src="{data_uri(png_bytes(image))}" alt="{html.escape(alt)}" width="{width * zoom}" '
            f'height="{height * zoom}">')


def _feeds(unit: AtlasUnit, scale: float) -> str:
    rows = []
    for name, value in unit.feeds.items():
        width = 60 * abs(value) / scale if scale > 0 else 0
        colour = "#c0392b" if value > 0 else "#2c6fbb"
        rows.append(f'<tr><td>{html.escape(name)}</td><td class="bar"><span style="width:{width:.1f}px;'
                    f'background:{colour}"></span></td><td>{value:+.3g}</td></tr>')
    return "<table class=feeds>" + "".join(rows) + "</table>"


def _card(atlas: Atlas, unit: AtlasUnit, background: np.ndarray, feed_scale: float) -> str:
    tops = ", ".join(f"{a:.2f}" for *_, a in unit.top)
    reached = ", ".join(f"{a:.3g}" for a in unit.activation)
    best_real = unit.top[0][3] if unit.top else float("nan")
    return f"""<section class=card><h2>{html.escape(unit.name)}</h2>
<p class=meta>above 0 at {100 * unit.firing:.1f}% of positions; optimised image(s) reach {reached}
(the best real state: {best_real:.3g})</p>
<div class=label>optimised input: the {unit.images.shape[1]} stacked frames, oldest left</div>
{_img(frame_strip(unit.images), "optimised", 1)}
<div class=row><div><div class=label>top {len(unit.top)} real states (receptive field in red)</div>
{_img(crop_grid(atlas, unit), "top real states")}<div class=small>peak activation: {tops}</div></div>
<div><div class=label>where it fires on average</div>{_img(heat_over_frame(atlas, unit, background), "mean activation")}
<div class=label>what it feeds (gradient x activation)</div>{_feeds(unit, feed_scale)}</div></div></section>"""


STYLE = """body{font-family:sans-serif;margin:16px;color:#222}img{image-rendering:pixelated;display:block}
.cards{display:flex;flex-wrap:wrap;gap:14px}.card{border:1px solid #ccc;border-radius:6px;padding:8px;width:560px}
.card h2{font-size:15px;margin:0 0 4px}.meta,.small{font-size:11px;color:#555;margin:2px 0}
.label{font-size:11px;font-weight:bold;margin:6px 0 2px}.row{display:flex;gap:12px}
table.feeds{font-size:11px;border-collapse:collapse}td.bar{width:64px}td.bar span{display:inline-block;height:9px}"""


def render_atlas_html(atlas: Atlas) -> str:
    """The whole page (see the module docstring)."""
    background = np.clip(atlas.states[:, -1].mean(0) / 255.0, 0, 1)
    feed_scale = max((abs(v) for u in atlas.units for v in u.feeds.values()), default=1.0)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in atlas.seconds.items())
    size, jump, offset = atlas.field
    cards = "\n".join(_card(atlas, unit, background, feed_scale) for unit in atlas.units)
    text = f"""<h1>{html.escape(atlas.model)}: atlas of {html.escape(atlas.layer)} ({len(atlas.units)} units)</h1>
<p>{len(atlas.states)} real states of the agent's own play. Receptive field of a unit: {size}x{size} pixels,
one every {jump} pixels. Crops and the heat map: newest frame in grey, pixels brighter in the three older
frames in blue (motion). "What it feeds": each output's gradient times the unit's activation, summed over
positions and averaged over the states (bars on one scale for the whole page). {html.escape(timing)};
{html.escape("; ".join(atlas.notes))}.</p>"""
    return page(f"atlas of {atlas.layer}", [text, f"<div class=cards>{cards}</div>"], STYLE)
