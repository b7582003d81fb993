"""Captum attributions: integrated gradients, Grad-CAM, occlusion, DeepLift, GradientSHAP.

Captum needs one scalar per observation, but the network returns ``(logits, value)``; each method
therefore hands captum the target alone through ``interpret_rl.target_forward`` (shared with other
plugins): the chosen action stays fixed on every input captum derives, and captum gets a fresh
detached copy of the input.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from interpret_rl.blur import gaussian_blur
from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method, NotApplicableError, seeded_rng
from interpret_rl.option_checks import MAX_COPIES, MAX_SEED, bounded
from interpret_rl.target_forward import prepare, target_function
from interpret_rl.targets import Target, resolve_layer

torch = lazy_module("torch")
captum_attr = lazy_module("captum.attr")
nn = lazy_module("torch.nn")


def make_baseline(kind: str, x: torch.Tensor, blur: float) -> torch.Tensor:
    """``(B, *obs)`` reference input: ``zero``, ``blur`` (each frame blurred; images only), ``mean`` (of the batch)."""
    if kind == "zero":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(0, keepdim=True).expand_as(x).contiguous()
    if kind == "blur":
        if x.dim() != 4:
            raise ValueError("the blur baseline needs image observations (B, C, H, W); use zero or mean")
        return gaussian_blur(x, blur)
    raise ValueError(f"baseline must be zero, blur or mean, got {kind!r}")


class IntegratedGradients(Method):
    """Integrated gradients (Sundararajan et al. 2017) from a baseline; output ``(B, *obs_shape)``.

    ``extras["convergence_delta"]``: per observation, sum of attributions minus
    ``f(x) - f(baseline)`` (near 0 when ``n_steps`` is large enough).
    """

    name = "integrated-gradients"
    description = "integrated gradients along the straight path from a baseline"
    kind = "attribution"

    @dataclass
    class Options:
        n_steps: int = bounded(32, at_least=1, at_most=MAX_COPIES)
        baseline: str = "zero"
        """zero, blur (a blurred copy of each frame) or mean (of the observations)."""
        blur: float = bounded(5.0, at_least=0)
        internal_batch_size: int = bounded(128, at_least=1, at_most=MAX_COPIES)
        """Interpolated inputs per forward pass."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        opts = self.options
        x, extra = prepare(agent, target, observations)
        method = captum_attr.IntegratedGradients(target_function(agent, target))
        with torch.enable_grad():
            attributions, delta = method.attribute(
                x, baselines=make_baseline(opts.baseline, x, opts.blur), n_steps=opts.n_steps,
                internal_batch_size=opts.internal_batch_size, return_convergence_delta=True, **extra)
        return self.explanation(target, attributions, convergence_delta=delta.detach().tolist())


def gradcam_layer(network: nn.Module, target: Target) -> str:
    """The last ``Conv2d`` the target depends on: the last one overall, or the last at or before a layer target."""
    names = [name for name, _ in network.named_modules() if name]
    end = len(names)
    if target.kind == "layer":
        end = 1 + max(i for i, name in enumerate(names)
                      if name == target.layer or name.startswith(target.layer + "."))
    convs = [name for name in names[:end] if isinstance(network.get_submodule(name), nn.Conv2d)]
    if not convs:
        raise NotApplicableError(f"gradcam needs a convolutional layer before target {target.spec!r}; "
                                 f"layers: {', '.join(names)}")
    return convs[-1]


class GradCam(Method):
    """Grad-CAM (Selvaraju et al. 2017) on the last conv layer, ReLU'd, upsampled bilinearly to
    the frame size and repeated over the stacked frames: ``(B, C, H, W)``. Conv networks only."""

    name = "gradcam"
    description = "Grad-CAM on the last convolutional layer, upsampled to the frame"
    kind = "attribution"

    @dataclass
    class Options:
        layer: str = ""
        """Conv layer to use (dotted name or last part); empty = the last one the target depends on."""
        interpolate_mode: str = "bilinear"

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        opts = self.options
        if observations.dim() != 4:
            raise NotApplicableError(f"gradcam needs a convolutional layer and image observations; "
                                     f"got observations of shape {list(observations.shape[1:])}")
        layer = resolve_layer(agent.network, opts.layer) if opts.layer else gradcam_layer(agent.network, target)
        x, extra = prepare(agent, target, observations)
        method = captum_attr.LayerGradCam(target_function(agent, target), agent.network.get_submodule(layer))
        with torch.enable_grad():
            cam = method.attribute(x, relu_attributions=True, **extra)  # (B, 1, h, w)
        cam = captum_attr.LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode=opts.interpolate_mode)
        # One map for the whole stack: the conv layer has already mixed the frames.
        return self.explanation(target, cam.expand_as(x).contiguous(), layer=layer, same_map_for_all_frames=True)


