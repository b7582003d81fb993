"""Gradient methods against independent computations: captum's Saliency, completeness of
integrated gradients and DeepLift, Grad-CAM by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Saliency as CaptumSaliency

from interpret_rl.methods import build_method
from interpret_rl.targets import parse_target, target_scores
from interpret_rl_plugins.perturbation import gaussian_blur


def captum_forward(agent, spec):
    """An independent forward function for captum: a head of the network, or the layer unit."""
    target = parse_target(spec, agent)
    if target.kind == "value":
        return (lambda x: agent.network(x)[1]), None
    if target.kind == "action":
        return (lambda x: agent.network(x)[0]), target.action
    if target.kind == "chosen-action":
        return (lambda x: agent.network(x)[0]), "chosen"
    return (lambda x: target_scores(agent, target, x)), None


@pytest.mark.parametrize("spec", ["action", "action:1", "value", "conv3:5", "relu2:7:3:4"])
def test_saliency_equals_captum_cnn(cnn_agent, atari_observations, spec):
    check_against_captum(cnn_agent, atari_observations, spec)


@pytest.mark.parametrize("spec", ["action", "action:0", "value", "fc2:9"])
def test_saliency_equals_captum_mlp(mlp_agent, spec):
    check_against_captum(mlp_agent, torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), spec)


def check_against_captum(agent, observations, spec):
    forward, target = captum_forward(agent, spec)
    if target == "chosen":
        target = agent.network(observations)[0].argmax(1).tolist()
    expected = CaptumSaliency(forward).attribute(observations.clone().requires_grad_(True), target=target, abs=True)
    ours = build_method("saliency", {}).explain(agent, parse_target(spec, agent), observations).values
    assert expected.abs().sum() > 0
    assert torch.equal(ours, expected)
    signed = build_method("saliency", {"absolute": "false"}).explain(agent, parse_target(spec, agent), observations)
    assert torch.equal(signed.values.abs(), expected) and (signed.values < 0).any()


def test_smoothgrad_without_noise_is_the_gradient(mlp_agent):
    obs, target = torch.randn(5, 4), parse_target("value", mlp_agent)
    plain = build_method("saliency", {}).explain(mlp_agent, target, obs).values
    noiseless = build_method("saliency", {"samples": "4", "noise": "0"}).explain(mlp_agent, target, obs).values
    torch.testing.assert_close(noiseless, plain)
    smooth = build_method("saliency", {"samples": "4", "noise": "0.3"}).explain(mlp_agent, target, obs).values
    other_seed = build_method("saliency", {"samples": "4", "noise": "0.3", "seed": "1"}).explain(
        mlp_agent, target, obs).values
    assert not torch.allclose(smooth, plain) and not torch.equal(smooth, other_seed)


def completeness_gap(agent, spec, observations, method, options, baseline):
    """|sum of attributions - (f(x) - f(baseline))| relative to |f(x) - f(baseline)|, per observation."""
    target = parse_target(spec, agent)
    attributions = build_method(method, options).explain(agent, target, observations).values
    with torch.no_grad():
        delta = target_scores(agent, target, observations) - target_scores(agent, target, baseline)
    assert delta.abs().min() > 1e-4  # the check would be empty otherwise
    return ((attributions.flatten(1).sum(1) - delta).abs() / delta.abs()).max()


def test_integrated_gradients_completeness_mlp(mlp_agent):
    obs = torch.randn(4, 4, generator=torch.Generator().manual_seed(1)) * 2
    gap = completeness_gap(mlp_agent, "value", obs, "integrated-gradients", {"n_steps": "64"}, torch.zeros_like(obs))
    assert gap < 1e-3


def test_integrated_gradients_completeness_cnn_blur_baseline(cnn_agent, atari_observations):
    baseline = gaussian_blur(atari_observations, 5.0)
    gap = completeness_gap(cnn_agent, "conv3:5", atari_observations, "integrated-gradients",
                           {"n_steps": "64", "baseline": "blur"}, baseline)
    assert gap < 0.02
    result = build_method("integrated-gradients", {"n_steps": "64", "baseline": "blur"}).explain(
        cnn_agent, parse_target("conv3:5", cnn_agent), atari_observations)
    assert max(abs(d) for d in result.extras["convergence_delta"]) < 0.02 * result.values.abs().sum()


def test_deeplift_sums_to_delta_on_tanh_mlp(mlp_agent):
    """The rescale rule makes attributions sum exactly to f(x) - f(baseline); plain gradient x input
    on a tanh network does not, so this fails if captum's nonlinearity hooks did not take effect."""
    obs = torch.randn(4, 4, generator=torch.Generator().manual_seed(2)) * 2
    assert completeness_gap(mlp_agent, "value", obs, "deeplift", {}, torch.zeros_like(obs)) < 1e-4
    grad_times_input = build_method("saliency", {"absolute": "false"}).explain(
        mlp_agent, parse_target("value", mlp_agent), obs).values * obs
    deeplift = build_method("deeplift", {}).explain(mlp_agent, parse_target("value", mlp_agent), obs).values
    assert not torch.allclose(grad_times_input, deeplift, atol=1e-3)


def test_gradcam_by_hand(cnn_agent, atari_observations):
    net, obs, spec = cnn_agent.network, atari_observations, "action:2"
    x = obs / 255
    conv3 = net.trunk.conv3(net.trunk.relu2(net.trunk.conv2(net.trunk.relu1(net.trunk.conv1(x)))))
    logits = net.policy(net.trunk.relu4(net.trunk.fc(net.trunk.flatten(net.trunk.relu3(conv3)))))
    (grads,) = torch.autograd.grad(logits[:, 2].sum(), conv3)
    cam = F.relu((grads.mean((2, 3), keepdim=True) * conv3).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(84, 84), mode="bilinear", align_corners=False).expand(-1, 4, -1, -1)
    result = build_method("gradcam", {}).explain(cnn_agent, parse_target(spec, cnn_agent), obs)
    assert result.extras["layer"] == "trunk.conv3" and expected.abs().sum() > 0
    torch.testing.assert_close(result.values, expected.detach(), rtol=1e-4, atol=1e-6)


def test_gradcam_follows_a_layer_target(cnn_agent, atari_observations):
    """conv3 does not influence a conv2 unit, so Grad-CAM must use conv2 for that target."""
    result = build_method("gradcam", {}).explain(cnn_agent, parse_target("relu2:3", cnn_agent), atari_observations)
    assert result.extras["layer"] == "trunk.conv2" and result.values.abs().sum() > 0
