"""Contract checks for plugin authors: the checks interpret-rl runs on its own methods, metrics and
networks, shipped so that a plugin runs them in its own tests, outside this repository::

    from interpret_rl.testing import check_architecture, check_method, check_metric

    def test_my_method_keeps_the_contract():
        check_method("my-method")        # a registered name (the plugin installed) or the class

Each check raises ``ContractError`` (an ``AssertionError``, so pytest shows it as a failure)
naming the rule broken; docs/methods-api.md states every rule. They run on two small agents with
seeded weights (``sample_agents``): a Breakout-shaped CNN (4x84x84 uint8 frames, 4 actions) and a
CartPole-shaped MLP (4 floats, 2 actions), no environment needed. Registering a plugin without
installing it: ``interpret_rl.plugin_manager.get_plugin_manager().register(module, name=...)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")


class ContractError(AssertionError):
    """A method, metric or network breaks a rule of docs/methods-api.md."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


@dataclass
class SampleAgent:
    """An agent to check against, and observations shaped as its environment gives them."""

    label: str
    agent: Any
    observations: Any


def make_cnn_agent(seed: int = 0):
    """A Breakout-shaped agent (4x84x84 uint8 input, 4 actions) with seeded random weights."""
    from interpret_rl.agent import Agent
    from interpret_rl.networks import NatureCNNActorCritic

    torch.manual_seed(seed)
    args = {"observation_shape": [4, 84, 84], "n_actions": 4}
    return Agent(
        network=NatureCNNActorCritic(**args), env_id="ALE/Breakout-v5", env_settings={}, architecture="nature-cnn",
        architecture_args=args,
        observation_space={"type": "Box", "shape": [4, 84, 84], "dtype": "uint8", "low": [0.0], "high": [255.0]},
        action_space={"type": "Discrete", "n": 4}, action_meanings=["NOOP", "FIRE", "RIGHT", "LEFT"],
        name="test-cnn")


def make_mlp_agent(seed: int = 0):
    """A CartPole-shaped agent (4 floats in, 2 actions) with seeded random weights."""
    from interpret_rl.agent import Agent
    from interpret_rl.networks import MLPActorCritic

    torch.manual_seed(seed)
    high = [4.8, None, 0.41887903, None]
    args = {"observation_shape": [4], "n_actions": 2}
    return Agent(
        network=MLPActorCritic(**args), env_id="CartPole-v1", env_settings={}, architecture="mlp",
        architecture_args=args,
        observation_space={"type": "Box", "shape": [4], "dtype": "float32",
                           "low": [None if h is None else -h for h in high], "high": high},
        action_space={"type": "Discrete", "n": 2}, action_meanings=["LEFT", "RIGHT"], name="test-mlp")


def atari_observations():
    """Three frame stacks ``(3, 4, 84, 84)`` with a little structure (a bright square moving right)."""
    import numpy as np

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 40, size=(3, 4, 84, 84)).astype(np.float32)
    for i in range(3):
        for f in range(4):
            x = 10 + 5 * f + 3 * i
            frames[i, f, 40:46, x:x + 6] = 200.0
    return torch.tensor(frames)


def sample_agents() -> list[SampleAgent]:
    """The CNN agent with two uint8 frame stacks, and the MLP agent with three float vectors that
    require grad (a method must leave that flag as it found it)."""
    vectors = torch.tensor([[0.1, -0.5, 0.05, 0.8], [-1.0, 0.3, -0.1, -0.2], [0.5, 1.5, 0.2, 0.0]])
    return [SampleAgent("cnn", make_cnn_agent(), atari_observations()[:2].to(torch.uint8)),
            SampleAgent("mlp", make_mlp_agent(), vectors.requires_grad_(True))]


class Snapshot:
    """Everything a method or metric must leave as it found it: weights bit for bit, no ``.grad``
    written, no torch hook and no attribute added to any module, the observations' values, dtype
    and ``requires_grad``."""

    def __init__(self, agent, observations):
        self.network, self.observations = agent.network, observations
        self.weights = {k: v.clone() for k, v in agent.network.state_dict().items()}
        self.attributes = [set(vars(m)) for m in agent.network.modules()]
        self.values, self.requires_grad = observations.detach().clone(), observations.requires_grad

    def check(self, who: str) -> None:
        for module in self.network.modules():
            _require(not module._forward_hooks and not module._forward_pre_hooks,
                     f"{who} left a forward hook on {module}")
            _require(not module._backward_hooks and not module._backward_pre_hooks,
                     f"{who} left a backward hook on {module}")
        _require([set(vars(m)) for m in self.network.modules()] == self.attributes, f"{who} added module attributes")
        state = self.network.state_dict()
        _require(state.keys() == self.weights.keys() and all(torch.equal(state[k], v) for k, v in self.weights.items()),
                 f"{who} changed the weights")
        _require(all(p.grad is None for p in self.network.parameters()), f"{who} wrote a parameter's .grad")
        _require(torch.equal(self.observations.detach(), self.values) and self.observations.dtype == self.values.dtype,
                 f"{who} modified its input observations")
        _require(self.observations.requires_grad == self.requires_grad and self.observations.grad is None,
                 f"{who} changed requires_grad or .grad of its input observations")


