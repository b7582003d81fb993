"""The cross-agent tables of benchmarks/README.md, read off the results.json of ``compare --models``.

    interpret-rl compare --models breakout-a2c,breakout-ppo,breakout-pqn --methods perturbation,saliency \\
        --frames 102 --out /tmp/agents-out
    python benchmarks/agents_table.py /tmp/agents-out/results.json

Every number is a mean over the states with its 95 % percentile bootstrap interval over states
(computed by interpret_rl.across_agents; not clustered by game, so somewhat too narrow: states of
one game are not independent).
"""

from __future__ import annotations

import argparse
import json

from interpret_rl.report_agents import number_text


def _number(value, percent: bool) -> str:
    return number_text(value, percent).removesuffix(" %")  # the column header says %


def _cell(entry: dict | None, percent: bool = False, key: str = "mean") -> str:
    if not entry or entry.get(key) is None:
        return "n/a"
    interval = entry.get("interval")
    return _number(entry[key], percent) + (f" [{_number(interval[0], percent)}, {_number(interval[1], percent)}]"
                                           if interval else "")


def tables(data: dict) -> str:
    out = ["| agent | algorithm | steps | score (meta.json) |", "|---|---|---:|---|"]
    out += [f"| {a['name']} | {a['algo']} | {a['steps']:,} | {a['score']} |" for a in data["agents"]]
    objects = data["objects"]
    columns = list(dict.fromkeys(c for methods in objects.values() for cols in methods.values() for c in cols))
    if columns:
        chance = {c: e["chance"] for methods in objects.values() for cols in methods.values() for c, e in cols.items()}
        out += ["", "Where the maps lie (% of |mass| on the object; pointing: % of maps whose peak is on it; "
                    "interventions: rank correlation with the effect of changing each object):", "",
                "| agent | method | " + " | ".join(columns) + " |", "|---|---|" + "---:|" * len(columns),
                "| chance | | " + " | ".join(_number(chance[c], c != "interventions") for c in columns) + " |"]
        for agent, methods in objects.items():
            for method, cols in methods.items():
                out.append(f"| {agent} | {method} | "
                           + " | ".join(_cell(cols.get(c), c != "interventions") for c in columns) + " |")
    shares = data["frame_share"]
    frames = next((len(s["mean"]) for m in shares.values() for s in m.values() if s), 0)
    if frames:
        out += ["", f"Share of |mass| per stacked frame, % (oldest to newest; {_number(1 / frames, True)} each if "
                    "spread evenly):", "",
                "| agent | method | " + " | ".join(f"frame {f + 1}" for f in range(frames)) + " |",
                "|---|---|" + "---:|" * frames]
        for agent, methods in shares.items():
            for method, share in methods.items():
                if share:
                    out.append(f"| {agent} | {method} | " + " | ".join(
                        _cell({"mean": share["mean"][f], "interval": share["interval"][f]}, True)
                        for f in range(frames)) + " |")
    out += ["", "Agreement between agents (Spearman's rho of |maps| on the same state; mismatched: on different "
                "states):", "", "| method | agents | rho same state | rho mismatched |", "|---|---|---:|---:|"]
    for method, pairs in data["agreement"].items():
        out += [f"| {method} | {' vs '.join(p['agents'])} | {_cell(p)} | {_number(p.get('chance'), False)} |"
                for p in pairs]
    layers = ", ".join(f"{name}: {layer}" for name, layer in data["cka"]["layer"].items())
    out += ["", f"Linear CKA of the penultimate representations ({layers}); shuffled: one side's rows shuffled:", "",
            "| agents | CKA | shuffled |", "|---|---:|---:|"]
    out += [f"| {' vs '.join(p['agents'])} | {_cell(p, key='value')} | {_number(p['chance'], False)} |"
            for p in data["cka"]["pairs"]]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="results.json written by interpret-rl compare --models")
    args = parser.parse_args()
    with open(args.results, encoding="utf-8") as f:
        print(tables(json.load(f)))


if __name__ == "__main__":
    main()
