"""Metrics against the game's own ground truth (``interpret_rl.objects``): where the mass of a map
lies, where its peak points, and whether the objects it highlights are the ones that matter.

All three need object masks from a detector registered for the env (``needs``); where there is
none (CartPole, a game nobody wrote a detector for, observations saved without ground truth) they
are skipped with a message saying so. Masks are per stacked frame; maps are ``|attribution|``.

* ``objects``: per object and stacked frame, the share of the map's mass on the object's pixels
  against its chance level (the object's share of the pixels: a map spread evenly scores exactly
  chance). Value: the share on the detector's pointing objects (Breakout: ball and paddle), all
  frames together, averaged over observations.
* ``pointing``: the pointing game (Zhang et al. 2016): is the map's maximum (frames summed) within
  ``tolerance`` pixels of the object (any stacked frame)? Value: hit rate over the pointing objects
  present, per observation, averaged. Its chance level is the share of pixels within tolerance.
  ``peak_on`` says where the peaks land instead: per main object (Breakout: ball, paddle, bricks,
  hud, walls, in that order of precedence), the share of peaks within tolerance of it, the rest
  ``elsewhere``.
* ``interventions``: the causal check. Each object is changed in the emulator (ball or paddle moved,
  a brick row removed, the score changed) and the observation replayed; the effect is how much the
  target moves. Per observation the Spearman rank correlation between how densely the map covers
  each object (its mass share over its pixel share: 1 = chance; pixels that two scored objects
  share count for neither) and the effect of changing it;
  value: its mean. Density, not total mass: a brick row covers 50 times the ball's pixels and
  removing it moves the target a lot, so total mass would reward any map spread evenly (measured:
  seeded noise scored 0.28 that way on breakout-a2c, above saliency). Raw effects land in ``details``.
"""

from __future__ import annotations

from dataclasses import dataclass

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.metrics import Metric, MetricResult
from interpret_rl.option_checks import bounded
from interpret_rl.similarity import rank_correlation
from interpret_rl.targets import actions_for, target_scores

np = lazy_module("numpy")
torch = lazy_module("torch")


def _frame_maps(explanation, observations) -> np.ndarray:
    values = explanation.values.detach().abs().double().cpu().numpy()
    if values.ndim != 4 or values.shape != tuple(observations.shape):
        raise ValueError(f"object metrics need frame-stack attributions (B, F, H, W), got {values.shape}")
    return values


def _masks(ground_truth, maps: np.ndarray) -> dict[str, np.ndarray]:
    masks = ground_truth.masks(obs_shape=maps.shape[2:])
    if next(iter(masks.values())).shape != maps.shape:
        raise ValueError(f"ground truth for {next(iter(masks.values())).shape[:2]} observations and frames, "
                         f"maps {maps.shape[:2]}")
    return masks


def _percent(x: float) -> str:
    return f"{100 * x:.2g} %" if x < 0.1 else f"{100 * x:.0f} %"


class ObjectMass(Metric):
    """Share of |attribution| on each object against the object's share of the pixels."""

    name = "objects"
    description = "share of the map's |mass| on ball, paddle, bricks, HUD, walls vs their pixel share (chance)"
    higher_is_better = True
    needs = frozenset({"objects"})

    def evaluate(self, agent, method, target, observations, explanation, ground_truth=None) -> MetricResult:
        maps = _frame_maps(explanation, observations)
        masks = _masks(ground_truth, maps)
        detector = ground_truth.detector()
        total = maps.sum(axis=(2, 3))  # (B, F)
        stack_total = total.sum(1)
        objects, lines = {}, []
        for name in detector.objects:
            mask = masks[name]
            on = (maps * mask).sum(axis=(2, 3))
            share = np.where(stack_total > 0, on.sum(1) / np.where(stack_total > 0, stack_total, 1), np.nan)
            frame_share = np.where(total > 0, on / np.where(total > 0, total, 1), np.nan)
            chance = mask.mean(axis=(2, 3))  # (B, F)
            entry = {"share": _mean(share), "chance": float(chance.mean()),
                     "share_per_frame": [_mean(frame_share[:, f]) for f in range(maps.shape[1])],
                     "chance_per_frame": chance.mean(0).tolist(),
                     "share_per_observation": [_none(v) for v in share]}
            objects[name] = entry
            if name in detector.main_objects and entry["share"] is not None:
                factor = f"; {entry['share'] / entry['chance']:.1f}x chance" if entry["chance"] > 0 else ""
                lines.append(f"{name}: {_percent(entry['share'])} of the mass on {_percent(entry['chance'])} "
                             f"of the pixels (chance {_percent(entry['chance'])}{factor})")
        pointing = detector.pointing_objects or detector.main_objects[:1]
        union = np.logical_or.reduce([masks[n] for n in pointing])  # a ball on the paddle counts once
        headline = (maps * union).sum(axis=(1, 2, 3))
        per_observation = [None if whole <= 0 else float(on / whole) for on, whole in zip(headline, stack_total)]
        defined = [v for v in per_observation if v is not None]
        if not defined:
            raise ValueError("every map is zero: no mass to place on any object")
        return self.result(float(np.mean(defined)), per_observation=per_observation, objects=objects,
                            text=lines, value_is=f"share of the mass on {' + '.join(pointing)}, all stacked frames")


