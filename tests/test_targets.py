"""Target parsing, clear errors, and target_scores against the network's own outputs."""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest
import torch

from interpret_rl.agent import Agent
from interpret_rl.targets import (
    Target,
    TargetError,
    default_targets,
    paired_target_scores,
    parse_target,
    probe,
    target_scores,
)


def forward_hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.mark.parametrize("spec, expected", [
    ("action", Target(spec="action", kind="chosen-action")),
    ("action:2", Target(spec="action:RIGHT", kind="action", action=2)),
    ("action:fire", Target(spec="action:FIRE", kind="action", action=1)),
    ("value", Target(spec="value", kind="value")),
    ("conv3:5", Target(spec="trunk.conv3:5", kind="layer", layer="trunk.conv3", channel=5)),
    ("trunk.conv3:5:6:0", Target(spec="trunk.conv3:5:6:0", kind="layer", layer="trunk.conv3", channel=5, y=6, x=0)),
    ("fc:511", Target(spec="trunk.fc:511", kind="layer", layer="trunk.fc", channel=511)),
    ("relu1:31", Target(spec="trunk.relu1:31", kind="layer", layer="trunk.relu1", channel=31)),
])
def test_parse_cnn(cnn_agent, spec, expected):
    assert parse_target(spec, cnn_agent) == expected


def test_parse_mlp_and_labels(mlp_agent):
    assert parse_target("fc2:63", mlp_agent).layer == "trunk.fc2"
    assert parse_target("action:LEFT", mlp_agent).label == "action LEFT"
    assert parse_target("value", mlp_agent).label == "value"
    assert parse_target("act1:3", mlp_agent).label == "trunk.act1 channel 3"
    assert parse_target("action", mlp_agent).label == "chosen action"


