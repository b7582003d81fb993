"""The fast paths of ``Perturbation`` give the maps of the plain loops.

Beyond tests/test_perturbation.py: an independent reference built the way Greydanus et al.'s
``saliency.py`` does it (numpy mask, scipy blur of the frame for every mask, one forward per mask);
the generic batched path (any architecture) on the CNN, which the Nature-CNN first-layer shortcut
otherwise takes over; the shortcut on other first-layer geometries (padding, dilation) and on tiny
chunks; and which networks get the shortcut.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import interpret_rl_plugins.perturbation as perturbation
from interpret_rl.networks import NatureCNNActorCritic
from interpret_rl.targets import actions_for, parse_target, target_scores
from interpret_rl_plugins.perturbation import Perturbation, perturbation_saliency_loop, upsample_scores


def ours(agent, spec, observations, **options):
    return Perturbation(Perturbation.Options(**options)).explain(agent, parse_target(spec, agent), observations).values


def assert_maps_close(actual, reference):
    assert reference.abs().max() > 0
    torch.testing.assert_close(actual, reference, rtol=1e-3, atol=1e-4 * float(reference.abs().max()))


def greydanus_reference(agent, target, observations, stride, radius=5.0, blur=3.0):
    """Their loop: per mask centre, a numpy Gaussian mask and ``I*(1-mask) + gaussian_filter(I, 3)*mask``
    (scipy, the frame blurred again for every mask), one forward, ``0.5*(L-l)**2``. ``mode="mirror"`` is the
    boundary rule torch's reflect padding uses (their default ``reflect`` differs at the border only)."""
    from scipy.ndimage import gaussian_filter

    maps = []
    _, channels, height, width = observations.shape
    with torch.no_grad():
        for obs in observations:
            frame = obs.double().numpy()
            actions = actions_for(agent, target, obs[None])
            L = target_scores(agent, target, obs[None], actions=actions)[0]
            scores = np.zeros((len(range(0, height, stride)), len(range(0, width, stride))))
            for yi, cy in enumerate(range(0, height, stride)):
                for xi, cx in enumerate(range(0, width, stride)):
                    y, x = np.ogrid[-cy:height - cy, -cx:width - cx]
                    mask = np.exp(-(x * x + y * y) / (2.0 * radius ** 2))
                    perturbed = frame * (1 - mask) + gaussian_filter(frame, sigma=(0, blur, blur), mode="mirror") * mask
                    state = torch.tensor(perturbed, dtype=torch.float32)[None]
                    perturbed_score = target_scores(agent, target, state, actions=actions)[0]
                    scores[yi, xi] = float(0.5 * (L - perturbed_score) ** 2)
            maps.append(upsample_scores(torch.from_numpy(scores), stride, (height, width)).expand(channels, -1, -1))
    return torch.stack(maps)


@pytest.mark.parametrize("spec", ["action", "conv2:3"])
def test_equals_greydanus_loop_with_scipy_blur(cnn_agent, atari_observations, spec):
    pytest.importorskip("scipy")
    reference = greydanus_reference(cnn_agent, parse_target(spec, cnn_agent), atari_observations[:1], stride=12)
    # Greydanus blur the whole stack at once: per_frame=False is their method
    assert_maps_close(ours(cnn_agent, spec, atari_observations[:1], stride=12, per_frame=False), reference)


@pytest.mark.slow
@pytest.mark.parametrize("per_frame", [False, True])
def test_generic_path_equals_loop_on_the_cnn(cnn_agent, atari_observations, monkeypatch, per_frame):
    monkeypatch.setattr(perturbation, "_linear_first_layer", lambda network: None)
    target = parse_target("action:2", cnn_agent)
    reference = perturbation_saliency_loop(cnn_agent, target, atari_observations[:2], stride=12, per_frame=per_frame)
    assert_maps_close(ours(cnn_agent, "action:2", atari_observations[:2], stride=12, per_frame=per_frame,
                           chunk=10), reference)  # 49 masks in 5 chunks


@pytest.mark.slow
@pytest.mark.parametrize("conv1", [{"kernel_size": 8, "stride": 4, "padding": 1},
                                   {"kernel_size": 4, "stride": 4, "dilation": 2}], ids=["padding", "dilation"])
def test_shortcut_on_other_first_layers(cnn_agent, atari_observations, conv1):
    torch.manual_seed(1)
    cnn_agent.network.trunk.conv1 = nn.Conv2d(4, 32, **conv1)  # both still give 20x20, so the rest fits
    assert perturbation._linear_first_layer(cnn_agent.network) is cnn_agent.network.trunk.conv1
    for per_frame in (False, True):
        reference = perturbation_saliency_loop(cnn_agent, parse_target("value", cnn_agent), atari_observations[:1],
                                               stride=7, radius=4.0, per_frame=per_frame)
        assert_maps_close(ours(cnn_agent, "value", atari_observations[:1], stride=7, radius=4.0, per_frame=per_frame,
                               chunk=5), reference)  # a chunk smaller than a row of 12 centres


def test_which_networks_take_the_shortcut(cnn_agent, mlp_agent):
    class Clipped(NatureCNNActorCritic):
        def preprocess(self, obs):  # not affine: the shortcut would be wrong
            return super().preprocess(obs.clamp(0, 200))

    assert perturbation._linear_first_layer(cnn_agent.network) is cnn_agent.network.trunk.conv1
    assert perturbation._linear_first_layer(mlp_agent.network) is None
    assert perturbation._linear_first_layer(Clipped((4, 84, 84), 4)) is None
    separate = NatureCNNActorCritic((4, 84, 84), 4)
    separate.critic_trunk = nn.Sequential(nn.Flatten(), nn.Linear(4 * 84 * 84, 512))
    assert perturbation._linear_first_layer(separate) is None