class Pointing(Metric):
    """Is the map's peak on (or within ``tolerance`` px of) the ball / the paddle?"""

    name = "pointing"
    description = "pointing game: share of maps whose maximum lies within k px of the ball / the paddle"
    higher_is_better = True
    needs = frozenset({"objects"})

    @dataclass
    class Options:
        tolerance: float = bounded(3.0, at_least=0)
        """Distance in observation pixels (84x84) from the object that still counts as a hit."""

    def evaluate(self, agent, method, target, observations, explanation, ground_truth=None) -> MetricResult:
        if self.options.tolerance < 0:
            raise ValueError(f"tolerance must be >= 0, got {self.options.tolerance}")
        maps = _frame_maps(explanation, observations).sum(1)  # (B, H, W)
        masks = _masks(ground_truth, _frame_maps(explanation, observations))
        detector = ground_truth.detector()
        names = detector.pointing_objects or detector.main_objects
        height, width = maps.shape[1:]
        yy, xx = np.mgrid[0:height, 0:width]
        hits = {name: [] for name in names}
        chance = {name: [] for name in names}
        landed: list[str | None] = []  # per observation, the first main object the peak is near
        for i, frame_map in enumerate(maps):
            peak = None if frame_map.max() <= 0 else np.unravel_index(np.argmax(frame_map), frame_map.shape)
            landed.append(None if peak is None else _peak_lands_on(peak, masks, detector.main_objects, i,
                                                                   self.options.tolerance))
            for name in names:
                where = masks[name][i].any(0)
                if not where.any() or peak is None:
                    hits[name].append(None)
                    continue
                oy, ox = np.nonzero(where)
                near = _distance_map(oy, ox, yy, xx) <= self.options.tolerance
                hits[name].append(bool(near[peak]))
                chance[name].append(float(near.mean()))
        per_observation = []
        for i in range(len(maps)):
            present = [hits[n][i] for n in names if hits[n][i] is not None]
            per_observation.append(float(np.mean(present)) if present else None)
        defined = [v for v in per_observation if v is not None]
        if not defined:
            raise ValueError(f"none of {', '.join(names)} is on screen in any observation (or every map is zero)")
        summary = {n: {"hit_rate": _mean(np.array([_nan(h) for h in hits[n]], dtype=float)),
                       "observations": sum(h is not None for h in hits[n]),
                       "chance": float(np.mean(chance[n])) if chance[n] else None, "hits": hits[n]} for n in names}
        text = [f"{n}: peak within {self.options.tolerance:g} px in {sum(bool(h) for h in hits[n] if h is not None)} "
                f"of {summary[n]['observations']} observations (chance {_percent(summary[n]['chance'] or 0)})"
                for n in names]
        peaks = [name for name in landed if name is not None]
        peak_on = {name: peaks.count(name) / len(peaks) for name in (*detector.main_objects, "elsewhere")}
        text.append("peak lands on: " + ", ".join(f"{name} {_percent(share)}" for name, share in peak_on.items()
                                                  if share > 0))
        return self.result(float(np.mean(defined)), per_observation=per_observation, objects=summary, text=text,
                           tolerance=self.options.tolerance, peak_on=peak_on, peak_on_per_observation=landed)