@pytest.mark.parametrize("spec, message", [
    ("conv9:1", "unknown layer 'conv9'; layers: trunk, trunk.conv1, trunk.relu1"),
    ("conv3:99", "channel 99 out of range for trunk.conv3 (0..63)"),
    ("conv3:-1", "channel -1 out of range for trunk.conv3 (0..63)"),
    ("conv3:1:7:0", "position y=7 x=0 out of range for trunk.conv3 (y 0..6, x 0..6)"),
    ("fc:1:0:0", "trunk.fc has no spatial positions"),
    ("conv3:a", "channel must be an integer"),
    ("action:JUMP", "unknown action 'JUMP'; valid: 0..3 or NOOP, FIRE, RIGHT, LEFT"),
    ("action:4", "unknown action '4'; valid: 0..3"),
    ("banana", "unknown target 'banana'"),
    ("conv3:1:2", "must be <layer>, <layer>:<channel>, <layer>:nmf<i> or <layer>:<channel>:<y>:<x>"),
])
def test_errors_list_what_exists(cnn_agent, spec, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_target(spec, cnn_agent)
    assert forward_hooks(cnn_agent.network) == 0  # the shape probe is gone even after an error


class TwoTrunks(torch.nn.Module):
    """Separate actor and critic trunks, so the last name component ``fc1`` is ambiguous."""

    def __init__(self):
        super().__init__()
        self.actor = torch.nn.Sequential(OrderedDict(fc1=torch.nn.Linear(4, 8), out=torch.nn.Linear(8, 2)))
        self.critic = torch.nn.Sequential(OrderedDict(fc1=torch.nn.Linear(4, 8), out=torch.nn.Linear(8, 1)))

    def forward(self, obs):
        return self.actor(obs), self.critic(obs).squeeze(-1)


def test_ambiguous_last_component():
    agent = Agent(network=TwoTrunks(), env_id="x", env_settings={}, architecture="two-trunks",
                  architecture_args={}, observation_space={"shape": [4]}, action_space={"n": 2},
                  action_meanings=["LEFT", "RIGHT"])
    with pytest.raises(TargetError, match="'fc1' is ambiguous: actor.fc1, critic.fc1"):
        parse_target("fc1:0", agent)
    assert parse_target("critic.fc1:7", agent).layer == "critic.fc1"


def test_default_targets(cnn_agent):
    assert [t.spec for t in default_targets(cnn_agent)] == [
        "action:NOOP", "action:FIRE", "action:RIGHT", "action:LEFT", "value"]


def test_scores_match_network_outputs(cnn_agent, atari_observations):
    net, obs = cnn_agent.network, atari_observations
    with torch.no_grad():
        logits, value = net(obs)
        conv3 = net.trunk.conv3(net.trunk.relu2(net.trunk.conv2(net.trunk.relu1(net.trunk.conv1(obs / 255)))))
        score = lambda spec, **kw: target_scores(cnn_agent, parse_target(spec, cnn_agent), obs, **kw)
        torch.testing.assert_close(score("action:2"), logits[:, 2])
        torch.testing.assert_close(score("value"), value)
        torch.testing.assert_close(score("action"), logits.max(1).values)
        torch.testing.assert_close(score("action", actions=torch.tensor([3, 0, 1])), logits[[0, 1, 2], [3, 0, 1]])
        torch.testing.assert_close(score("conv3:5"), conv3[:, 5].mean((1, 2)))
        torch.testing.assert_close(score("conv3:5:2:4"), conv3[:, 5, 2, 4])
    assert forward_hooks(net) == 0


def test_scores_are_differentiable(mlp_agent):
    x = torch.randn(5, 4, requires_grad=True)
    target_scores(mlp_agent, parse_target("fc1:3", mlp_agent), x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_paired_scores_equal_separate_scores(cnn_agent, atari_observations):
    specs = ("conv3:5", "value", "fc:7", "action:FIRE", "conv3:9:2:3", "action", "conv3:5")
    targets = [parse_target(s, cnn_agent) for s in specs]
    observations = atari_observations[[0, 1, 2, 0, 1, 2, 1]]
    with torch.no_grad():
        paired = paired_target_scores(cnn_agent, targets, observations)
        separate = torch.stack([target_scores(cnn_agent, t, observations)[i] for i, t in enumerate(targets)])
    torch.testing.assert_close(paired, separate)
    targets = [parse_target(s, cnn_agent) for s in ("conv3:5", "value", "fc:7")]
    with torch.no_grad():
        paired = paired_target_scores(cnn_agent, targets, atari_observations)
        separate = torch.stack([target_scores(cnn_agent, t, atari_observations)[i] for i, t in enumerate(targets)])
    torch.testing.assert_close(paired, separate)
    assert forward_hooks(cnn_agent.network) == 0


def test_probe_removed_on_error(cnn_agent):
    with pytest.raises(RuntimeError):
        with probe(cnn_agent.network.trunk.conv1) as captured:
            cnn_agent.network(torch.zeros(1, 4, 84, 84))
            assert captured.output.shape == (1, 32, 20, 20)
            raise RuntimeError("boom")
    assert forward_hooks(cnn_agent.network) == 0


def conv3_of(net, obs):
    return net.trunk.conv3(net.trunk.relu2(net.trunk.conv2(net.trunk.relu1(net.trunk.conv1(obs / 255)))))


def test_whole_layer_and_direction_scores(cnn_agent, atari_observations):
    from interpret_rl.layer_nmf import fit_layer_nmf

    net, obs = cnn_agent.network, atari_observations
    fitted = fit_layer_nmf(cnn_agent, "trunk.conv3", 3, obs)
    assert fitted.directions.shape == (3, 64) and (fitted.directions >= 0).all()
    torch.testing.assert_close(fitted.directions.norm(dim=1), torch.ones(3))
    assert fitted.share[0] >= fitted.share[1] >= fitted.share[2]
    whole, direction = parse_target("conv3", cnn_agent), parse_target("conv3:nmf1/3", cnn_agent)
    assert (whole.spec, whole.label) == ("trunk.conv3", "trunk.conv3 (whole layer)")
    assert (direction.spec, direction.label) == ("trunk.conv3:nmf1/3", "trunk.conv3 direction nmf1/3")
    with torch.no_grad():
        conv3 = conv3_of(net, obs)
        torch.testing.assert_close(target_scores(cnn_agent, whole, obs), conv3.pow(2).mean((1, 2, 3)))
        expected = (conv3 * fitted.directions[1][:, None, None]).sum(1).mean((1, 2))
        torch.testing.assert_close(target_scores(cnn_agent, direction, obs), expected)
    assert forward_hooks(net) == 0


def test_nmf_recovers_a_nonnegative_factorisation():
    from interpret_rl.layer_nmf import nmf

    generator = torch.Generator().manual_seed(1)
    w, h = torch.rand(200, 3, generator=generator), torch.rand(3, 10, generator=generator)
    fitted_w, fitted_h = nmf(w @ h, 3, iterations=2000)
    assert (fitted_w >= 0).all() and (fitted_h >= 0).all()
    assert float((fitted_w @ fitted_h - w @ h).norm() / (w @ h).norm()) < 0.02


@pytest.mark.parametrize("spec, message", [
    ("conv3:nmf9/4", "NMF component 9 out of range for trunk.conv3 with 4 components (0..3)"),
    ("conv3:nmf0/65", "NMF component count 65 out of range for trunk.conv3 (1..64)"),
    ("conv3:nmfx", "NMF component must be an integer"),
    ("banana", "unknown target 'banana'; use action, action:<action>, value, <layer>,"),
    ("banana", "layers: trunk, trunk.conv1"),
])
def test_new_target_errors(cnn_agent, spec, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_target(spec, cnn_agent)


def test_forward_stops_after_the_deepest_target_layer(cnn_agent, atari_observations):
    runs = []
    inside = [parse_target(s, cnn_agent) for s in ("conv3:5", "conv2:1", "conv3")]
    value = parse_target("value", cnn_agent)
    handle = cnn_agent.network.trunk.fc.register_forward_hook(lambda *_: runs.append(1))
    try:
        paired_target_scores(cnn_agent, inside, atari_observations)
        assert runs == []  # fc never ran
        paired_target_scores(cnn_agent, [*inside[:2], value], atari_observations)
        assert runs == [1]
    finally:
        handle.remove()
    assert forward_hooks(cnn_agent.network) == 0
