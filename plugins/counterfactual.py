"""Minimal edits (counterfactual states): what would have to change in a real state for the agent to
prefer action X, or to value the state more.

From each real observation, search for a sparse, bounded change ``delta`` that raises the target:
at most ``pixels`` entries of the observation change (one entry = one pixel of one stacked frame,
or one feature of a vector) and ``sum |delta| <= l1``; the edited observation stays inside the
observation space (whole grey levels for uint8 frames).

Search: Adam on a dense accumulator ``z``; every step the edit actually tried is ``z`` projected on
the budget (keep the ``pixels`` largest ``|z|``, then project on the L1 ball, Duchi et al. 2008,
then clip to the space), and its gradient is passed straight through to all of ``z``, so an entry
left out of the edit can still grow and win a place in it. The best projected edit seen is kept, so
the budget holds by construction. An action target is raised until the action leads the others by
``margin`` (not beyond: a counterfactual should be minimal), lowered until another action leads.
``direction=auto`` (the default) asks the question that has an answer on every state: an action the
agent does not prefer yet is raised, the action it already prefers (always so for the ``action``
target, the chosen action) is lowered - "what would make it do something else?". A fixed ``raise``
on the chosen action is an empty edit wherever it already leads by the margin (89 of 100 Breakout
states for breakout-a2c), which is why it is not the default.

``values`` is the edit ``after - before`` (an attribution shaped like the observation, so a report
shows the difference over the original frame, red where the edit brightens, blue where it darkens;
``after = before + values``). ``extras`` per observation: target before and after, entries
changed, L1 size, and for action targets the policy's action before and after and whether it flipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method
from interpret_rl.option_checks import bounded
from interpret_rl.targets import Target, chosen_actions

torch = lazy_module("torch")

SHRINK = 1e-3


def project_l1(delta: torch.Tensor, radius: float) -> torch.Tensor:
    """Each row of ``delta`` ``(B, D)`` projected on the L1 ball of ``radius`` (Duchi et al. 2008)."""
    size = delta.abs()
    inside = size.sum(1) <= radius
    ordered = size.sort(1, descending=True).values
    cumulative = ordered.cumsum(1) - radius
    ranks = torch.arange(1, delta.shape[1] + 1, device=delta.device)
    count = ((ordered - cumulative / ranks) > 0).sum(1).clamp_min(1)
    threshold = (cumulative.gather(1, (count - 1)[:, None]) / count[:, None]).clamp_min(0)
    shrunk = delta.sign() * (size - threshold).clamp_min(0)
    return torch.where(inside[:, None], delta, shrunk)


def keep_largest(delta: torch.Tensor, count: int) -> torch.Tensor:
    """Each row of ``delta`` ``(B, D)`` with all but its ``count`` largest ``|entries|`` set to 0."""
    if count >= delta.shape[1]:
        return delta
    if count <= 0:
        return torch.zeros_like(delta)
    kept = delta.abs().topk(count, dim=1).indices
    return torch.zeros_like(delta).scatter(1, kept, delta.gather(1, kept))


def space_bounds(agent, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)`` shaped like one observation; ``-inf`` / ``inf`` where the space has no bound."""
    shape = like.shape[1:]

    def side(values, missing: float) -> torch.Tensor:
        values = list(values or [None])
        values = values * shape.numel() if len(values) == 1 else values
        return torch.tensor([missing if v is None else float(v) for v in values], dtype=like.dtype).view(shape)

    space = agent.observation_space
    return side(space.get("low"), -float("inf")), side(space.get("high"), float("inf"))


_AS_SCORE = Target(spec="value", kind="value")
"""Stands in for a target whose score is raised or lowered as it is (see ``MinimalEdit._signs``)."""


