"""Several agents side by side (``interpret-rl compare --models a,b,c``; ``compare_agents``).

Every method explains every agent on the same observations, so the maps can be set next to each
other: the states are pooled from the agents' own play (an equal share from each agent's game,
with the emulator's ground truth in ALE games) or given. On top of one ``ComparisonResult`` per
agent (``compare.compare``, with any metrics, e.g. the ground-truth ``objects``, ``pointing``,
``interventions``) this module measures what differs between the agents:

* ``frame_share``: per agent and method, the share of the map's |mass| on each stacked frame,
  oldest first (sums to 1 per observation): which frames each algorithm reads;
* ``agreement``: per method and pair of agents, Spearman's rank correlation of their |maps| on the
  same observation (all stacked frames flattened), averaged over the targets;
* ``cka``: linear CKA (Kornblith et al. 2019) between the agents' penultimate representations (the
  input of the head that produces the outputs: ``policy`` for an actor-critic, ``q`` for a
  Q-network) on the same observations, beside its level for shuffled rows (``similarity.cka_chance``).

Every mean over observations comes with its 95 % percentile bootstrap interval
(``metrics.bootstrap_interval``), resampling observations; CKA, which is no mean, with a jackknife
interval (``similarity.cka_interval``: duplicated rows of a bootstrap resample inflate it).
Agents must share the env and the observation shape; ``ValueError`` naming both otherwise.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from interpret_rl.compare import (
    ComparisonResult,
    compare,
    package_versions,
    prepare_methods,
    prepare_metrics,
    prepare_targets,
)
from interpret_rl.metrics import MetricResult, bootstrap_interval
from interpret_rl.observations import SAMPLES, check_observations, collect_with_ground_truth
from interpret_rl.similarity import cka_chance, cka_interval, linear_cka, rank_correlation
from interpret_rl.targets import TargetError

HEADS = ("policy", "q")  # the module producing the outputs: actor-critic, Q-network
# Two centred inputs are one vector and its negative in any representation, so CKA on 2 states is 1
# for any two agents: it says something from 3 states on (n/a below).
MIN_CKA_OBSERVATIONS = 3


@dataclass
class AgentInfo:
    """Who an agent is, from its meta.json: name, algorithm, steps trained and its recorded score."""

    name: str
    algo: str
    steps: int
    score: str
    sha256: str | None

    @classmethod
    def of(cls, agent) -> AgentInfo:
        meta = agent.meta if isinstance(agent.meta, dict) else {}
        return cls(name=agent.name or "unnamed agent", algo=agent.algo, steps=int(agent.steps_trained),
                   score=recorded_score(meta), sha256=meta.get("files", {}).get("model.safetensors"))


def recorded_score(meta: dict) -> str:
    """The score meta.json records, in words: the evaluation (mean +/- std over N games at step S) when
    there is one, else the training mean of the last 100 episodes; "none recorded" otherwise."""
    evaluation, training = meta.get("evaluation"), meta.get("training")
    if isinstance(evaluation, dict) and "mean" in evaluation:
        at = f" at step {evaluation['steps_trained']:,}" if "steps_trained" in evaluation else ""
        return (f"{evaluation['mean']:.1f} +/- {evaluation.get('std', float('nan')):.1f} "
                f"({evaluation.get('episodes', '?')} evaluation games{at})")
    if isinstance(training, dict) and "mean_return_100" in training:
        return f"{training['mean_return_100']:.2f} (training: mean of the last 100 episodes)"
    return "none recorded"


@dataclass
class AgentComparison:
    """Several agents explained on the same observations. ``results[k]`` belongs to ``agents[k]``.

    :ivar origins: per observation, whose play it comes from (``"given"`` for given ones).
    :ivar frame_share: agent name -> method -> ``{"mean": [F], "interval": [[lo, hi] | None] * F}``.
    :ivar agreement: method -> list of ``{"agents": [a, b], "mean", "interval", "observations"}``.
    :ivar cka: ``{"layer": {agent: module}, "pairs": [{"agents", "value", "interval", "chance"}]}``.
    """

    agents: list[AgentInfo]
    results: list[ComparisonResult]
    observations: torch.Tensor
    observation_source: str
    origins: list[str]
    env_id: str
    seed: int
    created: str
    ground_truth: Any = None
    frame_share: dict = field(default_factory=dict)
    agreement: dict = field(default_factory=dict)
    cka: dict = field(default_factory=dict)

    @property
    def methods(self):
        return self.results[0].methods

    @property
    def targets(self):
        return self.results[0].targets

    def object_summary(self) -> dict:
        """Agent -> method -> column -> ``{"mean", "interval", "chance", "observations"}`` from the
        ground-truth metrics each agent was scored with (see ``ground_truth_columns``)."""
        return {info.name: {m.name: ground_truth_columns(result, m.name) for m in self.methods}
                for info, result in zip(self.agents, self.results)}

    def to_dict(self) -> dict:
        return {
            "env_id": self.env_id, "seed": self.seed, "created": self.created, "versions": package_versions(),
            "agents": [vars(a) for a in self.agents],
            "observations": {"count": len(self.observations), "shape": list(self.observations.shape[1:]),
                             "source": self.observation_source, "origins": self.origins,
                             "facts": self.ground_truth.facts if self.ground_truth is not None else None},
            "targets": [{"spec": t.spec, "label": t.label, "kind": t.kind} for t in self.targets],
            "frame_share": self.frame_share, "agreement": self.agreement, "cka": self.cka,
            "objects": self.object_summary(),
            "per_agent": {info.name: result.to_dict() for info, result in zip(self.agents, self.results)},
        }


def check_same_game(agents: Sequence) -> None:
    """``ValueError`` unless every agent plays the same env with the same observation shape and actions."""
    first = agents[0]
    for other in agents[1:]:
        if other.env_id != first.env_id or other.observation_shape != first.observation_shape:
            raise ValueError(f"agents must share env and observation shape to be compared on the same states: "
                             f"{first.name} plays {first.env_id} {first.observation_shape}, "
                             f"{other.name} plays {other.env_id} {other.observation_shape}")
        if other.n_actions != first.n_actions:
            raise ValueError(f"agents must share the action set: {first.name} has {first.n_actions} actions, "
                             f"{other.name} has {other.n_actions}")


def pooled_observations(agents: Sequence, count: int, seed: int = 0, sample: str = "game"):
    """``count`` observations, an equal share (the first agents take the remainder) from each agent's own
    play with ``seed`` (``observations.collect_with_ground_truth``). Returns ``(observations, ground
    truth or None, origins)``; the ground truth's facts name the agent whose play each state is from."""
    from interpret_rl.objects import GroundTruth

    if count < len(agents):
        raise ValueError(f"{count} observations cannot be shared among {len(agents)} agents: ask for at least "
                         f"{len(agents)}")
    shares = [count // len(agents) + (1 if k < count % len(agents) else 0) for k in range(len(agents))]
    parts, truths, origins = [], [], []
    for agent, share in zip(agents, shares):
        observations, truth = collect_with_ground_truth(agent, share, seed=seed, sample=sample)
        parts.append(observations)
        truths.append(truth)
        origins += [agent.name] * share
        if truth is not None:
            for facts in truth.facts:
                facts["agent"] = agent.name
    if any(t is None for t in truths):
        return torch.cat(parts), None, origins
    merged = GroundTruth(truths[0].env_id, truths[0].settings, np.concatenate([t.ram for t in truths]),
                         np.concatenate([t.frame_valid for t in truths]), np.concatenate([t.states for t in truths]),
                         np.concatenate([t.stack_actions for t in truths]), [f for t in truths for f in t.facts])
    return torch.cat(parts), merged, origins


def penultimate(agent, observations: torch.Tensor) -> tuple[str, torch.Tensor]:
    """``(layer, (B, d))``: what the output head reads (its input), for each observation; the head
    is the first of ``HEADS`` the network has. ``ValueError`` naming the modules when there is none."""
    modules = dict(agent.network.named_modules())
    head = next((name for name in HEADS if name in modules), None)
    if head is None:
        raise ValueError(f"{agent.name}: no output head named {' or '.join(HEADS)} to read the penultimate "
                         f"representation from; modules: {', '.join(n for n in modules if n)}")
    captured = []
    handle = modules[head].register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            agent.network(observations.to(agent.device))
    finally:
        handle.remove()
    return f"input of {head}", captured[0].flatten(1).cpu()


def _mean_interval(values: Sequence[float | None]) -> dict:
    defined = [v for v in values if v is not None]
    return {"mean": float(np.mean(defined)) if defined else None, "interval": bootstrap_interval(values),
            "observations": len(defined)}


def per_observation_mean(rows: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Each observation's mean over the rows (targets); None where no row defines it."""
    means = []
    for values in zip(*rows):
        defined = [v for v in values if v is not None and np.isfinite(v)]
        means.append(float(np.mean(defined)) if defined else None)
    return means


def _maps(result: ComparisonResult, method: str) -> list[np.ndarray | None]:
    """|values| ``(B, *obs_shape)`` of ``method`` per target, in target order; None where the cell
    failed or is no attribution (kept in place, so two agents' lists pair the same targets)."""
    cells = [result.cells[(method, t.spec)] for t in result.targets]
    return [c.explanation.values.detach().abs().double().cpu().numpy()
            if c.ok and c.explanation.kind == "attribution" else None for c in cells]


def frame_shares(result: ComparisonResult, method: str) -> dict | None:
    """Share of |mass| per stacked frame (oldest first), mean over targets per observation, then
    over observations with intervals; None for observations that are no stack of frames (CartPole's
    vector; MinAtar's ``(C, 10, 10)`` are object channels, not frames) or no attribution."""
    from interpret_rl.envs import is_atari

    if not is_atari(result.env_id):
        return None
    maps = [m for m in _maps(result, method) if m is not None]
    if not maps or maps[0].ndim != 4:
        return None
    frames = maps[0].shape[1]
    per_target = []
    for values in maps:
        mass = values.sum(axis=(2, 3))  # (B, F)
        total = mass.sum(1, keepdims=True)
        per_target.append(np.where(total > 0, mass / np.where(total > 0, total, 1), np.nan))
    shares = [per_observation_mean([[None if np.isnan(v) else float(v) for v in share[:, f]] for share in per_target])
              for f in range(frames)]
    summaries = [_mean_interval(column) for column in shares]
    return {"mean": [s["mean"] for s in summaries], "interval": [s["interval"] for s in summaries],
            "observations": summaries[0]["observations"]}


def agreement(results: Sequence[ComparisonResult], names: Sequence[str], method: str) -> list[dict]:
    """Per pair of agents: Spearman's rho of their |maps| per observation (mean over targets), and as
    ``chance`` the same on mismatched observations (what the game's fixed layout alone gives)."""
    pairs = []
    maps = [_maps(result, method) for result in results]
    for (a, name_a), (b, name_b) in itertools.combinations(enumerate(names), 2):
        # the targets both agents have a map for (a method may fail on one agent's target only)
        both = [(ta, tb) for ta, tb in zip(maps[a], maps[b]) if ta is not None and tb is not None]
        if not both:
            pairs.append({"agents": [name_a, name_b], "mean": None, "interval": None, "observations": 0})
            continue
        rows = [[_rho(x, y) for x, y in zip(ta, tb)] for ta, tb in both]
        # the same pair on mismatched observations: how much two maps agree merely because every frame of
        # the game looks alike. Shifted by half the states, not one: neighbours come from the same stretch
        # of one game (a short game sampled densely gives near-identical neighbours)
        shift = len(both[0][0]) // 2
        mismatched = [[_rho(x, y) for x, y in zip(ta, np.roll(tb, shift, axis=0))] for ta, tb in both]
        chance = [v for v in per_observation_mean(mismatched) if v is not None] if len(both[0][0]) > 1 else []
        pairs.append({"agents": [name_a, name_b], **_mean_interval(per_observation_mean(rows)),
                      "chance": float(np.mean(chance)) if chance else None})
    return pairs


def _rho(x: np.ndarray, y: np.ndarray) -> float | None:
    return _none_if_nan(rank_correlation(torch.from_numpy(x), torch.from_numpy(y)))


def _none_if_nan(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def cka_pairs(agents: Sequence, observations: torch.Tensor, seed: int = 0) -> dict:
    """Linear CKA of each pair's penultimate representations, its jackknife interval and chance level
    (None with fewer than ``MIN_CKA_OBSERVATIONS`` observations)."""
    layers, features = {}, []
    for agent in agents:
        layers[agent.name], representation = penultimate(agent, observations)
        features.append(representation)
    pairs = []
    for (a, x), (b, y) in itertools.combinations(enumerate(features), 2):
        pair = {"agents": [agents[a].name, agents[b].name], "value": None, "interval": None, "chance": None,
                "observations": len(observations)}
        if len(observations) >= MIN_CKA_OBSERVATIONS:
            interval = cka_interval(x, y)
            pair.update(value=_none_if_nan(linear_cka(x, y)), interval=list(interval) if interval else None,
                        chance=_none_if_nan(cka_chance(x, y, seed=seed)))
        pairs.append(pair)
    return {"layer": layers, "pairs": pairs}


def ground_truth_columns(result: ComparisonResult, method: str) -> dict:
    """Column name -> ``{"mean", "interval", "observations", "chance"}`` from the ground-truth metrics
    of ``method``: "<object> mass" per object (share of |mass|), "<object> pointing" (hit rate) and
    "interventions" (rho), each a mean over targets per observation. Empty without those metrics."""
    def results(metric):
        return [r for r in result.metric_results(method, metric) if isinstance(r, MetricResult)]

    columns = {}
    objects = results("objects")
    if objects:
        for name, entry in objects[0].details["objects"].items():
            if name.startswith("bricks row"):
                continue
            rows = [r.details["objects"][name]["share_per_observation"] for r in objects]
            columns[f"{name} mass"] = {**_mean_interval(per_observation_mean(rows)), "chance": entry["chance"]}
    pointing = results("pointing")
    if pointing:
        for name, entry in pointing[0].details["objects"].items():
            rows = [[None if h is None else float(h) for h in r.details["objects"][name]["hits"]] for r in pointing]
            columns[f"{name} pointing"] = {**_mean_interval(per_observation_mean(rows)), "chance": entry["chance"]}
    interventions = results("interventions")
    if interventions:
        rows = [r.per_observation for r in interventions if r.per_observation is not None]
        columns["interventions"] = {**_mean_interval(per_observation_mean(rows)), "chance": 0.0}
    return columns


def prepare_agents(agents: Sequence, device: str = "cpu") -> list:
    """Names, folders or ``Agent`` objects -> agents (loaded), at least two, one env; raises before work."""
    from interpret_rl import registry
    from interpret_rl.agent import Agent

    if len(agents) < 2:
        raise ValueError(f"compare at least two agents, got {len(agents)}")
    loaded = [a if isinstance(a, Agent) else registry.load_agent(a, device=device) for a in agents]
    names = [a.name for a in loaded]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"agent {', '.join(map(str, repeated))} given more than once")
    check_same_game(loaded)
    return loaded


def compare_agents(agents: Sequence, methods: Sequence, targets: Sequence[str] | None = ("action",),
                   observations: torch.Tensor | None = None, frames: int = 12, seed: int = 0,
                   options: dict[str, dict[str, Any]] | None = None, metrics=None,
                   metric_options: dict[str, dict[str, Any]] | None = None, sample: str = "game",
                   ground_truth=None, device: str = "cpu") -> AgentComparison:
    """Explain several agents with every method on the same observations and measure how they differ.

    :param agents: registered names, model folders or ``Agent`` objects (at least two, one env).
    :param targets: target specs for every agent (default ``action``: each agent's own chosen action).
    :param observations: ``(B, *obs_shape)``; default: ``frames`` states pooled from the agents' own
        play (``pooled_observations`` with ``sample``), with ground truth in ALE games.
    Other arguments as for ``compare.compare``. Every name, method, metric, target and option is
    checked before any work.
    """
    if sample not in SAMPLES:
        raise ValueError(f"unknown sample {sample!r}; valid: {', '.join(SAMPLES)}")
    loaded = prepare_agents(agents, device)
    prepare_methods(methods, options)
    prepare_metrics(metrics, metric_options)
    for agent in loaded:
        try:
            prepare_targets(agent, targets)
        except TargetError as err:
            raise TargetError(f"{agent.name}: {err}") from None
    if observations is None:
        observations, ground_truth, origins = pooled_observations(loaded, frames, seed=seed, sample=sample)
        source = (f"pooled: {frames} states, an equal share from each agent's own play ({sample}: "
                  f"{SAMPLES[sample].split(':')[0]}), seed {seed}")
    else:
        observations = check_observations(observations, loaded[0].observation_shape)
        facts = ground_truth.facts if ground_truth is not None else []
        origins = [f.get("agent", "given") for f in facts] if facts else ["given"] * len(observations)
        source = "given by the caller"
    results = []
    for agent in loaded:
        result = compare(agent, methods, targets=targets, observations=observations, seed=seed, options=options,
                         metrics=metrics, metric_options=metric_options, ground_truth=ground_truth)
        result.observation_source = source
        results.append(result)
    names = [a.name for a in loaded]
    comparison = AgentComparison(
        agents=[AgentInfo.of(a) for a in loaded], results=results, observations=results[0].observations,
        observation_source=source, origins=origins, env_id=loaded[0].env_id, seed=seed,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), ground_truth=ground_truth)
    comparison.frame_share = {name: {m.name: frame_shares(result, m.name) for m in results[0].methods}
                              for name, result in zip(names, results)}
    comparison.agreement = {m.name: agreement(results, names, m.name) for m in results[0].methods}
    comparison.cka = cka_pairs(loaded, comparison.observations, seed=seed)
    return comparison
