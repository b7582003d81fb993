"""Perturbation saliency of Greydanus et al. 2018, "Visualizing and Understanding Atari Agents".

For each centre on a grid (every ``stride`` pixels) a Gaussian mask (sigma ``radius``) blends the
frame with a blurred copy of itself (sigma 3); the score of that centre is
``0.5 * (f(obs) - f(perturbed))**2`` for the target score f. The coarse grid of scores is upsampled
bilinearly to the frame size. (Greydanus blur a one-pixel disk with sigma ``radius`` and scale it to
peak 1; the analytic Gaussian used here has the same shape up to that one pixel.) Blurring instead of blacking out keeps the perturbed frame close to
the data distribution, so the score measures "information at this place", not "an unusual frame".

``Perturbation`` evaluates all masks of an observation in a few large batches;
``perturbation_saliency_loop`` is the plain one-forward-per-mask loop it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Explanation, Method
from interpret_rl.targets import Target, actions_for, target_scores


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each 2-D plane of ``(..., H, W)`` with a Gaussian of std ``sigma`` (reflect padding)."""
    height, width = images.shape[-2:]
    # scipy's gaussian_filter truncates at 4 sigma; reflect padding must stay below the image size.
    radius = max(1, min(int(4 * sigma + 0.5), height - 1, width - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    planes = images.reshape(-1, 1, height, width)
    planes = F.pad(planes, [radius] * 4, mode="reflect")
    planes = F.conv2d(planes, kernel.view(1, 1, 1, -1))
    planes = F.conv2d(planes, kernel.view(1, 1, -1, 1))
    return planes.reshape(images.shape)


def mask_grid(height: int, width: int, stride: int, radius: float) -> torch.Tensor:
    """Gaussian masks ``(ny, nx, H, W)`` with peak 1, centred every ``stride`` pixels from (0, 0)."""
    ys = torch.arange(height, dtype=torch.float32)
    xs = torch.arange(width, dtype=torch.float32)
    cy = torch.arange(0, height, stride, dtype=torch.float32)
    cx = torch.arange(0, width, stride, dtype=torch.float32)
    dy = (ys[None, :] - cy[:, None]) ** 2  # (ny, H)
    dx = (xs[None, :] - cx[:, None]) ** 2  # (nx, W)
    return torch.exp(-(dy[:, None, :, None] + dx[None, :, None, :]) / (2 * radius ** 2))


def upsample_scores(coarse: torch.Tensor, stride: int, size: tuple[int, int]) -> torch.Tensor:
    """``(..., ny, nx)`` scores at the mask centres -> ``(..., H, W)``, bilinear between centres.

    Centres sit at multiples of ``stride``, so interpolating onto ``(n-1)*stride+1`` pixels with
    aligned corners puts every score exactly on its centre; the last few pixels repeat the edge.
    """
    lead, (ny, nx) = coarse.shape[:-2], coarse.shape[-2:]
    planes = coarse.reshape(-1, 1, ny, nx).float()
    inner = ((ny - 1) * stride + 1, (nx - 1) * stride + 1)
    planes = F.interpolate(planes, size=inner, mode="bilinear", align_corners=True) if ny > 1 and nx > 1 \
        else F.interpolate(planes, size=inner, mode="nearest")
    planes = F.pad(planes, [0, size[1] - inner[1], 0, size[0] - inner[0]], mode="replicate")
    return planes.reshape(*lead, *size)


def _image_perturbations(frame: torch.Tensor, blurred: torch.Tensor, masks: torch.Tensor, per_frame: bool,
                         chunk: int) -> Iterator[torch.Tensor]:
    """Perturbed copies of one ``(C, H, W)`` observation for ``(M, H, W)`` masks, ``chunk`` at a time
    (so memory stays bounded): M copies blending all frames, or C*M (frame-major) blending one frame each."""
    channels = frame.shape[0]
    selectors = (torch.eye(channels, dtype=frame.dtype, device=frame.device) if per_frame
                 else torch.ones(1, channels, dtype=frame.dtype, device=frame.device))
    for select in selectors:
        for part in masks.split(chunk):
            blend = part[:, None] * select.view(1, channels, 1, 1)  # (m, C, H, W)
            yield frame * (1 - blend) + blurred * blend


def _vector_perturbations(vector: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
    """One copy of a ``(D,)`` observation per feature, that feature set to the baseline -> ``(D, D)``."""
    eye = torch.eye(vector.numel(), dtype=vector.dtype, device=vector.device)
    flat = vector.reshape(-1)
    return (flat + (baseline.reshape(-1) - flat) * eye).reshape(-1, *vector.shape)


def _baseline(observations: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "zero":
        return torch.zeros_like(observations[0])
    if kind == "mean":
        return observations.mean(0)
    raise ValueError(f"baseline must be 'zero' or 'mean', got {kind!r}")


class Perturbation(Method):
    """Greydanus blur-perturbation saliency; vectors: each feature set to a baseline in turn.

    Output: ``(B, *obs_shape)``. Frames: the map repeated on every stacked frame, or one map per
    frame with ``per_frame``. Vectors ``(B, D)``: one score per feature.
    """

    name = "perturbation"
    description = "Greydanus et al. 2018: how much blurring each region changes the target"
    kind = "attribution"

    @dataclass
    class Options:
        stride: int = 5
        """Pixels between mask centres."""
        radius: float = 5.0
        """Std of the Gaussian mask in pixels."""
        blur: float = 3.0
        """Std of the blur the mask blends in."""
        per_frame: bool = False
        """Perturb each stacked frame separately (one map per frame; 4x the forward passes)."""
        baseline: str = "zero"
        """Vectors only: replace a feature by 'zero' or by its 'mean' over the observations."""
        chunk: int = 256
        """Perturbed observations per forward pass."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        x = observations.detach().clone().float()
        with torch.no_grad():
            actions = actions_for(agent, target, x)  # the real frame's action, also on perturbed copies
            reference = target_scores(agent, target, x, actions=actions)  # (B,)
            maps = self._image_maps(agent, target, x, actions, reference) if x.dim() == 4 \
                else self._vector_maps(agent, target, x, actions, reference)
        return self._explanation(target, maps)

    def _scores(self, agent, target, batches, action, reference) -> torch.Tensor:
        """``0.5 * (f(obs) - f(perturbed))**2`` over all perturbed batches of one observation, concatenated."""
        scores = [target_scores(agent, target, batch, actions=None if action is None else action.expand(len(batch)))
                  for batch in batches]
        return 0.5 * (reference - torch.cat(scores)) ** 2

    def _image_maps(self, agent, target, x, actions, reference) -> torch.Tensor:
        """``(B, C, H, W)`` frames -> ``(B, C, H, W)`` maps."""
        opts = self.options
        blurred = gaussian_blur(x, opts.blur)
        masks = mask_grid(x.shape[2], x.shape[3], opts.stride, opts.radius).to(x.device)
        grid, masks = masks.shape[:2], masks.flatten(0, 1)
        frames = x.shape[1] if opts.per_frame else 1
        maps = []
        for i in range(len(x)):
            batches = _image_perturbations(x[i], blurred[i], masks, opts.per_frame, opts.chunk)
            scores = self._scores(agent, target, batches, None if actions is None else actions[i], reference[i])
            maps.append(upsample_scores(scores.view(frames, *grid), opts.stride, x.shape[2:]).expand(x.shape[1:]))
        return torch.stack(maps).contiguous()

    def _vector_maps(self, agent, target, x, actions, reference) -> torch.Tensor:
        """``(B, *shape)`` vectors -> ``(B, *shape)``, one score per feature."""
        baseline = _baseline(x, self.options.baseline)
        return torch.stack([
            self._scores(agent, target, _vector_perturbations(x[i], baseline).split(self.options.chunk),
                         None if actions is None else actions[i], reference[i]).view(x.shape[1:])
            for i in range(len(x))])


def perturbation_saliency_loop(agent, target: Target, observations: torch.Tensor, stride: int = 5,
                               radius: float = 5.0, blur: float = 3.0, per_frame: bool = False,
                               baseline: str = "zero") -> torch.Tensor:
    """The straightforward Greydanus loop, one forward pass per mask (reference for tests/benchmarks).

    Same output as ``Perturbation`` with the same options: ``(B, *obs_shape)``.
    """
    x = observations.detach().clone().float()
    maps = []
    with torch.no_grad():
        for i in range(len(x)):
            obs = x[i:i + 1]
            actions = actions_for(agent, target, obs)
            f0 = target_scores(agent, target, obs, actions=actions)[0]
            if x.dim() != 4:
                base = _baseline(x, baseline)
                scores = torch.zeros(obs[0].numel())
                for j in range(obs[0].numel()):
                    perturbed = obs.clone().view(-1)
                    perturbed[j] = base.view(-1)[j]
                    f = target_scores(agent, target, perturbed.view_as(obs), actions=actions)[0]
                    scores[j] = 0.5 * (f0 - f) ** 2
                maps.append(scores.view(obs.shape[1:]))
                continue
            blurred = gaussian_blur(obs, blur)
            masks = mask_grid(x.shape[2], x.shape[3], stride, radius)
            frames = range(x.shape[1]) if per_frame else [None]
            coarse = torch.zeros(len(frames), *masks.shape[:2])
            for k, frame in enumerate(frames):
                for yi in range(masks.shape[0]):
                    for xi in range(masks.shape[1]):
                        m = masks[yi, xi].clone().expand(x.shape[1], -1, -1).clone()
                        if frame is not None:  # blur only this frame of the stack
                            m[torch.arange(x.shape[1]) != frame] = 0
                        perturbed = obs * (1 - m) + blurred * m
                        f = target_scores(agent, target, perturbed, actions=actions)[0]
                        coarse[k, yi, xi] = 0.5 * (f0 - f) ** 2
            maps.append(upsample_scores(coarse, stride, x.shape[2:]).expand(x.shape[1:]))
    return torch.stack(maps).contiguous()


@hookimpl
def register_methods(register):
    register(Perturbation)