class MinimalEdit(Method):
    """Minimal edit of each real observation that raises (or lowers) the target within a budget."""

    name = "edit"
    description = "minimal edit: a sparse, bounded change of each real state that flips the action / raises the target"
    kind = "attribution"

    @dataclass
    class Options:
        pixels: int = bounded(40, at_least=0)
        """At most this many entries of the observation change (a pixel of one stacked frame)."""
        l1: float = bounded(2000.0, at_least=0)
        """At most this total absolute change, in the observation's units (0..255 grey levels for
        Atari: 2000 is 40 pixels moved about 50 levels); 0 = no L1 bound."""
        direction: Literal["auto", "raise", "lower"] = "auto"
        """raise: make the agent prefer the target action / raise the target; lower: the opposite;
        auto: lower an action where the agent already prefers it, raise it elsewhere (values: raise)."""
        margin: float = bounded(0.1, at_least=0)
        """Action targets: stop raising once the action's logit leads the others by this much."""
        steps: int = bounded(150, at_least=1)
        lr: float = bounded(0.02, above=0)
        """Adam learning rate, in units of the space's range per entry (of the real data's where unbounded)."""

        def __post_init__(self):
            if self.pixels < 0 or self.l1 < 0 or self.steps < 1:
                raise ValueError(f"options edit.pixels and edit.l1 must be >= 0 and edit.steps >= 1, "
                                 f"got pixels={self.pixels}, l1={self.l1}, steps={self.steps}")

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        x = observations.detach().clone().float().to(agent.device)
        low, high = (b.to(x.device) for b in space_bounds(agent, x))
        span = torch.where(torch.isfinite(high - low), high - low, x.abs().amax(0).clamp_min(1.0))
        actions = chosen_actions(agent, x)
        # A continuous policy's action target is a mean to move, not a choice to flip: scored like a value.
        flips = target.kind in ("action", "chosen-action") and not getattr(agent, "is_continuous", False)
        signs = self._signs(target, actions) if flips else self._signs(_AS_SCORE, actions)
        with torch.enable_grad():
            delta = self._search(agent, target, x, low, high, span, actions, signs)
        if str(agent.observation_space.get("dtype", "")).startswith("uint"):
            delta = delta.trunc()  # whole grey levels, toward 0: neither budget can grow
        with torch.no_grad():
            before = self._objective(agent, target, x, actions, signs)
            after = self._objective(agent, target, x + delta, actions, signs)
            new_actions = chosen_actions(agent, x + delta)
        flat = delta.flatten(1)
        extras = {"score_before": before[1].tolist(), "score_after": after[1].tolist(),
                  "changed": (flat != 0).sum(1).tolist(), "l1": flat.abs().sum(1).tolist(),
                  "budget": {"pixels": self.options.pixels, "l1": self.options.l1},
                  "direction": ["raise" if s > 0 else "lower" for s in signs.tolist()]}
        if flips:
            extras.update(action_before=[agent.action_meanings[a] for a in actions.tolist()],
                          action_after=[agent.action_meanings[a] for a in new_actions.tolist()],
                          flipped=(after[0] > 0).tolist())
        return self.explanation(target, delta.cpu(), **extras)

    def _signs(self, target: Target, actions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` +1 where the target is raised, -1 where it is lowered (see ``direction``)."""
        direction = self.options.direction
        if direction != "auto":
            return torch.full(actions.shape, 1.0 if direction == "raise" else -1.0, device=actions.device)
        if target.kind == "chosen-action":
            return torch.full(actions.shape, -1.0, device=actions.device)
        if target.kind == "action":
            return torch.where(actions == target.action, -1.0, 1.0).to(actions.device)
        return torch.ones(actions.shape, device=actions.device)

    def _objective(self, agent, target: Target, x: torch.Tensor, actions: torch.Tensor, signs: torch.Tensor):
        """``(goal, score)`` per observation: ``score`` is the target's own score; ``goal`` is what is
        maximised: for an action, its logit's lead over the best other action (signed per row by
        ``signs``), capped at ``margin``; otherwise the score (signed)."""
        from interpret_rl.targets import target_scores

        if target.kind not in ("action", "chosen-action") or getattr(agent, "is_continuous", False):
            score = target_scores(agent, target, x)
            return signs * score, score
        logits, _ = agent.network(x)
        action = actions if target.kind == "chosen-action" else torch.full_like(actions, target.action)
        mine = logits.gather(1, action[:, None]).squeeze(1)
        others = logits.scatter(1, action[:, None], -float("inf")).amax(1)
        return (signs * (mine - others)).clamp_max(self.options.margin), mine

    def _project(self, z: torch.Tensor, x: torch.Tensor, low, high) -> torch.Tensor:
        opts = self.options
        delta = keep_largest(z.flatten(1), opts.pixels)
        if opts.l1 > 0:
            delta = project_l1(delta, opts.l1)
        delta = delta.view_as(x)
        return torch.minimum(torch.maximum(x + delta, low), high) - x  # clipping only shrinks |delta|

    def _search(self, agent, target, x, low, high, span, actions, signs) -> torch.Tensor:
        z = torch.zeros_like(x, requires_grad=True)
        optimizer = torch.optim.Adam([z], lr=self.options.lr)
        best = torch.zeros_like(x)
        with torch.no_grad():
            best_goal = self._objective(agent, target, x, actions, signs)[0]
        for _ in range(self.options.steps):
            dense = z * span
            delta = self._project(dense.detach(), x, low, high)
            goal = self._objective(agent, target, x + delta + (dense - dense.detach()), actions, signs)[0]
            with torch.no_grad():
                size = delta.flatten(1).abs().sum(1)
                smaller = size < best.flatten(1).abs().sum(1)
                better = (goal > best_goal + 1e-6) | ((goal >= best_goal - 1e-6) & smaller)
                best[better], best_goal[better] = delta[better], goal[better]
            # rows whose action already leads by the margin are pulled back toward no edit, down to the
            # least edit that still leads (the goal's gradient is 0 there, so Adam follows the pull alone)
            met = (goal.detach() >= self.options.margin - 1e-6).view(-1, *[1] * (x.dim() - 1))
            flips = target.kind in ("action", "chosen-action") and not getattr(agent, "is_continuous", False)
            shrink = (z.abs() * met).sum() if flips else 0.0
            (grad,) = torch.autograd.grad(-goal.sum() + SHRINK * shrink, z)
            z.grad = grad
            optimizer.step()
        return best


@hookimpl
def register_methods(register):
    register(MinimalEdit)
