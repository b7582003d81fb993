"""Activation maximisation: time to visualise every channel of a Nature-CNN layer, ours against lucent.

Ours: ``Optim(steps=512).explain_many`` with one target per channel of ``--layer`` (default conv3:
64 channels), all optimised together as one batch (one image per channel). Reference: lucent's
``render_vis`` once per channel with the working settings of the stack-facts note
(``param.image(84, channels=4)``, ``preprocess=False``, ``fixed_image_size=84``, ``show_image=False``)
and size-preserving transforms close to ours: reflect-pad 4, lucent's ``jitter(8)`` (a random shift of
0-7 pixels), crop back to 84x84, i.e. a shift of -4..3 pixels with reflected borders (ours: -4..4,
reflected; ours' random zoom is off here, as lucent has none). Ours stops the forward pass after
conv3 (the target layer); lucent runs the whole network. Both: the same FFT parameterisation lucent's
``param.image`` builds (no colour decorrelation for 4 channels), Adam lr 0.05, the channel's mean
over space as the objective, input ``255 * image``.

Lucent specifics: ``render_vis`` wants a model returning one tensor, so it gets a wrapper whose
forward returns the logits only (its children are the network's modules, so ``trunk_conv3`` names
the same layer). ``render_vis`` leaves a forward hook on every module after each call; the hooks it
added are removed after each call (they are not counted against it) and the parameters' ``.grad``
it accumulates is cleared. Every lucent call is checked: it returns an image and the channel's
activation rises.

Wall time on a shared machine follows the load of everything else running (the ratio of two runs
on the same day moved from 2.7x to 4.5x), so the CPU time of this process (``time.process_time``,
one thread) is printed beside it: it counts only what each side computed.

A full lucent run over 64 channels takes minutes, so ``--channels K`` times K channels (spread over
the layer) and extrapolates linearly to all of them (printed as such); ours always does all
channels in one batch. One torch thread for both.

    python benchmarks/optim_vs_lucent.py [--channels 8] [--steps 512] [--repeats 2] [--layer conv3]
                                         [--model NAME]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

warnings.filterwarnings("ignore", category=FutureWarning)  # kornia 0.4.1 on torch 2.x
warnings.filterwarnings("ignore", category=UserWarning)

# imported after the warning filters on purpose: lucent's imports warn
from lucent.optvis import param, render, transform  # noqa: E402

from interpret_rl.methods import seeded_rng  # noqa: E402
from interpret_rl.targets import layer_output_shape, paired_target_scores, parse_target, target_scores  # noqa: E402
from interpret_rl_plugins.optim import Optim  # noqa: E402


class LogitsOnly(nn.Module):
    """The agent's network for lucent: input in [0, 1] scaled to the observation's 0..255, output the
    logits only. Registers the network's children under their own names, so lucent's layer names are
    the network's with ``_`` for ``.`` (``trunk_conv3``)."""

    def __init__(self, network: nn.Module, scale: float):
        super().__init__()
        self._network = (network,)  # a tuple: not registered twice
        self.scale = scale
        for name, child in network.named_children():
            self.add_module(name, child)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self._network[0](image * self.scale)[0]


def load(model: str | None, observations: int):
    if model:
        from interpret_rl.registry import load_agent
        agent, source = load_agent(model), f"model {model}"
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import make_cnn_agent
        agent, source = make_cnn_agent(), "make_cnn_agent() (random weights)"
    agent.network.eval()
    try:
        from interpret_rl.observations import collect_observations
        real = collect_observations(agent, observations, seed=0)
        source += f", {observations} real observations played in {agent.env_id}"
    except Exception as err:
        real = torch.randint(0, 256, (observations, *agent.observation_shape),
                             generator=torch.Generator().manual_seed(0)).float()
        source += f", {observations} random frames ({type(err).__name__})"
    return agent, real, source


def run_ours(agent, targets, real, steps: int) -> tuple[float, list[float]]:
    # lucent starts gray too; no learned prior and no pool of real states: the pixel path alone; the
    # same transforms as lucent's below (a reflected shift, no zoom)
    method = Optim(Optim.Options(steps=steps, start="gray", prior="none", pool=0, scale=0.0))
    start, cpu = time.perf_counter(), time.process_time()
    explanations = method.explain_many(agent, targets, real)
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    return seconds, [e.extras["activation"][0] for e in explanations]


def ours_initial(agent, targets, real) -> list[float]:
    """Activation of each target on the image ours starts from (same seed, same parameterisation)."""
    height, width = real.shape[2:]
    with seeded_rng(0):
        _, image_f = param.image(width, h=height, channels=real.shape[1], fft=True, decorrelate=False,
                                 batch=len(targets))
    with torch.no_grad():
        return paired_target_scores(agent, targets, (255 * image_f()).round()).tolist()


def lucent_transforms(size: int):
    crop = lambda image: image[..., 4:4 + size, 4:4 + size]
    return [transform.pad(4, mode="reflect"), transform.jitter(8), crop]


