"""The method contract, checked on every registered method (built-in or not) and both agents.

Output shape and range; finite; same options -> same result; no torch hooks and no stray module
attributes left (also after an exception); weights and their .grad untouched; input untouched.
"""

from __future__ import annotations

import math

import pytest
import torch

from interpret_rl.methods import NotApplicableError, build_method, registered_methods
from interpret_rl.targets import Target, parse_target

# Cheaper settings so the whole matrix runs in seconds; the options still exercise every code path
# (SmoothGrad noise, several IG steps, occlusion windows). Methods not listed run with defaults.
FAST = {
    "saliency": {"samples": "2"},
    "integrated-gradients": {"n_steps": "6"},
    "gradient-shap": {"samples": "3"},
    "perturbation": {"stride": "14"},
    "optim": {"steps": "4", "pool": "0"},  # pool 0: no real-state pool collected for a test agent
}
FAST_CNN = {"occlusion": {"window": "2,21,21", "stride": "2,21,21"}}
NOT_APPLICABLE = {("gradcam", "mlp"): "gradcam needs a convolutional layer"}
LAYER = {"cnn": "conv2:3", "mlp": "fc1:3"}

METHODS = sorted(registered_methods())


def options(name: str, agent_kind: str) -> dict[str, str]:
    return {**FAST.get(name, {}), **(FAST_CNN.get(name, {}) if agent_kind == "cnn" else {})}


@pytest.fixture(params=["cnn", "mlp"])
def setup(request, cnn_agent, mlp_agent, atari_observations):
    """(agent kind, agent, observations): uint8 frames as the env gives them; float vectors that
    require grad, to check the flag survives."""
    if request.param == "cnn":
        return "cnn", cnn_agent, atari_observations[:2].to(torch.uint8)
    vectors = torch.tensor([[0.1, -0.5, 0.05, 0.8], [-1.0, 0.3, -0.1, -0.2], [0.5, 1.5, 0.2, 0.0]])
    return "mlp", mlp_agent, vectors.requires_grad_(True)


class Snapshot:
    """Everything a method must leave as it found it."""

    def __init__(self, agent, observations):
        self.network, self.observations = agent.network, observations
        self.weights = {k: v.clone() for k, v in agent.network.state_dict().items()}
        self.attributes = [set(vars(m)) for m in agent.network.modules()]
        self.values, self.requires_grad = observations.detach().clone(), observations.requires_grad

    def check(self):
        for module in self.network.modules():
            assert not module._forward_hooks and not module._forward_pre_hooks, f"hook left on {module}"
            assert not module._backward_hooks and not module._backward_pre_hooks, f"backward hook left on {module}"
        assert [set(vars(m)) for m in self.network.modules()] == self.attributes, "module attributes added"
        state = self.network.state_dict()
        assert state.keys() == self.weights.keys()
        assert all(torch.equal(state[k], v) for k, v in self.weights.items()), "weights changed"
        assert all(p.grad is None for p in self.network.parameters()), "parameter .grad written"
        assert torch.equal(self.observations.detach(), self.values) and self.observations.dtype == self.values.dtype
        assert self.observations.requires_grad == self.requires_grad and self.observations.grad is None


def explain(name, kind, agent, spec, observations):
    target = parse_target(spec, agent) if isinstance(spec, str) else spec
    return build_method(name, options(name, kind)).explain(agent, target, observations)


def applicable_or_skip(name, kind, agent, observations):
    if (name, kind) in NOT_APPLICABLE:
        snapshot = Snapshot(agent, observations)
        with pytest.raises(NotApplicableError, match=NOT_APPLICABLE[name, kind]):
            explain(name, kind, agent, "action", observations)
        snapshot.check()
        return False
    return True


@pytest.mark.parametrize("name", METHODS)
def test_contract(name, setup):
    kind, agent, observations = setup
    if not applicable_or_skip(name, kind, agent, observations):
        return
    method = registered_methods()[name]
    snapshot = Snapshot(agent, observations)
    for spec in ("action", LAYER[kind]):
        try:
            first = explain(name, kind, agent, spec, observations)
        except NotApplicableError as err:  # a third-party method may not apply; built-ins are listed above
            pytest.skip(f"{name} on {kind}: {err}")
        snapshot.check()
        again = explain(name, kind, agent, spec, observations)
        snapshot.check()
        assert (first.method, first.kind) == (name, method.kind)
        assert first.target == parse_target(spec, agent).spec
        values = first.values
        assert values.is_floating_point() and torch.isfinite(values).all()
        assert not values.requires_grad
        assert torch.equal(values, again.values), "same options and seed gave a different result"
        if method.kind == "attribution":
            assert values.shape == observations.shape
        else:
            assert values.shape[1:] == observations.shape[1:] and len(values) >= 1
            space = agent.observation_space
            low = [-math.inf if v is None else v for v in space["low"]]
            high = [math.inf if v is None else v for v in space["high"]]
            flat = values.flatten(1) if len(low) > 1 else values.flatten()[:, None]
            assert (flat >= torch.tensor(low) - 1e-4).all() and (flat <= torch.tensor(high) + 1e-4).all()
        assert_json_able(first.extras)


def assert_json_able(extras):
    import json

    json.dumps(extras, allow_nan=False)


@pytest.mark.parametrize("name", METHODS)
def test_state_restored_after_invalid_target(name, setup):
    """A target that passes no validation fails inside the computation, after hooks are set."""
    kind, agent, observations = setup
    if not applicable_or_skip(name, kind, agent, observations):
        return
    layer = parse_target(LAYER[kind], agent).layer
    bad = Target(spec=f"{layer}:100000", kind="layer", layer=layer, channel=100_000)
    snapshot = Snapshot(agent, observations)
    with pytest.raises(Exception):  # noqa: B017 - any error will do; the contract is what it leaves behind
        explain(name, kind, agent, bad, observations)
    snapshot.check()


@pytest.mark.parametrize("when", ["first", "second", "last"])
@pytest.mark.parametrize("name", METHODS)
def test_state_restored_after_failing_forward(name, setup, monkeypatch, when):
    """The network's forward raises on its first, second or last call during ``explain``."""
    kind, agent, observations = setup
    if not applicable_or_skip(name, kind, agent, observations):
        return
    network, calls, fail_at = agent.network, [], [math.inf]
    original = type(network).forward

    def counting_forward(obs):
        calls.append(1)
        if len(calls) >= fail_at[0]:
            raise RuntimeError("injected failure")
        return original(network, obs)

    snapshot = Snapshot(agent, observations)
    with monkeypatch.context() as patch:
        patch.setattr(network, "forward", counting_forward)
        explain(name, kind, agent, "action", observations)  # count the calls of a successful run
        fail_at[0] = {"first": 1, "second": min(2, len(calls)), "last": len(calls)}[when]
        calls.clear()
        with pytest.raises(RuntimeError, match="injected failure"):
            explain(name, kind, agent, "action", observations)
    snapshot.check()


def test_every_builtin_is_registered():
    assert {"saliency", "perturbation", "integrated-gradients", "gradcam", "occlusion", "deeplift",
            "gradient-shap", "optim"} <= set(METHODS)
