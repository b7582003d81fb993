"""Gaussian blur of frame stacks: the "information removed" baseline shared by perturbation
saliency, the deletion / insertion curves and the captum baselines (plugins do not import each
other, so it lives in the core)."""

from __future__ import annotations

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")


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
