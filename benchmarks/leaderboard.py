"""The explanation leaderboard (benchmarks/README.md): states from several whole games, every method,
every judge, one markdown table with 95 % intervals.

``compare --sample game`` spreads its observations over ONE game (one seed). The leaderboard wants
several games, so this script collects ``--per-game`` states from each of ``--games`` games (seeds
0, 1, ...) with the same sampler, saves them with their emulator ground truth in one ``.npz``, and
``compare --observations`` explains that file; the table is then read off ``results.json``.

    python benchmarks/leaderboard.py collect --games 5 --per-game 20 --out /tmp/leaderboard-out/states.npz
    interpret-rl compare --model breakout-a2c --observations /tmp/leaderboard-out/states.npz \\
        --methods ... --metrics objects,pointing,interventions,deletion,insertion,randomization,runtime ...
    python benchmarks/leaderboard.py table /tmp/leaderboard-out/compare/results.json

Intervals are percentile bootstraps over observations (``interpret_rl.metrics.bootstrap_interval``),
not clustered by game: states of one game are not independent, so they are somewhat too narrow.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

OBJECTS = ("ball", "paddle", "bricks", "hud", "walls")


def collect(args) -> None:
    import torch

    from interpret_rl import registry
    from interpret_rl.objects import GroundTruth
    from interpret_rl.observations import collect_with_ground_truth, save_observations

    torch.set_num_threads(1)
    agent = registry.load_agent(args.model, device="cpu")
    observations, truths = [], []
    for game in range(args.games):
        seed = args.first_seed + game
        obs, truth = collect_with_ground_truth(agent, args.per_game, seed=seed, sample="game")
        if truth is None:
            sys.exit(f"{args.model}: no emulator ground truth (not an ALE game)")
        steps = truth.facts[0].get("game_steps")
        print(f"game {game} (seed {seed}): {steps} steps, states at {[f['step'] for f in truth.facts]}", flush=True)
        observations.append(obs)
        truths.append(truth)
    if len({t.states.shape[1] for t in truths}) != 1:
        sys.exit(f"emulator states differ in length between games: {[t.states.shape for t in truths]}")
    merged = GroundTruth(truths[0].env_id, truths[0].settings, np.concatenate([t.ram for t in truths]),
                         np.concatenate([t.frame_valid for t in truths]), np.concatenate([t.states for t in truths]),
                         np.concatenate([t.stack_actions for t in truths]), [f for t in truths for f in t.facts])
    path = save_observations(args.out, torch.cat(observations), merged)
    print(f"{len(merged)} states from {args.games} games -> {path}")


def subset(args) -> None:
    """``--per-game`` states of each game of a collected file, spread over the game as ``collect``
    spreads them (the judges that re-run every method many times, deletion/insertion/randomization,
    cannot afford every state on 2 busy cores)."""
    import torch

    from interpret_rl.objects import GroundTruth
    from interpret_rl.observations import load_ground_truth, load_observations, save_observations, spread

    observations = load_observations(args.states)
    truth = load_ground_truth(args.states, len(observations))
    seeds = [f["seed"] for f in truth.facts]
    rows = []
    for seed in args.games or dict.fromkeys(seeds):
        game = [i for i, s in enumerate(seeds) if s == seed]
        rows += sorted({game[k] for k in spread(0, len(game) - 1, min(args.per_game, len(game)))})
    games = {s: [truth.facts[i]["step"] for i in rows if seeds[i] == s] for s in dict.fromkeys(seeds[i] for i in rows)}
    picked = GroundTruth(truth.env_id, truth.settings, truth.ram[rows], truth.frame_valid[rows], truth.states[rows],
                         truth.stack_actions[rows], [truth.facts[i] for i in rows])
    path = save_observations(args.out, observations[torch.tensor(rows)], picked)
    print(f"{len(rows)} states ({args.per_game} per game, steps {games}) -> {path}")


def _interval(values) -> tuple[float, float] | None:
    from interpret_rl.metrics import bootstrap_interval

    return bootstrap_interval([None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values])


def _per_observation_mean(rows):
    """Each observation's mean over the targets (None where no target defines it), as the CLI does."""
    means = []
    for values in zip(*rows):
        defined = [v for v in values if v is not None]
        means.append(sum(defined) / len(defined) if defined else None)
    return means


def _cell(values, percent=False) -> str:
    """``mean [low, high]`` over the defined values, ``(n=K)`` when only K of them are defined;
    percentages with one decimal below 10 %."""
    defined = [v for v in values if v is not None]
    if not defined:
        return "n/a"

    def number(x):
        return (f"{100 * x:.1f}" if abs(x) < 0.1 else f"{100 * x:.0f}") if percent else f"{x:.2f}"

    interval = _interval(values)
    text = number(float(np.mean(defined))) + (f" [{number(interval[0])}, {number(interval[1])}]" if interval else "")
    return text + (f" (n={len(defined)})" if len(defined) < len(values) else "")  # states where it is defined


def _metric_cells(data, method, metric):
    return [cell["metrics"][metric] for cell in data["results"][method].values()
            if isinstance(cell.get("metrics", {}).get(metric), dict) and "value" in cell["metrics"][metric]]


