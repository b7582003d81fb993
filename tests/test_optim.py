"""Activation maximisation: beats every real observation, stays a valid observation, leaves no hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.modules import module as torch_module

from interpret_rl.methods import build_method
from interpret_rl.targets import default_targets, parse_target, target_scores
from interpret_rl_plugins.optim import observation_bounds

CNN_EXTRA = ["action", "conv3:5", "fc:100", "relu3:7:3:3", "conv1:3"]
MLP_EXTRA = ["action", "fc1:3", "act2:7"]


def cartpole_observations(n: int = 16) -> torch.Tensor:
    scale = [1.0, 0.5, 0.1, 0.5]  # cart position, velocity, pole angle, angular velocity
    return torch.tensor(np.random.default_rng(0).normal(0, scale, size=(n, 4)), dtype=torch.float32)


def no_torch_hooks(network) -> bool:
    global_hooks = (torch_module._global_forward_hooks, torch_module._global_forward_pre_hooks,
                    torch_module._global_backward_hooks)
    return not any(global_hooks) and all(
        not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)
        for m in network.modules())


def check_beats_real(agent, specs, observations, **options):
    targets = default_targets(agent) + [parse_target(s, agent) for s in specs]
    method = build_method("optim", {"pool": "0", **{k: str(v) for k, v in options.items()}})
    explanations = method.explain_many(agent, targets, observations)
    assert no_torch_hooks(agent.network)
    for target, explanation in zip(targets, explanations):
        extras = explanation.extras
        assert explanation.values.shape == (1, *observations.shape[1:])
        assert extras["activation"][0] > extras["max_real_activation"], target.spec
        real = target_scores(agent, explanation_target(agent, target, extras), observations).detach()
        assert extras["max_real_activation"] == pytest.approx(float(real.max()))
        assert extras["dataset_examples"] == real.argsort(descending=True)[:9].tolist()
        assert torch.equal(explanation.examples, observations[extras["dataset_examples"]].float())
        again = target_scores(agent, explanation_target(agent, target, extras), explanation.values).item()
        assert extras["activation"][0] == pytest.approx(again, rel=1e-4, abs=1e-6)
    return explanations


def explanation_target(agent, target, extras):
    return parse_target(f"action:{extras['action']}", agent) if target.kind == "chosen-action" else target


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_cnn_synthesis_beats_real_frames(seed, atari_observations):
    from conftest import make_cnn_agent

    explanations = check_beats_real(make_cnn_agent(seed), CNN_EXTRA, atari_observations, steps=64)
    for explanation in explanations:  # a valid uint8 frame stack
        values = explanation.values
        assert values.min() >= 0 and values.max() <= 255 and torch.equal(values, values.round())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_synthesis_beats_real_observations(seed):
    from conftest import make_mlp_agent

    agent, observations = make_mlp_agent(seed), cartpole_observations()
    explanations = check_beats_real(agent, MLP_EXTRA, observations)
    low, high = observation_bounds(agent, observations, widen=0.1)
    for explanation in explanations:
        assert ((explanation.values >= low) & (explanation.values <= high)).all()


def test_bounds_use_space_and_widen_real_range(mlp_agent):
    observations = torch.tensor([[0.0, -1.0, 0.1, 2.0], [1.0, 3.0, -0.1, 2.0]])
    low, high = observation_bounds(mlp_agent, observations, widen=0.5)
    torch.testing.assert_close(low, torch.tensor([-4.8, -3.0, -0.41887903, 1.5]))
    torch.testing.assert_close(high, torch.tensor([4.8, 5.0, 0.41887903, 2.5]))


def test_same_seed_same_image_other_seed_differs(cnn_agent, atari_observations):
    target = parse_target("conv3:5", cnn_agent)
    run = lambda seed: build_method("optim", {"steps": "3", "seed": str(seed), "pool": "0"}).explain(
        cnn_agent, target, atari_observations).values
    rng_before = torch.random.get_rng_state()
    first = run(0)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the caller's RNG is left alone
    assert torch.equal(first, run(0)) and not torch.equal(first, run(1))


def test_chosen_action_optimises_the_most_frequent_action(mlp_agent):
    observations = cartpole_observations()
    chosen = mlp_agent.network(observations)[0].argmax(1)
    optim = build_method("optim", {"steps": "8", "pool": "0"})
    explanation = optim.explain(mlp_agent, parse_target("action", mlp_agent), observations)
    assert explanation.target == "action"
    assert explanation.extras["action"] == mlp_agent.action_meanings[int(torch.bincount(chosen).argmax())]


def test_trained_breakout_agent_frames_start_from_real_observations_not_a_dead_gray(atari_observations):
    """On the bundled 10M-step agent a uniform gray frame kills every trunk ReLU (zero gradient), so
    lucent's gray start never moves; the default start (mean of the real frames) beats them all."""
    from interpret_rl import registry

    agent = registry.load_agent("breakout-a2c")
    targets = [parse_target(spec, agent) for spec in ("action:RIGHT", "value")]
    observations = atari_observations[:2]
    pixels = {"pool": "0", "prior": "none"}  # this test is about the pixel path's start
    gray, = build_method("optim", {"steps": "8", "start": "gray", **pixels}).explain_many(agent, targets[:1],
                                                                                          observations)
    assert gray.values.max() - gray.values.min() < 20  # still the initial, nearly uniform image
    for explanation in build_method("optim", {"steps": "16", **pixels}).explain_many(agent, targets, observations):
        assert explanation.extras["activation"][0] > explanation.extras["max_real_activation"]
        assert explanation.values.min() >= 0 and explanation.values.max() <= 255


def test_unknown_start_is_refused_when_the_options_are_built():
    with pytest.raises(ValueError, match=r"option optim.start: expected one of real, gray, got 'noise'"):
        build_method("optim", {"start": "noise"})


def test_cli_refuses_an_unknown_start_with_exit_2_and_writes_nothing(run, tmp_path):
    out = tmp_path / "out"
    result = run("compare", "--methods", "optim", "-o", "optim.start=noise", "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "optim.start" in result.output and "'noise'" in result.output and "real, gray" in result.output
    assert not out.exists()
