"""Explanation videos: an episode played by the agent, each method's maps overlaid, side by side.

At every step the agent's observation is explained twice by every method: once for the actor
target (default ``action``: the policy's most likely action) and once for the critic target
(``value``). As in Greydanus et al. 2018 the two maps are drawn in different colour channels of
the same picture: actor in blue, critic in red (where both are strong the pixel turns magenta).
One panel per method, labelled, side by side; a header names the step, the action the agent
took and the value.

* Image observations (Atari, ``(C, H, W)`` stacked frames, newest last): the newest frame in grey,
  upscaled, with ``|map|`` summed over the stacked frames added to the blue / red channel. The
  stack covers only the last few emulator frames, so a map over all of them still points at the
  right place in the newest one.
* Vector observations (CartPole): the environment's own rendering, with a bar chart of the two
  maps (``|map|`` per feature, blue and red bars side by side) beneath.

Every map is divided by its own largest ``|value|`` (methods and targets come in different
units, so a shared scale would blank some out); the maxima are printed in each panel. Intensity is
the square root of the normalised map, so weaker but real attribution stays visible.

The agent plays its stochastic policy, seeded; when an episode ends the next one starts, so a
video always has exactly ``steps`` frames, written by ``video_file.video_writer``: whole, or not at
all when the run fails.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from interpret_rl.compare import prepare_methods
from interpret_rl.envs import make_vector_env
from interpret_rl.errors import error_text
from interpret_rl.evaluate import observation_frame
from interpret_rl.methods import Method, NotApplicableError, seeded_rng
from interpret_rl.targets import Target, parse_target
from interpret_rl.video_file import check_video_path, video_writer

ACTOR_CHANNEL, CRITIC_CHANNEL = 2, 0  # blue, red (RGB order)
ACTOR_TEXT, CRITIC_TEXT = (120, 160, 255), (255, 110, 110)  # readable on the dark background
BACKGROUND, TEXT = (28, 28, 28), (235, 235, 235)
IMAGE_SCALE = 3  # 84x84 Atari frames -> 252x252 pixels
VECTOR_PANEL_WIDTH = 320
BAR_AREA_HEIGHT = 112
GAP = 8  # pixels between panels
LINE = 15  # pixels per line of text


class ExplanationFailed(RuntimeError):
    """A method raised while explaining a step (the message names method, target and step)."""


@dataclass
class VideoResult:
    """What ``explanation_video`` wrote: ``frames`` frames of ``width`` x ``height`` pixels."""

    path: Path
    frames: int
    width: int
    height: int
    fps: int
    methods: list[str]
    actor_target: str
    critic_target: str
    episode_scores: list[float] = field(default_factory=list)
    """Unclipped scores of the episodes that ended during the video."""


def prepare_video_methods(methods: Sequence[str | Method], options: dict[str, dict[str, Any]] | None) -> list[Method]:
    """Like ``compare.prepare_methods``, and refuse synthesis methods: they create inputs, not maps."""
    instances = prepare_methods(methods, options)
    synthesis = [m.name for m in instances if m.kind != "attribution"]
    if synthesis:
        raise ValueError(f"{', '.join(synthesis)} create observations instead of maps; a video shows "
                         f"attribution methods only (see `interpret-rl methods`)")
    return instances


def _font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)  # scalable since Pillow 10.1
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _normalised(magnitude: np.ndarray) -> tuple[np.ndarray, float]:
    """``|map|`` divided by its maximum (0 where the map is all zero), and that maximum."""
    peak = float(magnitude.max()) if magnitude.size else 0.0
    return (magnitude / peak if peak > 0 else np.zeros_like(magnitude)), peak


def _resize(plane: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize(size, resample))


def image_panel(observation: np.ndarray, actor: np.ndarray, critic: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Stacked frames ``(C, H, W)`` and two maps of that shape -> RGB panel and the two maxima."""
    height, width = observation.shape[-2:]
    size = (width * IMAGE_SCALE, height * IMAGE_SCALE)
    grey = _resize(observation[-1], size, Image.NEAREST)  # keep the game's pixels crisp
    rgb = np.repeat(grey[..., None], 3, axis=2) * 0.7  # dimmed so the overlays stand out
    maxima = []
    for values, channel in ((actor, ACTOR_CHANNEL), (critic, CRITIC_CHANNEL)):
        heat, peak = _normalised(np.abs(values).reshape(-1, height, width).sum(0))
        rgb[..., channel] += 255 * np.sqrt(np.clip(_resize(heat, size, Image.BILINEAR), 0, 1))
        maxima.append(peak)
    return np.clip(rgb, 0, 255).astype(np.uint8), tuple(maxima)