class Interventions(Metric):
    """Rank agreement between the map's density on each object and the effect of changing the object."""

    name = "interventions"
    description = ("causal check: Spearman correlation between the map's density on each object and how much "
                   "moving / removing that object in the emulator changes the target")
    higher_is_better = True
    needs = frozenset({"objects", "emulator"})

    def evaluate(self, agent, method, target, observations, explanation, ground_truth=None) -> MetricResult:
        maps = _frame_maps(explanation, observations)
        masks = _masks(ground_truth, maps)
        changes = ground_truth.interventions()
        x = observations.detach().float()
        with torch.no_grad():
            actions = actions_for(agent, target, x)
            clean = target_scores(agent, target, x, actions).double().cpu().numpy()
            logits, value = (t.double().cpu().numpy() for t in agent.network(x))
        per_observation, raw, pooled = [], [], []
        for i, options in enumerate(changes):
            if not options:
                per_observation.append(None)
                raw.append([])
                continue
            changed = torch.as_tensor(np.stack([c["observation"] for c in options]), dtype=torch.float32,
                                      device=x.device)
            with torch.no_grad():
                held = None if actions is None else actions[i].expand(len(changed))
                scores = target_scores(agent, target, changed, held).double().cpu().numpy()
                new_logits, new_value = (t.double().cpu().numpy() for t in agent.network(changed))
            effects = np.abs(scores - clean[i])
            object_masks = _own_pixels([masks[c["intervention"].obj][i] for c in options])
            share = np.array([(maps[i] * m).sum() for m in object_masks]) / max(maps[i].sum(), 1e-300)
            area = np.array([max(m.mean(), 1e-300) for m in object_masks])
            density = share / area  # 1: the object gets its pixel share of the mass (chance)
            per_observation.append(spearman(density, effects))
            pooled.extend(zip(density.tolist(), effects.tolist()))
            probs, new_probs = _softmax(logits[i]), _softmax(new_logits)
            raw.append([{"object": c["intervention"].obj, "intervention": c["intervention"].description,
                         "changed_pixels": c["changed_pixels"], "effect": float(e), "mass_share": float(m),
                         "density_vs_chance": float(d),
                         "value_change": float(new_value[k] - value[i]),
                         "logit_change": (new_logits[k] - logits[i]).tolist(),
                         "policy_total_variation": float(0.5 * np.abs(new_probs[k] - probs).sum())}
                        for k, (c, e, m, d) in enumerate(zip(options, effects, share, density))])
        defined = [v for v in per_observation if v is not None]
        if not defined:
            raise ValueError("no observation has at least three objects with distinct effects and masses to rank")
        densities, effects = (np.array(v) for v in zip(*pooled)) if pooled else (np.array([]), np.array([]))
        return self.result(float(np.mean(defined)), per_observation=per_observation, effects=raw,
                            kendall_pooled=kendall(densities, effects),
                            effect_is=f"|change of {target.spec}| when the object is changed "
                                      "(chosen action held at the one chosen on the real observation)")


def _own_pixels(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Each mask without the pixels another one also covers (neighbouring brick rows share the
    observation rows their edges blur into; a ball may sit in a brick row); a mask with no pixel
    of its own is kept whole."""
    counts = np.sum(masks, axis=0)
    return [own if (own := m & (counts == 1)).any() else m for m in masks]


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rho with average ranks for ties; None with fewer than 3 items or a constant side."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return rank_correlation(torch.as_tensor(np.asarray(a, float)), torch.as_tensor(np.asarray(b, float)))


def kendall(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall's tau-b; None with fewer than 3 items or a constant side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    da, db = np.sign(a[:, None] - a[None]), np.sign(b[:, None] - b[None])
    upper = np.triu_indices(len(a), 1)
    da, db = da[upper], db[upper]
    return float((da * db).sum() / np.sqrt((da != 0).sum() * (db != 0).sum()))


def _peak_lands_on(peak: tuple[int, int], masks: dict[str, np.ndarray], names, i: int, tolerance: float) -> str:
    """The first of ``names`` with a pixel (any stacked frame) within ``tolerance`` of ``peak``, else
    ``elsewhere``: says where a map that misses the ball and paddle points instead."""
    for name in names:
        oy, ox = np.nonzero(masks[name][i].any(0))
        if len(oy) and np.sqrt((oy - peak[0]) ** 2 + (ox - peak[1]) ** 2).min() <= tolerance:
            return name
    return "elsewhere"


def _distance_map(oy, ox, yy, xx) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest object pixel (objects are small)."""
    return np.sqrt((yy[..., None] - oy) ** 2 + (xx[..., None] - ox) ** 2).min(-1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _nan(v):
    return np.nan if v is None else v


def _none(v) -> float | None:
    return None if not np.isfinite(v) else float(v)


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


@hookimpl
def register_metrics(register):
    for metric in (ObjectMass, Pointing, Interventions):
        register(metric)
