"""Activation maximisation: synthesise the observation that most excites a target.

Frames: lucent's FFT image parameterisation (``fft_image`` + sigmoid, as ``param.image``)
optimised with size-preserving transforms only (jitter = pad + crop back, a small random scale
cropped/padded back), because the Nature CNN's flatten needs exactly 84x84 and lucent's ImageNet
transforms change the size. Our own loop replaces ``render_vis``, which leaves forward hooks on
every module and assumes ImageNet.
The image starts from the mean of the real observations by default, not from lucent's uniform
gray: on the bundled 10M-step Breakout agent a gray frame leaves every ReLU of the trunk dead
(the logits are the biases alone), so the gradient is exactly zero and the image never moves.
Vectors (CartPole): a bounded parameterisation ``x = low + (high - low) * sigmoid(z)`` with Adam.

All targets of one call are optimised together, one batch row per target (``explain_many``).
Hilton et al. 2020 found optimised inputs of RL models are often "featureless clouds", so every
explanation also names the real observations that excite the target most (``dataset_examples``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from lucent.optvis import transform
from lucent.optvis.param.spatial import fft_image
from torch import nn

from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Explanation, Method, seeded_rng
from interpret_rl.targets import Target, chosen_actions, layer_output_shape, paired_target_scores, target_scores

MONOTONE_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.Softplus)
PRE_ACTIVATION_WEIGHT = 0.1
START_MARGIN = 0.02  # a black pixel starts at sigmoid(-3.9): near 0, yet with gradient left


def pre_activation(agent, target: Target) -> Target | None:
    """For a unit of an elementwise monotone activation module (``trunk.relu3:5``), the same unit of
    the module feeding it (``trunk.conv3:5``); else None.

    A dead ReLU unit has zero gradient, so gradient ascent on it alone never starts; a little of the
    pre-activation in the objective keeps a gradient without moving the optimum of a single unit.
    """
    if target.kind != "layer" or not isinstance(agent.network.get_submodule(target.layer), MONOTONE_ACTIVATIONS):
        return None
    names = [name for name, _ in agent.network.named_modules() if name]
    before = names[names.index(target.layer) - 1]
    if layer_output_shape(agent, before) != layer_output_shape(agent, target.layer):
        return None
    return replace(target, layer=before, spec=target.spec.replace(target.layer, before, 1))


def observation_bounds(agent, real: torch.Tensor, widen: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)``, each ``obs_shape``: the space's bounds; an unbounded entry (``None``) takes the
    range of the real observations ``(B, *obs_shape)``, widened by ``widen`` times that range each side."""
    shape = real.shape[1:]

    def side(values, real_extreme: torch.Tensor, direction: float) -> torch.Tensor:
        values = list(values) if len(values) > 1 else list(values) * shape.numel()
        span = real.amax(0) - real.amin(0)
        span = torch.where(span > 0, span, torch.ones_like(span))
        fallback = real_extreme + direction * widen * span
        given = torch.tensor([float("nan") if v is None else v for v in values], dtype=real.dtype).view(shape)
        return torch.where(torch.isnan(given), fallback, given.to(real.device))

    space = agent.observation_space
    return side(space["low"], real.amin(0), -1.0), side(space["high"], real.amax(0), 1.0)