def vector_panel(picture: np.ndarray, actor: np.ndarray, critic: np.ndarray,
                 names: list[str]) -> tuple[np.ndarray, tuple]:
    """The env's RGB picture with a bar chart of ``|actor|`` (blue) and ``|critic|`` (red) per
    feature beneath -> RGB panel and the two maxima."""
    scaled = Image.fromarray(picture).convert("RGB")
    scaled = scaled.resize((VECTOR_PANEL_WIDTH, round(scaled.height * VECTOR_PANEL_WIDTH / scaled.width)),
                           Image.BILINEAR)
    canvas = Image.new("RGB", (VECTOR_PANEL_WIDTH, scaled.height + BAR_AREA_HEIGHT), BACKGROUND)
    canvas.paste(scaled, (0, 0))
    draw, font = ImageDraw.Draw(canvas), _font(11)
    a, a_max = _normalised(np.abs(actor).reshape(-1))
    c, c_max = _normalised(np.abs(critic).reshape(-1))
    group = VECTOR_PANEL_WIDTH / len(a)
    bar_width = group * 0.28
    base = scaled.height + BAR_AREA_HEIGHT - 2 * LINE - 4  # bars stand on this line, names below it
    full = BAR_AREA_HEIGHT - 2 * LINE - 14  # height of a bar at the map's maximum
    for i, name in enumerate(names):
        centre = group * (i + 0.5)
        for share, offset, colour in ((a[i], -1, (60, 110, 255)), (c[i], 0, (235, 60, 60))):
            left = centre + offset * bar_width
            draw.rectangle([left, base - max(1.0, share * full), left + bar_width - 1, base], fill=colour)
        for k, text in enumerate(textwrap.wrap(name, 11)[:2]):
            draw.text((centre, base + 3 + k * (LINE - 2)), text, fill=TEXT, font=font, anchor="ma")
    return np.asarray(canvas), (a_max, c_max)


