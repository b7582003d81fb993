"""Activation maximisation: synthesise the observation that most excites a target.

Frames: lucent's FFT image parameterisation (``fft_image`` + sigmoid, as ``param.image``)
optimised with size-preserving transforms only (jitter = pad + crop back, a small random scale
cropped/padded back), because the Nature CNN's flatten needs exactly 84x84 and lucent's ImageNet
transforms change the size. Our own loop replaces ``render_vis``, which leaves forward hooks on
every module and assumes ImageNet.
The image starts from the mean of the real observations by default, not from lucent's uniform
gray: on the bundled 10M-step Breakout agent a gray frame leaves every ReLU of the trunk dead
(the logits are the biases alone), so the gradient is exactly zero and the image never moves.
Vectors (CartPole): a bounded parameterisation ``x = low + (high - low) * sigmoid(z)`` with Adam.

All targets of one call are optimised together, one batch row per target and image
(``explain_many``); a target inside the network stops the forward pass at its layer.
``diversity=K`` makes K images per target, kept apart by Olah et al.'s diversity term
(``interpret_rl.diversity``).
Hilton et al. 2020 found optimised inputs of RL models are often "featureless clouds". So:

* With a learned prior (``interpret-rl prior train MODEL``; ``prior=auto``), frames are decoded
  from a latent code instead (Rupprecht et al. 2020): each starts at the code of the real state
  exciting its target most and climbs the target minus ``prior_weight * |z|^2 / 2``, so the frame
  stays a whole, coherent stack the game could show. ``prior=none`` keeps the pixel path above.
* Every synthetic image carries honest numbers (``interpret_rl.honest_numbers``) against a pool of
  real states of the agent's own play (``pool``, cached): its target against the real maximum and
  99th percentile (flagged out of distribution over 10x), its distance to the nearest real state
  against the same for held-out real states, and the prior's reconstruction error; and the real
  states exciting the target most (``dataset_examples``, in ``Explanation.examples``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from interpret_rl.diversity import diversity_layer, gram_similarity
from interpret_rl.honest_numbers import describe_synthesis, real_reference, scores_on_states
from interpret_rl.hookspecs import hookimpl
from interpret_rl.lazy import lazy_module
from interpret_rl.methods import Explanation, Method, seeded_rng
from interpret_rl.option_checks import MAX_COPIES, MAX_SEED, bounded
from interpret_rl.targets import (
    Target,
    chosen_actions,
    layer_output_shape,
    layer_target_scores,
    paired_scores_and_layers,
    paired_target_scores,
)

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")
nn = lazy_module("torch.nn")
transform = lazy_module("lucent.optvis.transform")
spatial = lazy_module("lucent.optvis.param.spatial")

MONOTONE_ACTIVATIONS = ("ReLU", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Softplus")  # in torch.nn
PRE_ACTIVATION_WEIGHT = 0.1
MONITOR_EVERY = 8  # prior path: steps between realism checks of the frames (each costs ~ one step)
START_MARGIN = 0.02  # a black pixel starts at sigmoid(-3.9): near 0, yet with gradient left


def pre_activation(agent, target: Target) -> Target | None:
    """For a unit of an elementwise monotone activation module (``trunk.relu3:5``), the same unit of
    the module feeding it (``trunk.conv3:5``); else None.

    A dead ReLU unit has zero gradient, so gradient ascent on it alone never starts; a little of the
    pre-activation in the objective keeps a gradient without moving the optimum of a single unit.
    """
    if target.kind != "layer" or not isinstance(agent.network.get_submodule(target.layer),
                                                 tuple(getattr(nn, name) for name in MONOTONE_ACTIVATIONS)):
        return None
    names = [name for name, _ in agent.network.named_modules() if name]
    before = names[names.index(target.layer) - 1]
    if layer_output_shape(agent, before) != layer_output_shape(agent, target.layer):
        return None
    return replace(target, layer=before, spec=target.spec.replace(target.layer, before, 1))


def observation_bounds(agent, real: torch.Tensor, widen: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low, high)``, each ``obs_shape``: the space's bounds; an unbounded entry (``None``) takes the
    range of the real observations ``(B, *obs_shape)``, widened by ``widen`` times that range each side."""
    shape = real.shape[1:]

    def side(values, real_extreme: torch.Tensor, direction: float) -> torch.Tensor:
        values = list(values) if len(values) > 1 else list(values) * shape.numel()
        span = real.amax(0) - real.amin(0)
        span = torch.where(span > 0, span, torch.ones_like(span))
        fallback = real_extreme + direction * widen * span
        given = torch.tensor([float("nan") if v is None else v for v in values], dtype=real.dtype).view(shape)
        return torch.where(torch.isnan(given), fallback, given.to(real.device))

    space = agent.observation_space
    return side(space["low"], real.amin(0), -1.0), side(space["high"], real.amax(0), 1.0)