class Occlusion(Method):
    """Occlusion (Zeiler & Fergus 2014): the target's change when a sliding window is set to the
    baseline. Output ``(B, *obs_shape)``."""

    name = "occlusion"
    description = "change of the target when a sliding window is replaced by a baseline"
    kind = "attribution"

    @dataclass
    class Options:
        window: tuple[int, ...] = bounded((), at_least=1)
        """Window shape; empty = (1, 8, 8) for frame stacks (one frame at a time), (1,) for vectors."""
        stride: tuple[int, ...] = bounded((), at_least=1)
        """Window step; empty = (1, 4, 4) for frame stacks, (1,) for vectors."""
        baseline: str = "zero"
        blur: float = bounded(5.0, at_least=0)
        batch: int = bounded(64, at_least=1, at_most=MAX_COPIES)
        """Occluded copies of each observation per forward pass."""

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        opts = self.options
        x, extra = prepare(agent, target, observations)
        image = x.dim() == 4
        window = opts.window or ((1, 8, 8) if image else (1,) * (x.dim() - 1))
        stride = opts.stride or ((1, 4, 4) if image else (1,) * (x.dim() - 1))
        if len(window) != x.dim() - 1 or len(stride) != x.dim() - 1:
            raise ValueError(f"occlusion window {window} and stride {stride} need {x.dim() - 1} values "
                             f"for observations of shape {list(x.shape[1:])}")
        method = captum_attr.Occlusion(target_function(agent, target))
        with torch.no_grad():
            attributions = method.attribute(
                x, sliding_window_shapes=tuple(window), strides=tuple(stride),
                baselines=make_baseline(opts.baseline, x, opts.blur), perturbations_per_eval=opts.batch, **extra)
        return self.explanation(target, attributions)


class DeepLift(Method):
    """DeepLift, rescale rule (Shrikumar et al. 2017), from a baseline. Output ``(B, *obs_shape)``.

    Captum hooks every nonlinearity module (the networks use ``nn.ReLU``/``nn.Tanh`` modules, not
    functional calls, so the rules apply) and removes the hooks itself; it also stores ``input`` and
    ``output`` attributes on them, which it leaves behind on modules the backward pass never reaches
    (e.g. layers after a layer target), so those are removed here.
    """

    name = "deeplift"
    description = "DeepLift (rescale rule) attributions relative to a baseline"
    kind = "attribution"

    @dataclass
    class Options:
        baseline: str = "zero"
        blur: float = bounded(5.0, at_least=0)

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        opts = self.options
        from interpret_rl.target_module import TargetModule

        x, extra = prepare(agent, target, observations)
        modules = list(agent.network.modules())
        attributes_before = [set(vars(module)) for module in modules]
        baselines = make_baseline(opts.baseline, x, opts.blur)
        try:
            with torch.enable_grad(), warnings.catch_warnings():
                # captum announces on every call that it sets (and will remove) hooks; we check that it does
                warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
                attributions = captum_attr.DeepLift(TargetModule(agent, target)).attribute(
                    x.requires_grad_(True), baselines=baselines, **extra)
        finally:
            for module, before in zip(modules, attributes_before):
                for name in set(vars(module)) - before:
                    delattr(module, name)
        return self.explanation(target, attributions)


class GradientShap(Method):
    """GradientSHAP (Lundberg & Lee 2017, captum's expected-gradients variant), seeded.
    Output ``(B, *obs_shape)``."""

    name = "gradient-shap"
    description = "expected gradients over random baselines and random points on the path"
    kind = "attribution"

    @dataclass
    class Options:
        samples: int = bounded(16, at_least=1, at_most=MAX_COPIES)
        """Random (baseline, path point) draws per observation."""
        baseline: str = "zero"
        """zero, blur, mean, or batch (the observations themselves as the baseline distribution)."""
        blur: float = bounded(5.0, at_least=0)
        stdevs: float = bounded(0.0, at_least=0)
        """Std of Gaussian noise added to each draw, in observation units."""
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        opts = self.options
        x, extra = prepare(agent, target, observations)
        baselines = x.clone() if opts.baseline == "batch" else make_baseline(opts.baseline, x, opts.blur)
        method = captum_attr.GradientShap(target_function(agent, target))
        with seeded_rng(opts.seed, x.device), torch.enable_grad():
            attributions = method.attribute(x, baselines=baselines, n_samples=opts.samples,
                                            stdevs=opts.stdevs, **extra)
        return self.explanation(target, attributions)


@hookimpl
def register_methods(register):
    for method in (IntegratedGradients, GradCam, Occlusion, DeepLift, GradientShap):
        register(method)
