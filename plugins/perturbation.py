"""Perturbation saliency of Greydanus et al. 2018, "Visualizing and Understanding Atari Agents".

For each centre on a grid (every ``stride`` pixels) a Gaussian mask (sigma ``radius``) blends the
frame with a blurred copy of itself (sigma 3); the score of that centre is
``0.5 * (f(obs) - f(perturbed))**2`` for the target score f. The coarse grid of scores is upsampled
bilinearly to the frame size. (Greydanus blur a one-pixel disk with sigma ``radius`` and scale it to
peak 1; the analytic Gaussian used here has the same shape up to that one pixel.) Blurring instead of
blacking out keeps the perturbed frame close to the data distribution, so the score measures
"information at this place", not "an unusual frame".

``Perturbation`` evaluates all masks of an observation in a few large batches;
``perturbation_saliency_loop`` is the plain one-forward-per-mask loop it is tested against.

Speed (benchmarks/perturbation_vs_loop.py). A perturbed frame is ``x + m * d`` with ``d = blur(x) - x``,
built with one ``addcmul`` per batch. For the built-in Nature CNN (an affine ``preprocess``, then a
convolution) the first layer is not run per mask at all: it is linear, so
``conv(pre(x + m*d)) = conv(pre(x)) + conv_nobias(m * (pre(blur(x)) - pre(x)))``, and each mask is a
separable Gaussian ``gy(row) * gx(col)``, so the second term for all masks at once is two small batched
matrix products with the 1-D factors (about 0.15M multiply-adds per mask instead of the layer's 3.3M).
The rest of the network runs from that layer's output, substituted by a forward hook. Same maps up to
float rounding (tested against the loop); any other network takes the generic path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from interpret_rl.blur import gaussian_blur
from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method
from interpret_rl.option_checks import MAX_COPIES, bounded
from interpret_rl.targets import Target, actions_for, target_scores

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")
nn = lazy_module("torch.nn")


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


def _even_parts(total: int, chunk: int) -> list[int]:
    """Sizes of the fewest pieces of at most ``chunk`` that split ``total`` as evenly as possible
    (289 masks in chunks of 256 -> 145 + 144, not 256 + 33: a small last batch runs slowly)."""
    pieces = max(1, math.ceil(total / max(1, chunk)))
    return [total // pieces + (1 if i < total % pieces else 0) for i in range(pieces)]


def _image_perturbations(frame: torch.Tensor, blurred: torch.Tensor, masks: torch.Tensor, per_frame: bool,
                         chunk: int) -> Iterator[torch.Tensor]:
    """Perturbed copies ``frame + mask * (blurred - frame)`` of one ``(C, H, W)`` observation for ``(M, H, W)``
    masks, ``chunk`` at a time (so memory stays bounded): M copies blending all frames, or C*M (frame-major)
    blending one frame each."""
    difference = blurred - frame
    channels = frame.shape[0]
    for selected in (range(channels) if per_frame else [None]):
        for part in masks.split(_even_parts(len(masks), chunk)):
            if selected is None:
                yield torch.addcmul(frame, part[:, None], difference)
            else:
                copies = frame.expand(len(part), *frame.shape).clone()
                copies[:, selected] = torch.addcmul(frame[selected], part, difference[selected])
                yield copies


@contextmanager
def _replaced_output(module: nn.Module, output: torch.Tensor) -> Iterator[None]:
    """While inside, ``module`` outputs ``output`` whatever its input (a forward hook, removed on exit)."""
    handle = module.register_forward_hook(lambda _module, _inputs, _output: output, prepend=True)
    try:
        yield
    finally:
        handle.remove()


def _linear_first_layer(network: nn.Module) -> nn.Conv2d | None:
    """The first convolution of a network known to compute ``conv(preprocess(obs))`` with an affine
    ``preprocess`` first (the built-in Nature CNN, not overridden or wrapped); else None."""
    from interpret_rl.networks import ActorCritic, NatureCNNActorCritic

    if not (isinstance(network, NatureCNNActorCritic) and type(network).forward is ActorCritic.forward
            and type(network).preprocess is NatureCNNActorCritic.preprocess and network.critic_trunk is None
            and "forward" not in vars(network) and "preprocess" not in vars(network)
            and isinstance(network.trunk, nn.Sequential) and len(network.trunk) > 0):
        return None
    conv = network.trunk[0]
    if type(conv) is not nn.Conv2d or conv.groups != 1 or conv.padding_mode != "zeros" \
            or isinstance(conv.padding, str) or "forward" in vars(conv):
        return None
    return conv


def _mask_factors(outputs: int, stride: int, padding: int, dilation: int, taps: int, centres: torch.Tensor,
                  radius: float) -> torch.Tensor:
    """``(outputs, centres, taps)``: the 1-D Gaussian of each mask centre at the input row (or column)
    ``o*stride - padding + t*dilation`` that tap ``t`` of output row ``o`` reads (padding reads zeros,
    so its factor does not matter)."""
    position = (torch.arange(outputs, device=centres.device)[:, None] * stride - padding
                + torch.arange(taps, device=centres.device)[None] * dilation).to(centres.dtype)
    return torch.exp(-(position[:, None, :] - centres[None, :, None]) ** 2 / (2 * radius ** 2))


class _FirstLayerShortcut:
    """Scores of all masks of one observation with the first layer computed in closed form.

    ``conv(pre(x + m*d)) = conv(pre(x)) + conv_nobias(m * u)``, ``u = pre(blur(x)) - pre(x)``, and
    ``m[y, x] = gy[y] * gx[x]``. With ``A[o,y',x',i,j] = sum_c W[o,c,y',x'] * u[c, rows(i,y'), cols(j,x')]``
    (the layer without the sum over taps), a mask's term is ``sum_y' gy * sum_x' gx * A``: first over the
    column taps for every column centre, then over the row taps for every row centre, each a batched
    matrix product.
    """

    def __init__(self, agent, conv: nn.Conv2d, x: torch.Tensor, blurred: torch.Tensor, stride: int,
                 radius: float):
        self.agent, self.conv = agent, conv
        self.base_input = agent.network.preprocess(x)
        self.update = agent.network.preprocess(blurred) - self.base_input
        self.base = conv(self.base_input)  # (B, O, Ho, Wo)
        height, width = x.shape[2:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
        centres_y = torch.arange(0, height, stride, dtype=x.dtype, device=x.device)
        centres_x = torch.arange(0, width, stride, dtype=x.dtype, device=x.device)
        self.rows = _mask_factors(self.base.shape[2], sh, ph, dh, kh, centres_y, radius)  # (Ho, ny, kh)
        self.cols = _mask_factors(self.base.shape[3], sw, pw, dw, kw, centres_x, radius)  # (Wo, nx, kw)
        # An input the layer accepts at almost no cost; the hook replaces what it outputs.
        size = (max(1, dh * (kh - 1) + 1 - 2 * ph), max(1, dw * (kw - 1) + 1 - 2 * pw))
        self.dummy = torch.zeros((1, x.shape[1], *size), dtype=x.dtype, device=x.device)

    def scores(self, target: Target, i: int, selected: int | None, chunk: int, action) -> torch.Tensor:
        """Target scores ``(ny * nx,)`` of observation ``i`` under every mask, blending all frames
        (``selected`` None) or frame ``selected`` only."""
        conv = self.conv
        weight = conv.weight if selected is None else conv.weight[:, selected:selected + 1]
        update = self.update[i] if selected is None else self.update[i, selected:selected + 1]
        out_channels, in_channels, kh, kw = weight.shape
        rows_out, cols_out = self.base.shape[2:]
        ny, nx = self.rows.shape[1], self.cols.shape[1]
        patches = F.unfold(update[None], (kh, kw), conv.dilation, conv.padding, conv.stride)
        patches = patches.view(in_channels, kh, kw, rows_out, cols_out)
        taps = torch.einsum("ocuv,cuvij->jviuo", weight, patches).contiguous()  # (Wo, kw, Ho, kh, O)
        by_column = torch.bmm(self.cols, taps.view(cols_out, kw, -1))  # (Wo, nx, Ho*kh*O)
        by_column = by_column.view(cols_out, nx, rows_out, kh, out_channels).permute(2, 3, 1, 0, 4)
        by_column = by_column.reshape(rows_out, kh, nx * cols_out * out_channels)  # (Ho, kh, nx*Wo*O)
        scores, start = [], 0
        for count in _even_parts(ny, max(1, chunk // nx)):
            terms = torch.bmm(self.rows[:, start:start + count], by_column)  # (Ho, count, nx*Wo*O)
            terms = terms.view(rows_out, count, nx, cols_out, out_channels).permute(1, 2, 4, 0, 3)
            outputs = torch.empty((count * nx, out_channels, rows_out, cols_out), dtype=terms.dtype,
                                  device=terms.device, memory_format=torch.channels_last)
            torch.add(terms, self.base[i], out=outputs.view(count, nx, out_channels, rows_out, cols_out))
            with _replaced_output(conv, outputs):
                scores.append(target_scores(self.agent, target, self.dummy.expand(len(outputs), -1, -1, -1),
                                            actions=None if action is None else action.expand(len(outputs))))
            start += count
        return torch.cat(scores)


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

    Output: ``(B, *obs_shape)``. Frames: one map per stacked frame (``per_frame``, the default), or
    with ``per_frame=False`` one map of blurring all frames at once, repeated on every frame (then
    ``extras["same_map_for_all_frames"]`` is true). Vectors ``(B, D)``: one score per feature.
    """

    name = "perturbation"
    description = "Greydanus et al. 2018: how much blurring each region changes the target"
    kind = "attribution"

    @dataclass
    class Options:
        stride: int = bounded(5, at_least=1)
        """Pixels between mask centres."""
        radius: float = bounded(5.0, above=0)
        """Std of the Gaussian mask in pixels."""
        blur: float = bounded(3.0, at_least=0)
        """Std of the blur the mask blends in."""
        per_frame: bool = True
        """Perturb each stacked frame on its own: one map per frame, so the report shows which frame
        of the stack the target reads (4x the forward passes); false blurs all frames together."""
        baseline: str = "zero"
        """Vectors only: replace a feature by 'zero' or by its 'mean' over the observations."""
        chunk: int = bounded(256, at_least=1, at_most=MAX_COPIES)
        """Perturbed observations per forward pass (split evenly; with the Nature-CNN first-layer
        shortcut, whole rows of mask centres, at least one row)."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        x = observations.detach().clone().float()
        with torch.no_grad():
            actions = actions_for(agent, target, x)  # the real frame's action, also on perturbed copies
            reference = target_scores(agent, target, x, actions=actions)  # (B,)
            if x.dim() != 4:
                return self.explanation(target, self._vector_maps(agent, target, x, actions, reference))
            maps = self._image_maps(agent, target, x, actions, reference)
        return self.explanation(target, maps, same_map_for_all_frames=not self.options.per_frame)

    def _scores(self, agent, target, batches, action, reference) -> torch.Tensor:
        """``0.5 * (f(obs) - f(perturbed))**2`` over all perturbed batches of one observation, concatenated."""
        scores = [target_scores(agent, target, batch, actions=None if action is None else action.expand(len(batch)))
                  for batch in batches]
        return 0.5 * (reference - torch.cat(scores)) ** 2

    def _image_maps(self, agent, target, x, actions, reference) -> torch.Tensor:
        """``(B, C, H, W)`` frames -> ``(B, C, H, W)`` maps."""
        opts = self.options
        blurred = gaussian_blur(x, opts.blur)
        grid = (len(range(0, x.shape[2], opts.stride)), len(range(0, x.shape[3], opts.stride)))
        frames = x.shape[1] if opts.per_frame else 1
        conv = _linear_first_layer(agent.network)
        if conv is not None:
            shortcut = _FirstLayerShortcut(agent, conv, x, blurred, opts.stride, opts.radius)
        else:
            masks = mask_grid(x.shape[2], x.shape[3], opts.stride, opts.radius).to(x.device).flatten(0, 1)
        maps = []
        for i in range(len(x)):
            action = None if actions is None else actions[i]
            if conv is not None:
                scores = 0.5 * (reference[i] - torch.cat([
                    shortcut.scores(target, i, selected, opts.chunk, action)
                    for selected in (range(x.shape[1]) if opts.per_frame else [None])])) ** 2
            else:
                batches = _image_perturbations(x[i], blurred[i], masks, opts.per_frame, opts.chunk)
                scores = self._scores(agent, target, batches, action, reference[i])
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
                               radius: float = 5.0, blur: float = 3.0, per_frame: bool = True,
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