def jitter(pixels: int, generator: torch.Generator):
    """Shift by up to ``pixels`` in each direction: reflect-pad, then crop back to the same size."""

    def inner(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        dy, dx = torch.randint(0, 2 * pixels + 1, (2,), generator=generator).tolist()
        return transform.pad(pixels, mode="reflect")(image)[..., dy:dy + height, dx:dx + width]

    return inner


def random_scale(amount: float, generator: torch.Generator):
    """Zoom by a factor in ``1 ± amount``, then centre-crop or reflect-pad back to the same size."""

    def inner(image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        factor = 1.0 + amount * (2 * torch.rand((), generator=generator).item() - 1)
        size = (max(2, round(height * factor)), max(2, round(width * factor)))
        scaled = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        top, left = (size[0] - height) // 2, (size[1] - width) // 2
        if top >= 0 and left >= 0:
            return scaled[..., top:top + height, left:left + width]
        pad = [-left, width - size[1] + left, -top, height - size[0] + top]
        return F.pad(scaled, pad, mode="reflect")

    return inner


class Optim(Method):
    """Activation maximisation. ``values``: ``(K, *obs_shape)``, ``K = diversity`` observations within
    the space's bounds (rounded for uint8 spaces). ``extras``: ``activation`` (target on each), ``path``
    (``prior`` or ``pixels``), the honest numbers of ``honest_numbers.describe_synthesis``
    (``max_real_activation``, ``nearest_real_ratio``...), ``dataset_examples`` (indices into the real
    states, the pool or with ``pool=0`` the observations given, exciting the target most) and
    ``dataset_example_scores``; ``examples`` holds those real states.
    A ``chosen-action`` target optimises the action the policy chooses most often on the real observations.
    """

    name = "optim"
    description = "activation maximisation: the input that most excites the target (+ dataset examples)"
    kind = "synthesis"

    @dataclass
    class Options:
        steps: int = bounded(256, at_least=1)
        lr: float = bounded(0.05, above=0)
        """Adam learning rate (on lucent's spectrum for frames, on the logits z for vectors)."""
        seed: int = bounded(0, at_least=0, at_most=MAX_SEED)
        jitter: int = bounded(4, at_least=0)
        """Frames: random shift of up to this many pixels each step (0 = off)."""
        scale: float = bounded(0.05, at_least=0, below=1)
        """Frames: random zoom of up to ± this fraction each step (0 = off)."""
        examples: int = bounded(9, at_least=0, at_most=MAX_COPIES)
        """How many dataset examples (the real states exciting the target most) to show."""
        pool: int = bounded(1000, at_least=0, at_most=MAX_COPIES)
        """Real states of the agent's own play to measure against (``interpret_rl.pool``, collected once
        per agent and cached): dataset examples, the target's real range, realism. 0: the observations
        given instead (no held-out states)."""
        prior: Literal["auto", "none"] = "auto"
        """Frames: optimise the latent code of the agent's learned prior (``interpret-rl prior train``)
        where one exists (``auto``), so the frame stays one the game could show; ``none``: the pixels."""
        prior_weight: float = bounded(0.0, at_least=0)
        """Prior path: weight of ``|z|^2 / 2`` (the prior's log-density) against the target, whose score
        counts in units of its real spread (best real minus median real). Measured on breakout-a2c
        (benchmarks/README.md): 0.1 and 0.3 pulled the codes towards the mean code, whose frame is a
        blurred average and no real state, and the targets below the best real state; realism is
        kept by ``realism`` instead."""
        realism: float = bounded(0.9, at_least=0, at_most=1)
        """Prior path: keep, per image, the highest-scoring frame met along the way whose nearest-real
        ratio is at most this quantile of the held-out real states' ratios (needs ``pool`` > 0; 0: keep
        the last frame, however far from the real states)."""
        ceiling: float = bounded(3.0, at_least=0)
        """Prior path: frames whose target exceeds this multiple of the best real state (where that is not
        positive: of its excess over the real median) are not kept; activations far outside the real range
        describe inputs the agent never meets (0: no ceiling)."""
        keep_detail: bool = True
        """Prior path: add back what the prior cannot draw of the starting real state (its reconstruction
        error: the ball, sharp edges), so the first frame is that real state and the decoder edits it."""
        widen: float = bounded(0.1, at_least=0)
        """Vectors: unbounded features may go this fraction of the real range beyond it."""
        start: Literal["real", "gray"] = "real"
        """Frames: start from the mean of the real observations (``real``) or from lucent's
        uniform gray (``gray``; on a trained Atari agent often a dead-ReLU plateau)."""
        diversity: int = bounded(1, at_least=1, at_most=MAX_COPIES)
        """Images per target (K); above 1 the K images are pushed apart by Olah et al.'s diversity term."""
        diversity_weight: float = bounded(10.0, at_least=0)
        """Weight of the diversity term, relative to the size of the target's own score (measured on a
        random Nature CNN, conv2:3, 24 steps: 1 left the images as alike as 0 did, 10 cut the Gram
        similarity of 3 images from 2.0 to 1.1 for 30% less activation, 100 to 0.6 for 85% less)."""

        def __post_init__(self):
            if self.diversity < 1:
                raise ValueError(f"option optim.diversity must be at least 1, got {self.diversity}")

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        return self.explain_many(agent, [target], observations)[0]

    def explain_many(self, agent, targets: Sequence[Target], observations: torch.Tensor) -> list[Explanation]:
        """Optimise all ``targets`` at once (one batch row each); one explanation per target."""
        opts = self.options
        real = observations.detach().clone().float()
        goals = [self._fixed_action(agent, t, real) for t in targets]
        k = opts.diversity
        rows = [goal for goal in goals for _ in range(k)]  # K consecutive batch rows per target
        reference = real_reference(agent, real, opts.pool)
        real_scores = scores_on_states(agent, goals, reference.states)  # (S, N)
        prior = self._prior(agent, real)
        low, high = observation_bounds(agent, real, opts.widen)
        with torch.enable_grad():
            if prior is not None and opts.prior == "auto":
                synthetic = self._latent(agent, rows, prior, reference, real_scores, low, high)
            elif real.dim() == 4:
                synthetic = self._images(agent, rows, low, high, real.mean(0) if opts.start == "real" else None)
            else:
                synthetic = self._vectors(agent, rows, low, high)
        if str(agent.observation_space.get("dtype", "")).startswith("uint"):
            synthetic = synthetic.round()
        synthetic = torch.minimum(torch.maximum(synthetic, low), high)
        with torch.no_grad():
            activation = paired_target_scores(agent, rows, synthetic)
        explanations = []
        for i, (target, goal) in enumerate(zip(targets, goals)):
            top = real_scores[i].argsort(descending=True)[:opts.examples]
            mine = synthetic[i * k:(i + 1) * k]
            extras = {"activation": activation[i * k:(i + 1) * k].tolist(), "dataset_examples": top.tolist(),
                      "dataset_example_scores": real_scores[i, top].tolist(),
                      "path": "prior" if prior is not None and opts.prior == "auto" else "pixels",
                      **describe_synthesis(mine, activation[i * k:(i + 1) * k].tolist(), real_scores[i],
                                           reference, prior)}
            if goal is not target:
                extras["action"] = agent.action_meanings[goal.action]
            explanation = self.explanation(target, mine, **extras)
            explanation.examples = reference.states[top].clone()
            explanations.append(explanation)
        return explanations

    @staticmethod
    def _fixed_action(agent, target: Target, real: torch.Tensor) -> Target:
        if target.kind != "chosen-action":
            return target
        action = int(torch.bincount(chosen_actions(agent, real), minlength=agent.n_actions).argmax())
        return Target(spec=f"action:{agent.action_meanings[action]}", kind="action", action=action)

    def _ascend(self, agent, targets: Sequence[Target], params: list[torch.Tensor], make_input,
                penalty=None, monitor=None) -> None:
        """Adam on ``params`` to maximise each target on its row of ``make_input()`` (minus ``penalty()``
        when given; ``monitor()`` is called every ``MONITOR_EVERY`` steps). Gradients go to ``params``
        only (``autograd.grad``), so the network's ``.grad`` stays untouched."""
        optimizer = torch.optim.Adam(params, lr=self.options.lr)
        pres = [pre_activation(agent, t) for t in targets]
        helpers = [i for i, pre in enumerate(pres) if pre]
        pre_layers = sorted({pres[i].layer for i in helpers})
        groups = self._diversity_groups(agent, targets)
        layers = sorted({*pre_layers, *(layer for layer, _ in groups if layer)})
        for step in range(self.options.steps):
            if monitor is not None and step % MONITOR_EVERY == 0:
                monitor()
            inputs = make_input()
            # one forward pass gives the targets and the layers the extra terms read
            scores, outputs = paired_scores_and_layers(agent, targets, inputs, layers=layers)
            loss = -scores.sum()
            for layer in pre_layers:  # keeps a gradient on dead ReLU units (see pre_activation)
                mine = [i for i in helpers if pres[i].layer == layer]
                found = layer_target_scores(pres, mine, outputs[layer])
                loss = loss - PRE_ACTIVATION_WEIGHT * sum(part.sum() for _, part in found)
            for layer, rows in groups:  # relative weight: the term keeps pace with the target's size
                acts = outputs[layer][rows] if layer else inputs[rows].flatten(1) - inputs[rows].flatten(1).mean(0)
                size = scores[rows].detach().abs().mean() + 1e-3
                loss = loss + self.options.diversity_weight * size * gram_similarity(acts)
            if penalty is not None:
                loss = loss + penalty()
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()

    def _diversity_groups(self, agent, targets: Sequence[Target]) -> list[tuple[str | None, list[int]]]:
        """``(layer, rows)`` per target when ``diversity > 1``: its K batch rows and the layer whose
        Gram matrices they compare (None: compare the inputs themselves)."""
        k = self.options.diversity
        if k == 1:
            return []
        layers = {}
        return [(layers.setdefault(targets[start].layer, diversity_layer(agent, targets[start].layer)),
                 list(range(start, start + k))) for start in range(0, len(targets), k)]

    def _images(self, agent, targets, low, high, start: torch.Tensor | None) -> torch.Tensor:
        """``(S, C, H, W)`` optimised frames scaled to ``[low, high]``: ``sigmoid(offset + spectrum)``
        with the offset putting the initial image at ``start`` (``(C, H, W)``; None: gray)."""
        opts = self.options
        channels, height, width = low.shape
        with seeded_rng(opts.seed):  # lucent draws its initial spectrum from torch's global RNG
            params, spectrum_f = spatial.fft_image([len(targets), channels, height, width])
        offset = torch.zeros(())
        if start is not None:  # logit of the start in [0, 1], kept off the sigmoid's flat ends
            offset = torch.logit(((start - low) / (high - low)).clamp(START_MARGIN, 1 - START_MARGIN))
        offset = offset.to(params[0].device)  # lucent's device (cuda when there is one)

        def image_f() -> torch.Tensor:
            return torch.sigmoid(spectrum_f() + offset)

        generator = torch.Generator().manual_seed(opts.seed)
        steps = ([jitter(opts.jitter, generator)] if opts.jitter > 0 else []) + \
                ([random_scale(opts.scale, generator)] if opts.scale > 0 else [])
        augment = transform.compose(steps)
        device = agent.device

        def make_input() -> torch.Tensor:
            return low + (high - low) * augment(image_f().to(device))

        self._ascend(agent, targets, params, make_input)
        with torch.no_grad():
            return low + (high - low) * image_f().to(device)

    def _prior(self, agent, real: torch.Tensor):
        """The agent's learned prior for frames (None: vectors, none trained, or ``prior=none`` and the
        stored one unreadable); with ``prior=none`` it only measures the pixel frames."""
        if real.dim() != 4:
            return None
        from interpret_rl.prior import load_prior
        from interpret_rl.registry import ModelLoadError

        try:
            prior = load_prior(agent)
        except ModelLoadError:
            if self.options.prior == "auto":
                raise
            return None
        return prior.requires_grad_(False) if prior is not None else None

    def _latent(self, agent, targets, prior, reference, real_scores: torch.Tensor, low, high) -> torch.Tensor:
        """``(S, C, H, W)`` frames decoded from latent codes. Row j of a target starts at the real state
        exciting it j-th most: its code, plus (``keep_detail``) what the decoder misses of it, so the
        first frame is that state. Adam then raises the target's score, counted in units of its real
        spread, minus ``prior_weight * |z|^2 / 2``; every change comes through the decoder, which keeps
        each frame a whole, coherent stack.

        Along the way (every ``MONITOR_EVERY`` steps and at the end) each row keeps the frame with the
        highest score among those as close to the real states as held-out real states are (nearest-real
        ratio at most their ``realism`` quantile) and at most ``ceiling`` times the best real score; a
        row that never gets there keeps its most real frame. Without held-out states (``pool=0``) the
        last frame is kept.
        """
        opts, device = self.options, agent.device
        k, states = opts.diversity, reference.states
        order = real_scores.argsort(1, descending=True)  # (goals, N)
        starts = torch.stack([states[order[r // k, (r % k) % states.shape[0]]] for r in range(len(targets))])
        spread = (real_scores.max(1).values - real_scores.median(1).values).clamp_min(1e-3)
        weight = (opts.prior_weight * spread).repeat_interleave(k).to(device)[:, None]
        prior = prior.to(device)
        with torch.no_grad():
            z = prior.encode(starts.to(device)).clone().requires_grad_(True)
            # what the prior cannot draw (the 2-pixel ball, sharp edges): added back, so the first frame
            # is the real state itself and the decoder's changes edit it
            detail = starts.to(device) - prior.decode(z) if opts.keep_detail else torch.zeros_like(z[:, :1, None, None])
        held_out = reference.held_out_ratios
        bound = float(torch.quantile(held_out, opts.realism)) if held_out is not None and opts.realism > 0 else None
        best, median = real_scores.max(1).values, real_scores.median(1).values
        ceiling = torch.where(best > 0, opts.ceiling * best, median + opts.ceiling * (best - median))
        kept = _KeptFrames(len(targets), bound, ceiling.repeat_interleave(k) if opts.ceiling > 0 else None)

        def frames_now() -> torch.Tensor:
            return torch.minimum(torch.maximum(prior.decode(z) + detail, low), high)

        def monitor():
            with torch.no_grad():
                frames = frames_now().round()
                kept.offer(frames, paired_target_scores(agent, targets, frames), reference.realism(frames))

        # Adam steps are the same whatever the loss's scale per row, so weighting the prior term by a
        # row's spread is the same as dividing that row's score by it.
        self._ascend(agent, targets, [z], frames_now, penalty=lambda: 0.5 * (weight * z.pow(2)).sum(),
                     monitor=monitor if bound is not None else None)
        if bound is None:
            with torch.no_grad():
                return frames_now()
        monitor()
        return kept.frames

    def _vectors(self, agent, targets, low, high) -> torch.Tensor:
        """``(S, *obs_shape)`` optimised vectors, ``x = low + (high - low) * sigmoid(z)``."""
        generator = torch.Generator().manual_seed(self.options.seed)
        z = torch.randn((len(targets), *low.shape), generator=generator).to(low.device).requires_grad_(True)
        self._ascend(agent, targets, [z], lambda: low + (high - low) * torch.sigmoid(z))
        with torch.no_grad():
            return low + (high - low) * torch.sigmoid(z)


class _KeptFrames:
    """Per row, the best frame offered so far: the highest score among frames whose realism ratio is
    within ``bound`` (and whose score is at most ``ceiling``); until one is, the most real frame."""

    def __init__(self, rows: int, bound: float, ceiling: torch.Tensor | None = None):
        self.bound, self.ceiling, self.frames = bound, ceiling, None
        self.feasible = torch.zeros(rows, dtype=torch.bool)
        self.score = torch.full((rows,), -float("inf"))
        self.ratio = torch.full((rows,), float("inf"), dtype=torch.float64)

    def offer(self, frames: torch.Tensor, scores: torch.Tensor, ratios: torch.Tensor) -> None:
        scores, ratios = scores.detach().float().cpu(), ratios.cpu()
        feasible = ratios <= self.bound
        if self.ceiling is not None:
            feasible &= scores <= self.ceiling.cpu()
        better = torch.where(self.feasible, feasible & (scores > self.score), feasible | (ratios < self.ratio))
        if self.frames is None:
            self.frames, better = frames.clone(), torch.ones_like(better)
        self.frames[better.to(frames.device)] = frames[better.to(frames.device)]
        self.score = torch.where(better, scores, self.score)
        self.ratio = torch.where(better, ratios, self.ratio)
        self.feasible |= feasible


@hookimpl
def register_methods(register):
    register(Optim)
