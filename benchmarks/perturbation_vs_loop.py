"""Perturbation saliency (Greydanus et al. 2018): observations/s of ours against one-forward-per-mask loops.

Three implementations, side by side in one process, on the same observations and target:

* ``ours``: ``Perturbation`` with default options (stride 5, mask sigma 5, blur sigma 3: 289 masks
  on an 84x84 frame), all masks of an observation in a few large batches, the first layer in closed
  form (the Nature CNN's shortcut, see plugins/perturbation.py).
* ``ours-generic``: the same without the first-layer shortcut (what any other architecture gets).
* ``greydanus``: a faithful re-implementation of the published loop (``saliency.py`` of
  github.com/greydanus/visualize_atari): for every mask centre on the stride grid, build the mask
  with numpy (``get_mask``: a one-pixel-radius disk blurred with sigma ``radius``, scaled to peak 1),
  build the perturbed frame as ``I*(1-mask) + gaussian_filter(I, sigma=3)*mask`` (the frame is blurred
  again for every mask, as in their ``occlude``), one forward pass per mask, score ``0.5*(L-l)**2``.
  Needs scipy; without it the same structure runs with a torch blur per mask (printed).
  Differences from the original, none of which changes the timing much: the score is our target's
  scalar (theirs summed over all logits), the 4 stacked frames are blurred per plane
  (``sigma=(0, 3, 3)``), no LSTM state, and the coarse grid is upsampled with ours (their
  ``scipy.misc.imresize`` quantised the map to uint8 and no longer exists).
* ``loop``: ``perturbation_saliency_loop`` from plugins/perturbation.py: one forward per mask, but the
  blurred frame and the masks are computed once per observation.

Equality: ours must equal ``loop`` (same tolerance as tests/test_perturbation.py) and the
Greydanus loop built with the same mask formula and scipy's ``mode="mirror"`` blur (the boundary
handling torch's reflect padding uses); the published variant (disk mask, ``mode="reflect"``) differs
only near the borders, and its distance to ours is printed.

    python benchmarks/perturbation_vs_loop.py [--observations 4] [--repeats 3] [--target action]
                                              [--threads 1] [--model NAME] [--before FILE]

``--before FILE`` also times ``Perturbation`` from another version of plugins/perturbation.py, e.g.
``git show HEAD:plugins/perturbation.py > /tmp/before.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import interpret_rl_plugins.perturbation as perturbation_plugin
from interpret_rl.targets import actions_for, parse_target, target_scores
from interpret_rl_plugins.perturbation import Perturbation, perturbation_saliency_loop, upsample_scores

try:
    from scipy.ndimage import gaussian_filter
except ImportError:  # not a dependency of the project: fall back to a torch blur per mask
    gaussian_filter = None


def greydanus_mask(center, size, r):
    """Their ``get_mask``: a disk of radius 1 around ``center``, blurred with sigma ``r``, peak 1."""
    y, x = np.ogrid[-center[0]:size[0] - center[0], -center[1]:size[1] - center[1]]
    keep = x * x + y * y <= 1
    mask = np.zeros(size)
    mask[keep] = 1
    mask = gaussian_filter(mask, sigma=r) if gaussian_filter is not None else \
        _torch_blur(torch.from_numpy(mask)[None], r)[0].numpy()
    return mask / mask.max()


def analytic_mask(center, size, r):
    """The analytic Gaussian ``mask_grid`` uses, built with numpy (for the equality check)."""
    y, x = np.ogrid[-center[0]:size[0] - center[0], -center[1]:size[1] - center[1]]
    return np.exp(-(x * x + y * y) / (2.0 * r * r))


def _torch_blur(planes: torch.Tensor, sigma: float) -> torch.Tensor:
    from interpret_rl_plugins.perturbation import gaussian_blur
    return gaussian_blur(planes, sigma)


def greydanus_loop(agent, target, observations: torch.Tensor, stride: int = 5, radius: float = 5.0,
                   blur: float = 3.0, mask_fn=greydanus_mask, mode: str = "reflect") -> torch.Tensor:
    """Their per-mask loop for ``(B, C, H, W)`` frames -> ``(B, C, H, W)`` maps (the map repeated per frame)."""
    x = observations.detach().float()
    _, channels, height, width = x.shape
    maps = []
    with torch.no_grad():
        for b in range(len(x)):
            frame = x[b].double().numpy()
            obs = x[b:b + 1]
            actions = actions_for(agent, target, obs)
            L = target_scores(agent, target, obs, actions=actions)[0]
            centres_y, centres_x = range(0, height, stride), range(0, width, stride)
            scores = np.zeros((len(centres_y), len(centres_x)))
            for yi, cy in enumerate(centres_y):
                for xi, cx in enumerate(centres_x):
                    mask = mask_fn([cy, cx], [height, width], radius)
                    if gaussian_filter is not None:
                        blurred = gaussian_filter(frame, sigma=(0, blur, blur), mode=mode)
                    else:
                        blurred = _torch_blur(torch.from_numpy(frame), blur).numpy()
                    perturbed = frame * (1 - mask) + blurred * mask
                    state = torch.tensor(perturbed, dtype=torch.float32).unsqueeze(0)
                    perturbed_score = target_scores(agent, target, state, actions=actions)[0]
                    scores[yi, xi] = float((L - perturbed_score).pow(2).mul(0.5))
            maps.append(upsample_scores(torch.from_numpy(scores), stride, (height, width)).expand(channels, -1, -1))
    return torch.stack(maps).contiguous()


def close(ours: torch.Tensor, reference: torch.Tensor) -> bool:
    """The tolerance of tests/test_perturbation.py: rtol 1e-3, atol 1e-4 of the largest score."""
    return bool(torch.allclose(ours, reference, rtol=1e-3, atol=1e-4 * float(reference.abs().max())))


def max_relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


def load_agent_and_observations(model: str | None, count: int):
    if model:
        from interpret_rl.registry import load_agent
        agent = load_agent(model)
        source = f"model {model}"
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from conftest import make_cnn_agent
        agent = make_cnn_agent()
        source = "make_cnn_agent() (random weights)"
    agent.network.eval()
    try:
        from interpret_rl.observations import collect_observations
        observations = collect_observations(agent, count, seed=0)
        source += f", {count} observations played in {agent.env_id}"
    except Exception as err:  # no emulator here: textured random frames
        observations = torch.randint(0, 256, (count, *agent.observation_shape),
                                     generator=torch.Generator().manual_seed(0)).float()
        source += f", {count} random frames ({type(err).__name__}: {err})"
    return agent, observations, source


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--observations", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", default="action")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default=None, help="registered model name (default: random Nature CNN)")
    parser.add_argument("--skip-greydanus", action="store_true")
    parser.add_argument("--before", default=None, help="another plugins/perturbation.py to time as 'before'")
    args = parser.parse_args()
    agent, obs, source = load_agent_and_observations(args.model, args.observations)
    torch.set_num_threads(args.threads)  # after the load: tests/conftest.py sets one thread when imported
    target = parse_target(args.target, agent)
    method = Perturbation(Perturbation.Options())
    print(f"{source}; target {target.spec}; torch threads {torch.get_num_threads()}; "
          f"blur: {'scipy.ndimage.gaussian_filter' if gaussian_filter is not None else 'torch (scipy missing)'}")

    def generic():
        shortcut = perturbation_plugin._linear_first_layer
        perturbation_plugin._linear_first_layer = lambda network: None
        try:
            return method.explain(agent, target, obs).values
        finally:
            perturbation_plugin._linear_first_layer = shortcut

    runs = {"ours": lambda: method.explain(agent, target, obs).values, "ours-generic": generic,
            "loop": lambda: perturbation_saliency_loop(agent, target, obs)}
    if args.before:
        import importlib.util
        spec = importlib.util.spec_from_file_location("perturbation_before", args.before)
        before = sys.modules["perturbation_before"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(before)
        runs["before"] = lambda: before.Perturbation(before.Perturbation.Options()).explain(agent, target, obs).values
    if not args.skip_greydanus:
        runs["greydanus"] = lambda: greydanus_loop(agent, target, obs)
    runs["ours"](), runs["ours-generic"]()  # warm-up (oneDNN primitive creation)
    print(f"first-layer shortcut used by ours: {perturbation_plugin._linear_first_layer(agent.network) is not None}")
    seconds = {name: [] for name in runs}
    maps = {}
    for repeat in range(args.repeats):
        for name, fn in runs.items():  # interleaved, so all see the same machine load
            elapsed, maps[name] = timed(fn)
            seconds[name].append(elapsed)
        print(f"repeat {repeat}: " + "  ".join(f"{n} {len(obs) / s[-1]:.2f} obs/s" for n, s in seconds.items()),
              flush=True)
    rate = {name: len(obs) / statistics.median(s) for name, s in seconds.items()}

    def ratio(name: str, ours: str = "ours") -> float:
        """Median over repeats of the speed ratio within each repeat (robust to load changing between repeats)."""
        return statistics.median(s / o for s, o in zip(seconds[name], seconds[ours]))

    print(f"\nobservations/s (median of {args.repeats} repeats, {len(obs)} observations each); speed-ups are the "
          "median of the per-repeat ratios:")
    for name in runs:
        speedup = "" if name == "ours" else f"   ours is {ratio(name):.1f}x faster"
        generic = "" if name in ("ours", "ours-generic", "before") else \
            f", ours-generic {ratio(name, 'ours-generic'):.1f}x (goal 20x)"
        print(f"  {name:12s} {rate[name]:8.2f}{speedup}{generic}")

    print("\nequality (rtol 1e-3, atol 1e-4 * max, as tests/test_perturbation.py):")
    for name in ("ours", "ours-generic") + (("before",) if args.before else ()):
        print(f"  {name} vs loop: allclose {close(maps[name], maps['loop'])}, "
              f"max |diff| / max {max_relative(maps[name], maps['loop']):.2e}")
    if not args.skip_greydanus:
        same_formula = greydanus_loop(agent, target, obs, mask_fn=analytic_mask, mode="mirror")
        print(f"  ours vs Greydanus loop with the analytic mask and mirror blur: allclose "
              f"{close(maps['ours'], same_formula)}, max |diff| / max {max_relative(maps['ours'], same_formula):.2e}")
        published = maps["greydanus"]
        corr = torch.corrcoef(torch.stack([maps["ours"].flatten(), published.flatten()]))[0, 1]
        print(f"  ours vs the published variant (disk mask, reflect blur): max |diff| / max "
              f"{max_relative(maps['ours'], published):.2e}, correlation {float(corr):.6f}")


if __name__ == "__main__":
    main()