def _json_safe(value: Any, who: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ContractError(f"{who}: extras/details must be JSON-safe numbers, strings and lists ({err})") from None


def _instance(registry, entry, options: dict[str, Any] | None):
    from interpret_rl.methods import build_options

    if isinstance(entry, str):
        return registry.build(entry, options)
    return entry(build_options(registry.kind, entry.name, entry.Options, options))


def first_layer(agent) -> str:
    """The first convolution or linear layer of the agent's network (a ``layer`` target's module)."""
    from torch import nn

    return next(name for name, module in agent.network.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear)))


def check_method(method, options: dict[str, Any] | None = None,
                 agents: list[SampleAgent] | None = None) -> dict[str, str]:
    """Check a method (registered name or class) on each sample agent, for the ``action`` target
    and a unit of the first layer. Returns agent label -> ``"ok"`` or ``"not applicable: why"``.

    :param options: option values, as text or typed (``{"steps": "4"}``): cheap settings keep the
        checks quick.
    """
    from interpret_rl.methods import METHODS, NotApplicableError
    from interpret_rl.targets import Target, parse_target

    _check_class(METHODS, method)
    outcomes = {}
    for sample in agents or sample_agents():
        agent, observations = sample.agent, sample.observations
        who = f"method {getattr(method, 'name', method)} on the {sample.label} agent"
        snapshot = Snapshot(agent, observations)

        def explain(target, agent=agent, observations=observations):
            target = parse_target(target, agent) if isinstance(target, str) else target
            return _instance(METHODS, method, options).explain(agent, target, observations)

        try:
            explain("action")
        except NotApplicableError as err:  # allowed; it must still leave everything as found
            snapshot.check(who)
            outcomes[sample.label] = f"not applicable: {err}"
            continue
        snapshot.check(who)
        layer = first_layer(agent)
        for spec in ("action", f"{layer}:0"):
            _check_explanation(who, agent, spec, observations, explain(spec), explain(spec))
            snapshot.check(who)
        bad = Target(spec=f"{layer}:100000", kind="layer", layer=layer, channel=100_000)
        try:
            explain(bad)
        except Exception:  # noqa: BLE001 - any error will do; what matters is what it leaves behind
            pass
        else:
            raise ContractError(f"{who}: explained the invalid target {bad.spec} instead of raising")
        snapshot.check(f"{who}, raising on an invalid target,")
        _check_failing_forward(who, agent, explain, snapshot)
        outcomes[sample.label] = "ok"
    return outcomes


def _check_class(registry, entry) -> None:
    """A class must pass the registry's own check (name, description, kind, Options dataclass)."""
    if not isinstance(entry, str):
        try:
            registry.check(entry, "under test")
        except TypeError as err:
            raise ContractError(str(err)) from None


def _check_explanation(who: str, agent, spec: str, observations, first, again) -> None:
    from interpret_rl.targets import parse_target

    kind = first.kind
    _require((first.method, first.target) == (first.method, parse_target(spec, agent).spec),
             f"{who}: Explanation.target must be the target's spec {parse_target(spec, agent).spec!r}")
    values = first.values
    _require(torch.is_tensor(values) and values.is_floating_point(), f"{who}: values must be a float tensor")
    _require(bool(torch.isfinite(values).all()), f"{who}: values hold NaN or infinity ({spec})")
    _require(not values.requires_grad, f"{who}: values must be detached")
    _require(torch.equal(values, again.values), f"{who}: the same options and seed gave a different result ({spec})")
    if kind == "attribution":
        _require(values.shape == observations.shape,
                 f"{who}: an attribution is shaped like the observations {tuple(observations.shape)}, "
                 f"not {tuple(values.shape)}")
    else:
        _require(values.dim() == observations.dim() and values.shape[1:] == observations.shape[1:] and len(values),
                 f"{who}: a synthesis is (S, *observation_shape), not {tuple(values.shape)}")
        space = agent.observation_space
        low = [-math.inf if v is None else v for v in space["low"]]
        high = [math.inf if v is None else v for v in space["high"]]
        flat = values.flatten(1) if len(low) > 1 else values.flatten()[:, None]
        _require(bool((flat >= torch.tensor(low) - 1e-4).all() and (flat <= torch.tensor(high) + 1e-4).all()),
                 f"{who}: a synthesis must lie within the observation space's bounds")
    _json_safe(first.extras, who)


def _check_failing_forward(who: str, agent, explain: Callable, snapshot: Snapshot) -> None:
    """The network's forward raises on its first, second or last call: the error must come out of
    ``explain`` and everything be as found. A method that never calls the network fails here."""
    network, calls, fail_at = agent.network, [], [math.inf]
    original = type(network).forward

    def counting_forward(obs, *args, **kwargs):
        calls.append(1)
        if len(calls) >= fail_at[0]:
            raise RuntimeError("injected failure")
        return original(network, obs, *args, **kwargs)

    network.forward = counting_forward
    try:
        explain("action")
        _require(len(calls) > 0, f"{who}: never called the network (an explanation of the agent must)")
        for fail in sorted({1, min(2, len(calls)), len(calls)}):
            fail_at[0] = fail
            calls.clear()
            try:
                explain("action")
            except RuntimeError as err:
                _require("injected failure" in str(err), f"{who}: replaced the network's error by {err!r}")
            else:
                raise ContractError(f"{who}: swallowed an error of the network's forward call {fail}")
    finally:
        del network.forward
    snapshot.check(f"{who}, when the network raised,")