def _columns(data, method) -> dict[str, list]:
    """Per leaderboard column, one number per observation of this results.json (None: undefined)."""
    columns = {}
    pointing = _metric_cells(data, method, "pointing")
    if pointing:
        for name in ("ball", "paddle"):
            columns[f"{name} hit %"] = _per_observation_mean(
                [[None if h is None else float(h) for h in r["details"]["objects"][name]["hits"]] for r in pointing])
    objects = _metric_cells(data, method, "objects")
    if objects:
        for name in OBJECTS:
            columns[f"{name} mass %"] = _per_observation_mean(
                [r["details"]["objects"][name]["share_per_observation"] for r in objects])
    for metric, column in (("interventions", "interventions ρ ↑"), ("deletion", "deletion ↓"),
                           ("insertion", "insertion ↑"), ("randomization", "cascade area ↓")):
        cells = _metric_cells(data, method, metric)
        if cells:
            columns[column] = _per_observation_mean([r["per_observation"] for r in cells])
    cells = _metric_cells(data, method, "randomization")
    if cells:
        columns["cascade top ↓"] = _per_observation_mean([r["details"]["top_per_observation"] for r in cells])
    return columns


def _chances(data, method) -> dict[str, float]:
    """Chance levels: the objects' pixel shares and the pointing game's share of pixels within reach."""
    chances = {}
    for r in _metric_cells(data, method, "pointing"):
        for name in ("ball", "paddle"):
            chances[f"{name} hit %"] = r["details"]["objects"][name]["chance"]
    for r in _metric_cells(data, method, "objects"):
        for name in OBJECTS:
            chances[f"{name} mass %"] = r["details"]["objects"][name]["chance"]
    for metric, column in (("deletion", "deletion ↓"), ("insertion", "insertion ↑")):
        for r in _metric_cells(data, method, metric):
            chances[column] = r["details"]["chance"]["value"]
    return chances


def table(args) -> None:
    """One markdown table pooled over several results.json (same methods; each column pools the
    observations of every file that has its metric; the header says how many states each rests on)."""
    files = []
    for spec in args.results:
        path, _, label = spec.partition("=")  # results.json=edit:lower names its methods edit:lower
        with open(path) as handle:
            data = json.load(handle)
        if label:
            if len(data["results"]) != 1:
                sys.exit(f"{path}: a label needs a run of one method, got {', '.join(data['results'])}")
            (method,) = data["results"]
            for key in ("results", "summary"):
                data[key] = {label: data[key][method]}
        files.append(data)
    methods = list(dict.fromkeys(m for data in files for m in data["results"]))
    head = ["ball hit %", "paddle hit %"] + [f"{o} mass %" for o in OBJECTS] + [
        "interventions ρ ↑", "deletion ↓", "insertion ↑", "cascade area ↓", "cascade top ↓"]
    pooled = {m: {h: [] for h in head} for m in methods}
    games = {h: set() for h in head}
    chance_sums = {h: [] for h in head}
    seconds = {m: [0.0, 0] for m in methods}
    seen = {m: {h: set() for h in head} for m in methods}  # a state two runs share counts once
    for data in files:
        facts = data["observations"]["facts"] or []
        keys = [(f.get("seed"), f.get("step")) for f in facts]
        for method in (m for m in methods if m in data["results"]):
            for column, values in _columns(data, method).items():
                fresh = [i for i, key in enumerate(keys) if key not in seen[method][column]]
                pooled[method][column] += [values[i] for i in fresh]
                seen[method][column] |= set(keys)
                games[column] |= {f.get("seed") for f in facts}
            for column, chance in _chances(data, method).items():
                if chance is not None:
                    chance_sums[column].append(chance)
            for r in _metric_cells(data, method, "runtime"):
                seconds[method][0] += r["details"]["seconds"]
                seconds[method][1] += r["details"]["observations"]
    states = {h: max(len(pooled[m][h]) for m in methods) for h in head}
    groups = {}
    for h in head:
        groups.setdefault((states[h], len(games[h])), []).append(h)
    for (count, game_count), columns in groups.items():
        print(f"- {', '.join(columns)}: {count} states from {game_count} games")
    print("\n| method | " + " | ".join(head) + " | s / state |")
    print("|" + "---|" * (len(head) + 2))
    for method in methods:
        per_state = seconds[method][0] / seconds[method][1] if seconds[method][1] else None
        cells = [_cell(pooled[method][h], percent="%" in h) for h in head]
        cells.append(f"{per_state:.3g}" if per_state is not None else "n/a")
        print(f"| {method} | " + " | ".join(cells) + " |")
    chance = [(f"{100 * np.mean(chance_sums[h]):.2g}" if "%" in h else f"{np.mean(chance_sums[h]):.2f}")
              if chance_sums[h] else "" for h in head]
    print("| chance | " + " | ".join(chance) + " | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("collect", help="states from several whole games, with ground truth, in one .npz")
    c.add_argument("--model", default="breakout-a2c")
    c.add_argument("--games", type=int, default=5)
    c.add_argument("--per-game", type=int, default=20)
    c.add_argument("--first-seed", type=int, default=0)
    c.add_argument("--out", required=True)
    s = commands.add_parser("subset", help="--per-game states of each game of a collected file, spread over the game")
    s.add_argument("states")
    s.add_argument("--per-game", type=int, required=True)
    s.add_argument("--games", type=int, nargs="*", help="only these games (their seeds); default: all")
    s.add_argument("--out", required=True)
    t = commands.add_parser("table", help="the markdown leaderboard from a compare results.json")
    t.add_argument("results", nargs="+",
                   help="results.json of compare runs; PATH=LABEL renames a one-method run's method (edit:lower)")
    args = parser.parse_args()
    if args.command == "collect" and (args.games < 1 or args.per_game < 1):
        parser.error(f"--games and --per-game must be at least 1, got {args.games} and {args.per_game}")
    if args.command == "subset" and args.per_game < 1:
        parser.error(f"--per-game must be at least 1, got {args.per_game}")
    {"collect": collect, "subset": subset, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