def run_lucent(agent, model: LogitsOnly, target, lucent_name: str, steps: int, size: int, channels: int):
    """One render_vis call -> (seconds, activation before, activation after)."""
    torch.manual_seed(target.channel)
    np.random.seed(target.channel)  # lucent's jitter draws from numpy
    with torch.no_grad():
        _, initial_f = param.image(size, channels=channels)
        before = float(target_scores(agent, target, (255 * initial_f()).round())[0])
    torch.manual_seed(target.channel)
    np.random.seed(target.channel)
    hooks = {module: set(module._forward_hooks) for module in model.modules()}
    start, cpu = time.perf_counter(), time.process_time()
    images = render.render_vis(model, f"{lucent_name}:{target.channel}",
                               param_f=lambda: param.image(size, channels=channels), preprocess=False,
                               fixed_image_size=size, show_image=False, thresholds=(steps,), progress=False,
                               transforms=lucent_transforms(size))
    elapsed = (time.perf_counter() - start, time.process_time() - cpu)
    for module, before_keys in hooks.items():  # what render_vis left behind
        for key in set(module._forward_hooks) - before_keys:
            del module._forward_hooks[key]
    for p in model.parameters():
        p.grad = None
    assert len(images) == 1 and images[0].shape == (1, size, size, channels), [i.shape for i in images]
    image = torch.from_numpy(images[0]).permute(0, 3, 1, 2)
    with torch.no_grad():
        after = float(target_scores(agent, target, (255 * image).round())[0])
    return elapsed, before, after


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=8, help="lucent channels to time (extrapolated)")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layer", default="conv3")
    parser.add_argument("--observations", type=int, default=16, help="real observations for dataset examples")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    agent, real, source = load(args.model, args.observations)
    torch.set_num_threads(1)  # after the load (tests/conftest.py, when imported, sets one thread too)
    first = parse_target(f"{args.layer}:0", agent)
    n_channels = layer_output_shape(agent, first.layer)[0]
    targets = [parse_target(f"{first.layer}:{c}", agent) for c in range(n_channels)]
    picked = sorted({round(i * (n_channels - 1) / max(1, args.channels - 1)) for i in range(args.channels)})
    lucent_name = first.layer.replace(".", "_")
    model = LogitsOnly(agent.network, 255.0).eval()
    size, channels = real.shape[-1], real.shape[1]
    print(f"{source}; layer {first.layer} ({n_channels} channels), {args.steps} steps; torch threads "
          f"{torch.get_num_threads()}; lucent channels timed: {picked}", flush=True)

    ours_seconds, lucent_seconds, ours_act, lucent_runs = [], [], None, None
    ours_cpu, lucent_cpu = [], []
    for repeat in range(args.repeats):  # alternate, so both see the same machine load
        (elapsed, cpu), ours_act = run_ours(agent, targets, real, args.steps)
        ours_seconds.append(elapsed)
        ours_cpu.append(cpu)
        lucent_runs = [run_lucent(agent, model, targets[c], lucent_name, args.steps, size, channels) for c in picked]
        lucent_seconds.append(sum(r[0][0] for r in lucent_runs))
        lucent_cpu.append(sum(r[0][1] for r in lucent_runs))
        print(f"repeat {repeat}: ours {elapsed:.1f} s for {n_channels} channels; lucent {lucent_seconds[-1]:.1f} s "
              f"for {len(picked)} channels -> {lucent_seconds[-1] * n_channels / len(picked):.1f} s for "
              f"{n_channels} (extrapolated)", flush=True)
    hooks_left = sum(len(m._forward_hooks) for m in agent.network.modules())

    ours_s = statistics.median(ours_seconds)
    lucent_s = statistics.median(lucent_seconds) * n_channels / len(picked)
    print(f"\nmedian of {args.repeats}: ours {ours_s:.1f} s for all {n_channels} channels (one batch); lucent "
          f"{lucent_s:.1f} s for {n_channels} channels, EXTRAPOLATED linearly from {len(picked)} timed channels "
          f"({statistics.median(lucent_seconds) / len(picked):.2f} s per channel)")
    print(f"ratio lucent / ours: {lucent_s / ours_s:.1f}x (goal: at least 6x)")
    # CPU time of this process: what each side computed, whatever else the shared machine ran meanwhile
    ours_c, lucent_c = statistics.median(ours_cpu), statistics.median(lucent_cpu) * n_channels / len(picked)
    print(f"CPU time of this process: ours {ours_c:.1f} s, lucent {lucent_c:.1f} s extrapolated "
          f"({statistics.median(lucent_cpu) / len(picked):.2f} s per channel); ratio {lucent_c / ours_c:.1f}x")
    initial = ours_initial(agent, targets, real)
    rises = [r[2] > r[1] for r in lucent_runs]
    print("\nquality (mean activation of the channel on the final image, rounded to uint8; start in brackets):")
    print(f"  on the {len(picked)} lucent channels: ours {np.mean([ours_act[c] for c in picked]):.3f} "
          f"({np.mean([initial[c] for c in picked]):.3f}), lucent {np.mean([r[2] for r in lucent_runs]):.3f} "
          f"({np.mean([r[1] for r in lucent_runs]):.3f})")
    print(f"  ours on all {n_channels}: {np.mean(ours_act):.3f} ({np.mean(initial):.3f}); "
          f"ours beat lucent on {sum(ours_act[c] > r[2] for c, r in zip(picked, lucent_runs))}/{len(picked)}")
    print(f"  every lucent call returned a {size}x{size}x{channels} image and raised its channel: {all(rises)} "
          f"({sum(rises)}/{len(rises)}); hooks left on the network after cleanup: {hooks_left}")


if __name__ == "__main__":
    main()