def jitter(pixels: int, generator: torch.Generator):
    """Shift by up to ``pixels`` in each direction: reflect-pad, then crop back to the same size."""

    def inner(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
        return transform.pad(pixels, mode="reflect")(image)[..., dy:dy + height, dx:dx + width]

    return inner


def random_scale(amount: float, generator: torch.Generator):
    """Zoom by a factor in ``1 ± amount``, then centre-crop or reflect-pad back to the same size."""

    def inner(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        factor = 1.0 + amount * (2 * torch.rand((), generator=generator).item() - 1)
        size = (max(2, round(height * factor)), max(2, round(width * factor)))
        scaled = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        if top >= 0 and left >= 0:
            return scaled[..., top:top + height, left:left + width]
        pad = [-left, width - size[1] + left, -top, height - size[0] + top]
        return F.pad(scaled, pad, mode="reflect")

    return inner


class Optim(Method):
    """Activation maximisation. ``values``: ``(1, *obs_shape)``, an observation within the space's
    bounds (rounded for uint8 spaces). ``extras``: ``activation`` (target on it), ``max_real_activation``
    (best real observation), ``dataset_examples`` (indices of the real observations exciting it most).
    A ``chosen-action`` target optimises the action the policy chooses most often on the real observations.
    """

    name = "optim"
    description = "activation maximisation: the input that most excites the target (+ dataset examples)"
    kind = "synthesis"

    @dataclass
    class Options:
        steps: int = 256
        lr: float = 0.05
        """Adam learning rate (on lucent's spectrum for frames, on the logits z for vectors)."""
        seed: int = 0
        jitter: int = 4
        """Frames: random shift of up to this many pixels each step (0 = off)."""
        scale: float = 0.05
        """Frames: random zoom of up to ± this fraction each step (0 = off)."""
        examples: int = 3
        """How many dataset examples to list."""
        widen: float = 0.1
        """Vectors: unbounded features may go this fraction of the real range beyond it."""
        start: Literal["real", "gray"] = "real"
        """Frames: start from the mean of the real observations (``real``) or from lucent's
        uniform gray (``gray``; on a trained Atari agent often a dead-ReLU plateau)."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        return self.explain_many(agent, [target], observations)[0]

    def explain_many(self, agent, targets: Sequence[Target], observations: torch.Tensor) -> list[Explanation]:
        """Optimise all ``targets`` at once (one batch row each); one explanation per target."""
        opts = self.options
        real = observations.detach().clone().float()
        goals = [self._fixed_action(agent, t, real) for t in targets]
        with torch.no_grad():
            real_scores = torch.stack([target_scores(agent, g, real) for g in goals])  # (S, B)
        low, high = observation_bounds(agent, real, opts.widen)
        with torch.enable_grad():
            if real.dim() == 4:
                synthetic = self._images(agent, goals, low, high, real.mean(0) if opts.start == "real" else None)
            else:
                synthetic = self._vectors(agent, goals, low, high)
        if str(agent.observation_space.get("dtype", "")).startswith("uint"):
            synthetic = synthetic.round()
        synthetic = torch.minimum(torch.maximum(synthetic, low), high)
        with torch.no_grad():
            activation = paired_target_scores(agent, goals, synthetic)
        explanations = []
        for i, (target, goal) in enumerate(zip(targets, goals)):
            top = real_scores[i].argsort(descending=True)[:opts.examples]
            extras = {"activation": [float(activation[i])], "max_real_activation": float(real_scores[i].max()),
                      "dataset_examples": top.tolist()}
            if goal is not target:
                extras["action"] = agent.action_meanings[goal.action]
            explanations.append(self._explanation(target, synthetic[i:i + 1], **extras))
        return explanations

    @staticmethod
    def _fixed_action(agent, target: Target, real: torch.Tensor) -> Target:
        if target.kind != "chosen-action":
            return target
        action = int(torch.bincount(chosen_actions(agent, real), minlength=agent.n_actions).argmax())
        return Target(spec=f"action:{agent.action_meanings[action]}", kind="action", action=action)

    def _ascend(self, agent, targets: Sequence[Target], params: list[torch.Tensor], make_input) -> None:
        """Adam on ``params`` to maximise each target on its row of ``make_input()``. Gradients go to
        ``params`` only (``autograd.grad``), so the network's ``.grad`` stays untouched."""
        optimizer = torch.optim.Adam(params, lr=self.options.lr)
        helpers = [(i, pre) for i, pre in ((i, pre_activation(agent, t)) for i, t in enumerate(targets)) if pre]
        rows = [i for i, _ in helpers]
        for _ in range(self.options.steps):
            inputs = make_input()
            loss = -paired_target_scores(agent, targets, inputs).sum()
            if helpers:
                loss = loss - PRE_ACTIVATION_WEIGHT * paired_target_scores(
                    agent, [pre for _, pre in helpers], inputs[rows]).sum()
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()

    def _images(self, agent, targets, low, high, start: torch.Tensor | None) -> torch.Tensor:
        """``(S, C, H, W)`` optimised frames scaled to ``[low, high]``: ``sigmoid(offset + spectrum)``
        with the offset putting the initial image at ``start`` (``(C, H, W)``; None: gray)."""
        opts = self.options
        channels, height, width = low.shape
        with seeded_rng(opts.seed):  # lucent draws its initial spectrum from torch's global RNG
            params, spectrum_f = fft_image([len(targets), channels, height, width])
        offset = torch.zeros(())
        if start is not None:  # logit of the start in [0, 1], kept off the sigmoid's flat ends
            offset = torch.logit(((start - low) / (high - low)).clamp(START_MARGIN, 1 - START_MARGIN))
        offset = offset.to(params[0].device)  # lucent's device (cuda when there is one)

        def image_f() -> torch.Tensor:
            return torch.sigmoid(spectrum_f() + offset)

        generator = torch.Generator().manual_seed(opts.seed)
        steps = ([jitter(opts.jitter, generator)] if opts.jitter > 0 else []) + \
                ([random_scale(opts.scale, generator)] if opts.scale > 0 else [])
        augment = transform.compose(steps)
        device = agent.device

        def make_input() -> torch.Tensor:
            return low + (high - low) * augment(image_f().to(device))

        self._ascend(agent, targets, params, make_input)
        with torch.no_grad():
            return low + (high - low) * image_f().to(device)

    def _vectors(self, agent, targets, low, high) -> torch.Tensor:
        """``(S, *obs_shape)`` optimised vectors, ``x = low + (high - low) * sigmoid(z)``."""
        generator = torch.Generator().manual_seed(self.options.seed)
        z = torch.randn((len(targets), *low.shape), generator=generator).to(low.device).requires_grad_(True)
        self._ascend(agent, targets, [z], lambda: low + (high - low) * torch.sigmoid(z))
        with torch.no_grad():
            return low + (high - low) * torch.sigmoid(z)


@hookimpl
def register_methods(register):
    register(Optim)