def check_metric(metric, method: str = "saliency", options: dict[str, Any] | None = None,
                 agents: list[SampleAgent] | None = None, deterministic: bool = True,
                 ground_truth: Callable | None = None) -> dict[str, str]:
    """Check a metric (registered name or class) scoring ``method``'s explanation of ``action`` on
    each sample agent. Returns agent label -> ``"ok"`` or ``"skipped: why"`` (a metric that
    ``needs`` ground truth is skipped on agents without it, as ``evaluate_metrics`` does).

    :param deterministic: the same seed must give the same value and details (not for timings).
    :param ground_truth: ``ground_truth(agent, observations)`` -> ``objects.GroundTruth`` or None,
        for metrics that ``need`` it (``interpret_rl.observations.collect_with_ground_truth``
        collects real observations with theirs; give those as the agent's observations).
    """
    from interpret_rl.methods import METHODS
    from interpret_rl.metrics import METRICS, MetricResult, evaluate_metrics
    from interpret_rl.targets import parse_target

    _check_class(METRICS, metric)
    outcomes = {}
    for sample in agents or sample_agents():
        agent, observations = sample.agent, sample.observations
        scorer = _instance(METRICS, metric, options)
        who = f"metric {scorer.name} on the {sample.label} agent"
        explainer = METHODS.build(method) if isinstance(method, str) else method
        target = parse_target("action", agent)
        explanation = explainer.explain(agent, target, observations)
        truth = ground_truth(agent, observations) if scorer.needs and ground_truth is not None else None
        if scorer.needs and truth is None:
            outcomes[sample.label] = "skipped: " + str(evaluate_metrics(agent, explainer, target, observations,
                                                                       explanation, [scorer])[scorer.name])
            continue
        extra = {"ground_truth": truth} if truth is not None else {}
        snapshot = Snapshot(agent, observations)
        first = scorer.evaluate(agent, explainer, target, observations, explanation, **extra)
        snapshot.check(who)
        again = evaluate_metrics(agent, explainer, target, observations, explanation,
                                 [_instance(METRICS, metric, options)], ground_truth=truth)[scorer.name]
        snapshot.check(who)
        _require(isinstance(first, MetricResult), f"{who}: evaluate must return a MetricResult")
        _require(isinstance(again, MetricResult), f"{who}: failed under evaluate_metrics: {again}")
        _require(first.metric == scorer.name, f"{who}: MetricResult.metric must be {scorer.name!r}")
        _require(first.higher_is_better == scorer.higher_is_better, f"{who}: higher_is_better differs from the class")
        _require(isinstance(first.value, float) and math.isfinite(first.value), f"{who}: value must be a finite float")
        _json_safe(first.to_dict(), who)
        if deterministic:
            _require(again.value == first.value and again.details == first.details,
                     f"{who}: the same seed gave a different value")
        outcomes[sample.label] = "ok"
    return outcomes


def check_architecture(architecture, observation_shape=(4,), n_actions: int = 2, **architecture_args) -> None:
    """Check a network (registered name or class) built as every network is:
    ``NetworkClass(observation_shape=[...], n_actions=N, **architecture_args)``. Its forward maps
    ``(B, *observation_shape)`` to ``(logits (B, N), value (B,))``, finite; module names are
    unique; its weights load into a second instance (what saving and loading a model does)."""
    from interpret_rl.architectures import ARCHITECTURES

    network_class = ARCHITECTURES.get(architecture) if isinstance(architecture, str) else architecture
    args = {"observation_shape": list(observation_shape), "n_actions": n_actions, **architecture_args}
    who = f"architecture {architecture if isinstance(architecture, str) else network_class.__name__}"
    torch.manual_seed(0)
    network = network_class(**args)
    _require(isinstance(network, torch.nn.Module), f"{who}: must build a torch.nn.Module")
    observations = torch.rand(3, *observation_shape)
    with torch.no_grad():
        outputs = network(observations)
    _require(isinstance(outputs, tuple) and len(outputs) == 2, f"{who}: forward must return (logits, value)")
    logits, value = outputs
    _require(tuple(logits.shape) == (3, n_actions),
             f"{who}: logits must be (B, {n_actions}), not {tuple(logits.shape)}")
    _require(tuple(value.shape) == (3,), f"{who}: value must be (B,), not {tuple(value.shape)}")
    _require(bool(torch.isfinite(logits).all() and torch.isfinite(value).all()), f"{who}: outputs must be finite")
    twin = network_class(**args)
    twin.load_state_dict(network.state_dict())
    with torch.no_grad():
        _require(torch.equal(twin(observations)[0], logits), f"{who}: its state_dict does not rebuild the network")