def _labelled(panel: np.ndarray, method: str, maxima: tuple) -> Image.Image:
    """A panel with its method's name and the two maps' maxima above it."""
    framed = Image.new("RGB", (panel.shape[1], panel.shape[0] + 2 * LINE + 6), BACKGROUND)
    draw = ImageDraw.Draw(framed)
    draw.text((4, 2), method, fill=TEXT, font=_font(13))
    draw.text((4, LINE + 3), f"max |actor| {maxima[0]:.2g}", fill=ACTOR_TEXT, font=_font(11))
    draw.text((panel.shape[1] // 2, LINE + 3), f"max |critic| {maxima[1]:.2g}", fill=CRITIC_TEXT, font=_font(11))
    framed.paste(Image.fromarray(panel), (0, 2 * LINE + 6))
    return framed


def compose_frame(panels: list[Image.Image], header: str, actor_label: str, critic_label: str) -> np.ndarray:
    """Labelled panels side by side under a two-line header; even width and height (H.264 needs it)."""
    width = sum(p.width for p in panels) + GAP * (len(panels) + 1)
    height = max(p.height for p in panels) + 2 * LINE + 10
    width, height = width + width % 2, height + height % 2
    frame = Image.new("RGB", (width, height), BACKGROUND)
    draw, font = ImageDraw.Draw(frame), _font(12)
    draw.text((GAP, 3), header, fill=TEXT, font=font)
    legend = f"blue: actor ({actor_label})"
    draw.text((GAP, LINE + 4), legend, fill=ACTOR_TEXT, font=font)
    draw.text((GAP + draw.textlength(legend + "    ", font=font), LINE + 4), f"red: critic ({critic_label})",
              fill=CRITIC_TEXT, font=font)
    left = GAP
    for panel in panels:
        frame.paste(panel, (left, 2 * LINE + 10))
        left += panel.width + GAP
    return np.asarray(frame)


def _explain(agent, method: Method, target: Target, obs: torch.Tensor, seed: int, step: int) -> np.ndarray:
    """One method's map of one observation ``(1, *shape)`` -> ``(*shape)``."""
    try:
        with seeded_rng(seed, agent.device):
            values = method.explain(agent, target, obs).values
    except NotApplicableError:
        raise  # "this method does not work on this agent": a request to fix, said as it is
    except Exception as err:
        raise ExplanationFailed(f"{method.name} failed on target {target.spec} at step {step}: "
                                f"{error_text(err)}") from err
    return values.detach().cpu().numpy()[0]


def _label(agent, target: Target, logits: torch.Tensor) -> str:
    """The target's label; for ``action`` also which action that is now (it may differ from the
    sampled action the agent takes)."""
    if target.kind != "chosen-action":
        return target.label
    return f"most likely action, {agent.action_meanings[int(logits[0].argmax())]}"


def explanation_video(agent, methods: Sequence[str | Method], steps: int, out_path: str | os.PathLike,
                      seed: int = 0, options: dict[str, dict[str, Any]] | None = None,
                      target_actor: str | Target = "action", target_critic: str | Target = "value",
                      fps: int = 15) -> VideoResult:
    """Play ``steps`` steps with ``agent`` and write a video of every method's actor and critic maps.

    :param methods: registered attribution methods (names or instances), one panel each.
    :param steps: frames in the video (at least 1); episodes that end are followed by new ones.
    :param out_path: ``.mp4`` (H.264) or ``.gif``; its folder is created if missing.
    :param seed: seeds the environment, the action sampling and the methods' RNGs.
    :param options: per method, option values as text or typed: ``{"saliency": {"samples": "8"}}``.
    :param target_actor: the actor target, default ``action`` (the policy's most likely action).
    :param target_critic: the critic target, default ``value``.
    Bad methods, options, targets, ``steps`` or file suffixes raise before the first step.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    path = check_video_path(out_path)
    instances = prepare_video_methods(methods, options)
    actor, critic = (t if isinstance(t, Target) else parse_target(t, agent) for t in (target_actor, target_critic))
    from interpret_rl.report import FEATURE_NAMES

    size = int(np.prod(agent.observation_shape))
    names = FEATURE_NAMES.get(agent.env_id, [])[:size] if size == 4 else []
    names += [f"x{i}" for i in range(len(names), size)]
    is_image = len(agent.observation_shape) == 3
    # One emulator thread: a single environment gains nothing from more, and the cores may be busy.
    envs = make_vector_env(agent.env_id, 1, for_training=False, settings=agent.env_settings,
                           num_threads=1, render_first=not is_image)
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    was_training = agent.network.training
    agent.network.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    scores, shape = [], None
    try:
        obs = envs.reset(seed=seed)
        with video_writer(path, fps) as writer:
            for step in range(steps):
                x = torch.as_tensor(obs, dtype=torch.float32, device=agent.device)
                picture = None if is_image else envs.render_first()
                if picture is None and not is_image:  # no pygame: a chart of the numbers instead
                    picture = np.repeat(observation_frame(obs[0])[..., None], 3, axis=2)
                panels = []
                for method in instances:
                    maps = [_explain(agent, method, t, x, seed, step) for t in (actor, critic)]
                    panel, maxima = image_panel(obs[0], *maps) if is_image else vector_panel(picture, *maps, names)
                    panels.append(_labelled(panel, method.name, maxima))
                with torch.no_grad():
                    logits, value = agent.network(x)
                action = agent.act(obs, generator=generator)
                taken, strength = agent.describe_action(logits[0], action[0])
                header = (f"{agent.name or 'agent'} · {agent.env_id} · step {step + 1}/{steps} · "
                          f"takes {taken} ({strength}) · "
                          f"value {float(value[0]):.3g}")
                frame = compose_frame(panels, header, _label(agent, actor, logits), critic.label)
                shape = frame.shape
                writer.append_data(frame)
                result = envs.step(action)
                scores += [score for score, _ in result.finished]
                obs = result.obs
    finally:
        envs.close()
        agent.network.train(was_training)
    return VideoResult(path=path, frames=steps, width=shape[1], height=shape[0], fps=fps,
                       methods=[m.name for m in instances], actor_target=actor.spec, critic_target=critic.spec,
                       episode_scores=scores)
