"""Run several explanation methods on the same targets and the same real observations.

``compare(agent, methods=["saliency", "optim"])`` returns a ``ComparisonResult``: one ``Cell`` per
(method, target) holding the explanation or the error, the seconds it took and summary statistics.
``interpret_rl.report.write_report`` turns it into a PNG grid, an HTML page and results.json.

A method that raises does not stop the others: its cells record the error. After every call the
model is checked against a snapshot taken before it (same weights bit for bit, no torch hook added,
same train/eval mode) and so are the observations; a method that changed them gets an error in its
cell and the snapshot is restored, so the methods after it still see the model as it was found.

A method may also offer ``explain_many(agent, targets, observations) -> list[Explanation]`` (one per
target, in order) to explain all targets in one pass; compare uses it when present (optim optimises
all targets as one batch, several times faster than one call per target).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from interpret_rl.methods import (Explanation, Method, build_method, get_method, method_plugins,
                                  registered_methods, seeded_rng)
from interpret_rl.observations import check_observations, collect_observations
from interpret_rl.targets import Target, chosen_actions, default_targets, parse_target

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
VERSIONED_PACKAGES = ("interpret-rl", "torch", "captum", "torch-lucent", "numpy", "gymnasium", "ale-py")


@dataclass
class MethodInfo:
    """Identity of a compared method: who registered it and with which options."""

    name: str
    kind: str
    plugin: str
    description: str
    options: dict


@dataclass
class Cell:
    """One method on one target, over all observations.

    :ivar explanation: ``None`` when the method failed; else its ``values`` are ``(B, *obs_shape)``
        (attribution) or ``(S, *obs_shape)`` (synthesis).
    :ivar error: ``"TypeName: first line of the message"`` when it failed.
    :ivar seconds: wall time of the call; for a method that explained all targets in one call
        (``batched``), that call's time divided evenly among the targets.
    :ivar stats: ``min``, ``max``, ``mean``, ``abs_mean`` of the values, and for stacked frames
        ``abs_mean_per_frame`` (one number per channel, oldest frame first).
    """

    method: str
    target: str
    seconds: float
    explanation: Explanation | None = None
    error: str | None = None
    stats: dict = field(default_factory=dict)
    batched: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {"method": self.method, "target": self.target, "ok": self.ok, "error": self.error,
                "seconds": self.seconds, "batched": self.batched, "stats": self.stats,
                "extras": self.explanation.extras if self.explanation is not None else {}}


@dataclass
class ComparisonResult:
    """Everything a report needs. ``cells[(method name, target spec)]``.

    :ivar observations: ``(B, *obs_shape)`` float32, what every method explained.
    :ivar policy: per observation the chosen action's name and the value (for row labels).
    """

    agent_name: str
    env_id: str
    model_sha256: str | None
    observations: torch.Tensor
    observation_source: str
    observation_space: dict
    targets: list[Target]
    methods: list[MethodInfo]
    cells: dict[tuple[str, str], Cell]
    policy: list[dict]
    seed: int
    options: dict[str, dict[str, str]]
    versions: dict[str, str]
    created: str

    def cell(self, method: str, target: str) -> Cell:
        return self.cells[(method, target)]

    def method_seconds(self, method: str) -> float:
        return sum(c.seconds for (m, _), c in self.cells.items() if m == method)

    def method_errors(self, method: str) -> list[str]:
        return [c.error for (m, _), c in self.cells.items() if m == method and c.error]

    def to_dict(self) -> dict:
        """JSON-able summary (no tensors): settings, per method and target the seconds and stats."""
        return {
            "agent": self.agent_name, "env_id": self.env_id, "model_sha256": self.model_sha256,
            "seed": self.seed, "created": self.created, "versions": self.versions,
            "observations": {"count": len(self.observations), "shape": list(self.observations.shape[1:]),
                             "source": self.observation_source, "policy": self.policy},
            "targets": [{"spec": t.spec, "label": t.label, "kind": t.kind} for t in self.targets],
            "methods": [dataclasses.asdict(m) for m in self.methods],
            "options": self.options,
            "summary": {m.name: {"seconds": self.method_seconds(m.name), "failed_targets": len(self.method_errors(m.name))}
                        for m in self.methods},
            "results": {m.name: {t.spec: self.cells[(m.name, t.spec)].to_dict() for t in self.targets}
                        for m in self.methods},
        }


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def prepare_methods(methods: Sequence[str | Method], options: dict[str, dict[str, Any]] | None = None) -> list[Method]:
    """Names or instances -> instances, options applied (``{"optim": {"steps": "64"}}``). Raises before
    any work: ``UnknownMethodError`` for a name, ``ValueError`` for a bad option or a repeated method."""
    options = dict(options or {})
    instances = [m if isinstance(m, Method) else build_method(m, options.get(m)) for m in methods]
    names = [m.name for m in instances]
    if not names:
        raise ValueError("no method to compare")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"method {', '.join(repeated)} given more than once")
    for name in options:
        if any(isinstance(m, Method) and m.name == name for m in methods):
            raise ValueError(f"options given for {name}, which was passed as an instance: set them on its Options")
        if name not in names:
            get_method(name)  # a typo'd method name gets the "did you mean" error
            raise ValueError(f"options given for {name}, which is not among the compared methods ({', '.join(names)})")
    return instances


def prepare_targets(agent, targets: Sequence[str | Target] | None) -> list[Target]:
    """Specs or ``Target`` objects -> targets (default: every action, then the value); ``TargetError``."""
    if targets is None:
        return default_targets(agent)
    parsed = [t if isinstance(t, Target) else parse_target(t, agent) for t in targets]
    if not parsed:
        raise ValueError("no target to explain")
    specs = [t.spec for t in parsed]
    return [t for i, t in enumerate(parsed) if t.spec not in specs[:i]]  # "action:1" and "action:FIRE" are one


def values_stats(values: torch.Tensor) -> dict:
    """Summary numbers of ``(N, *obs_shape)`` values; per-frame share for ``(N, C, H, W)``."""
    v = values.detach().double().cpu()
    stats = {"min": float(v.min()), "max": float(v.max()), "mean": float(v.mean()), "abs_mean": float(v.abs().mean())}
    if v.dim() == 4:
        stats["abs_mean_per_frame"] = [float(x) for x in v.abs().mean(dim=(0, 2, 3))]
    return stats


def _error_text(err: BaseException) -> str:
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {message}" if message else type(err).__name__


class ModelGuard:
    """A snapshot of the network (weights, hook ids, mode) that can report and undo changes."""

    def __init__(self, network: torch.nn.Module):
        self.network = network
        self.state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        self.hooks = {name: {d: set(getattr(m, d, {})) for d in HOOK_DICTS} for name, m in network.named_modules()}
        self.training = network.training

    def changes(self) -> list[str]:
        found = []
        current = self.network.state_dict()
        changed = [k for k, v in self.state.items() if k not in current or not torch.equal(current[k], v)]
        if changed:
            found.append(f"changed weights {', '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}")
        for name, module in self.network.named_modules():
            for d in HOOK_DICTS:
                added = set(getattr(module, d, {})) - self.hooks.get(name, {}).get(d, set())
                if added:
                    found.append(f"left {len(added)} torch {d.strip('_').replace('_', ' ')[:-1]} on {name or 'the network'}")
        if self.network.training != self.training:
            found.append("switched the network's train/eval mode")
        return found

    def restore(self) -> None:
        with torch.no_grad():
            self.network.load_state_dict(self.state)
        for name, module in self.network.named_modules():
            for d in HOOK_DICTS:
                hooks = getattr(module, d, None)
                if hooks is None:
                    continue
                for key in set(hooks) - self.hooks.get(name, {}).get(d, set()):
                    del hooks[key]
                    for companion in (f"{d}_with_kwargs", f"{d}_always_called"):  # torch's per-hook flags
                        getattr(module, companion, {}).pop(key, None)
        self.network.train(self.training)


def _check_values(kind: str, values: torch.Tensor, observations: torch.Tensor) -> str | None:
    """Why an explanation breaks the contract, or None."""
    obs_shape = tuple(observations.shape[1:])
    if not torch.is_tensor(values):
        return f"values must be a tensor, got {type(values).__name__}"
    if kind == "attribution" and tuple(values.shape) != tuple(observations.shape):
        return f"attribution of shape {tuple(values.shape)}, expected {tuple(observations.shape)}"
    if kind == "synthesis" and (values.dim() != len(obs_shape) + 1 or tuple(values.shape[1:]) != obs_shape):
        return f"synthesis of shape {tuple(values.shape)}, expected (S, {', '.join(map(str, obs_shape))})"
    if not torch.isfinite(values).all():
        return "values contain NaN or infinity"
    return None


def _run_method(agent, method: Method, targets: list[Target], observations: torch.Tensor, seed: int) -> list[Cell]:
    """One cell per target. A method offering ``explain_many(agent, targets, obs)`` (optim: all targets
    in one optimisation) is called once; otherwise ``explain`` once per target."""
    many = getattr(method, "explain_many", None)
    calls = [(targets, True)] if callable(many) and len(targets) > 1 else [([t], False) for t in targets]
    cells = []
    for group, batched in calls:
        guard = ModelGuard(agent.network)
        given = observations.clone()  # the method's own copy: a method that mutates it harms no other
        error, explanations = None, None
        start = time.perf_counter()
        try:
            with seeded_rng(seed, agent.device):
                explanations = many(agent, group, given) if batched else [method.explain(agent, group[0], given)]
            if len(explanations) != len(group):
                error = f"ContractError: {len(explanations)} explanations for {len(group)} targets"
        except Exception as err:  # one method's failure must not stop the comparison
            error = _error_text(err)
        seconds = (time.perf_counter() - start) / len(group)
        broken = guard.changes()
        if broken:
            guard.restore()
            error = error or f"ContractError: the method {'; '.join(broken)} (restored)"
        if not torch.equal(given, observations) or given.requires_grad:
            error = error or "ContractError: the method modified its input observations"
        for i, target in enumerate(group):
            cell = Cell(method=method.name, target=target.spec, seconds=seconds, error=error, batched=batched)
            if error is None:
                explanation = explanations[i]
                cell.error = _check_values(method.kind, explanation.values, observations)
                if cell.error is None:
                    cell.explanation = explanation
                    cell.stats = values_stats(explanation.values)
                else:
                    cell.error = f"ContractError: {cell.error}"
            cells.append(cell)
    return cells


def _method_info(method: Method) -> MethodInfo:
    registered = type(method) is registered_methods().get(method.name)
    plugin = method_plugins().get(method.name) if registered else None
    options = dataclasses.asdict(method.options) if dataclasses.is_dataclass(method.options) else {}
    return MethodInfo(name=method.name, kind=method.kind, plugin=plugin or f"{type(method).__module__} (not registered)",
                      description=method.description, options=options)


def _policy_summary(agent, observations: torch.Tensor) -> list[dict]:
    with torch.no_grad():
        logits, value = agent.network(observations)
    actions = chosen_actions(agent, observations).tolist()
    probs = torch.softmax(logits, -1).max(-1).values.tolist()
    return [{"action": agent.action_meanings[a], "probability": round(p, 4), "value": round(float(v), 4)}
            for a, p, v in zip(actions, probs, value.tolist())]


def compare(agent, methods: Sequence[str | Method], targets: Sequence[str | Target] | None = None,
            observations: torch.Tensor | None = None, frames: int = 3, seed: int = 0,
            options: dict[str, dict[str, Any]] | None = None) -> ComparisonResult:
    """Explain the same targets on the same observations with every method.

    :param methods: registered names (``"saliency"``) or ``Method`` instances.
    :param targets: target specs (``"action:FIRE"``, ``"value"``, ``"conv3:5"``); default: every
        action's logit, then the value.
    :param observations: ``(B, *agent.observation_shape)``; default: ``frames`` observations
        collected by playing the agent's policy with ``seed``.
    :param frames: how many observations to collect when none are given (at least 1).
    :param seed: seeds the observation collection and torch's/numpy's global RNGs around every call.
    :param options: per method, option values as text or typed: ``{"optim": {"steps": "64"}}``.
    Unknown methods or targets, bad options and wrongly shaped observations raise before any work.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    instances = prepare_methods(methods, options)
    parsed = prepare_targets(agent, targets)
    if observations is None:
        observations = collect_observations(agent, frames, seed=seed)
        source = f"collected: {frames} observations playing {agent.env_id} with the stochastic policy, seed {seed}"
    else:
        source = "given by the caller"
    observations = check_observations(observations, agent.observation_shape).to(agent.device)
    network = agent.network
    was_training = network.training
    network.eval()
    try:
        cells = {}
        for method in instances:
            for cell in _run_method(agent, method, parsed, observations, seed):
                cells[(cell.method, cell.target)] = cell
        policy = _policy_summary(agent, observations)
    finally:
        network.train(was_training)
    files = agent.meta.get("files", {}) if isinstance(agent.meta, dict) else {}
    return ComparisonResult(
        agent_name=agent.name or "unnamed agent", env_id=agent.env_id, model_sha256=files.get("model.safetensors"),
        observations=observations.detach().cpu(), observation_source=source,
        observation_space=dict(agent.observation_space), targets=parsed,
        methods=[_method_info(m) for m in instances], cells=cells, policy=policy, seed=seed,
        options={k: {f: str(v) for f, v in opts.items()} for k, opts in (options or {}).items()},
        versions=package_versions(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


# --- explanations across training ------------------------------------------------------------------


class CheckpointError(ValueError):
    """A model without weight snapshots, or a checkpoint step it does not have."""


@dataclass
class CheckpointComparison:
    """The same observations and targets explained at several training checkpoints of one model.

    :ivar steps: training steps of the compared checkpoints, oldest first.
    :ivar results: one ``ComparisonResult`` per checkpoint, in the order of ``steps``; each names the
        checkpoint (``agent_name`` "NAME at step N") and its weight file's sha256.
    :ivar observations: ``(B, *obs_shape)``, collected once with the final model (or given).
    """

    model: str
    env_id: str
    steps: list[int]
    files: list[str]
    results: list[ComparisonResult]
    observations: torch.Tensor
    observation_source: str
    targets: list[Target]
    seed: int

    @property
    def methods(self) -> list[MethodInfo]:
        return self.results[0].methods

    def to_dict(self) -> dict:
        """JSON-able: per checkpoint its step, file, sha256, policy and per method and target the cell."""
        return {
            "model": self.model, "env_id": self.env_id, "seed": self.seed, "steps": self.steps,
            "observations": {"count": len(self.observations), "source": self.observation_source},
            "targets": [{"spec": t.spec, "label": t.label, "kind": t.kind} for t in self.targets],
            "checkpoints": [
                {"step": step, "file": f"checkpoints/{file}", "sha256": result.model_sha256, "policy": result.policy,
                 "results": result.to_dict()["results"]}
                for step, file, result in zip(self.steps, self.files, self.results)],
        }


def select_checkpoints(name: str, checkpoints: str | Sequence[int] = "all") -> list[tuple[int, str]]:
    """``(step, file name)`` of the chosen weight snapshots of model ``name``, oldest first.

    :param checkpoints: ``"all"``, steps as ``"400,1200"`` or a list of ints.
    ``CheckpointError`` when the model keeps no snapshots or lacks a step (the message lists them).
    """
    from interpret_rl import registry

    available = registry.snapshots(name)
    if not available:
        raise CheckpointError(f"model {name!r} keeps no weight snapshots; train one that does with "
                              f"`interpret-rl train --keep-checkpoints`")
    if isinstance(checkpoints, str) and checkpoints.strip().lower() == "all":
        return available
    if isinstance(checkpoints, str):
        texts = [t.strip() for t in checkpoints.split(",") if t.strip()]
        bad = [t for t in texts if not t.isdigit()]
        if bad or not texts:
            raise CheckpointError(f"checkpoints must be 'all' or steps like 400,1200, got {checkpoints!r}")
        checkpoints = [int(t) for t in texts]
    by_step = dict(available)
    missing = [step for step in checkpoints if step not in by_step]
    if missing:
        raise CheckpointError(f"model {name!r} has no snapshot at step {', '.join(map(str, missing))}; "
                              f"it has: {', '.join(str(s) for s, _ in available)}")
    return [(step, by_step[step]) for step in sorted(set(checkpoints))]


def _pinned_targets(final, targets: list[Target], observations: torch.Tensor) -> list[Target]:
    """``action`` (each model's own most likely action) becomes the final model's choice when it is
    the same on every observation, so every checkpoint explains the same logit."""
    if not any(t.kind == "chosen-action" for t in targets):
        return targets
    actions = chosen_actions(final, observations.to(final.device)).unique()
    if len(actions) != 1:
        return targets  # no one action to pin; each checkpoint explains its own choice
    pinned = parse_target(f"action:{final.action_meanings[int(actions[0])]}", final)
    return prepare_targets(final, [pinned if t.kind == "chosen-action" else t for t in targets])


def compare_checkpoints(name: str, methods: Sequence[str], targets: Sequence[str | Target] | None = None,
                        observations: torch.Tensor | None = None, frames: int = 1, seed: int = 0,
                        options: dict[str, dict[str, Any]] | None = None, checkpoints: str | Sequence[int] = "all",
                        device: str = "cpu") -> CheckpointComparison:
    """Explain the same observations and targets with every method at each kept checkpoint of ``name``.

    The observations are collected once, by the final model (``frames`` of them, seeded), so every
    checkpoint is judged on states a trained agent reaches. A target ``action`` is pinned to the
    final model's most likely action when that is one action on every observation (always so with
    one frame). Arguments as for ``compare``; ``checkpoints`` as for ``select_checkpoints``.
    Unknown models, methods, targets, steps and bad options raise before any work.
    """
    from interpret_rl import registry

    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    chosen = select_checkpoints(name, checkpoints)
    prepare_methods(methods, options)  # fail on a bad method or option before loading anything
    final = registry.load_agent(name, device=device)
    parsed = prepare_targets(final, targets)
    if observations is None:
        observations = collect_observations(final, frames, seed=seed)
        source = (f"collected once with the final model ({final.steps_trained:,} steps): {frames} observations "
                  f"playing {final.env_id} with the stochastic policy, seed {seed}")
    else:
        source = "given by the caller"
    observations = check_observations(observations, final.observation_shape)
    parsed = _pinned_targets(final, parsed, observations)
    results = []
    for step, file in chosen:
        agent = registry.load_agent(name, device=device, snapshot=file)
        result = compare(agent, methods, targets=parsed, observations=observations, seed=seed, options=options)
        result.agent_name = f"{final.name} at step {step:,}"
        result.model_sha256 = agent.meta["files"].get(f"checkpoints/{file}")  # the snapshot's, not the final weights'
        result.observation_source = source
        results.append(result)
    return CheckpointComparison(model=final.name, env_id=final.env_id, steps=[s for s, _ in chosen],
                                files=[f for _, f in chosen], results=results, observations=observations.cpu(),
                                observation_source=source, targets=parsed, seed=seed)
