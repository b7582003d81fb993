"""The report's "Ground truth" section: where each observation sits in its game, and in words how
each method's maps meet the game's objects (the ``objects`` and ``pointing`` metrics, averaged over
targets). Empty when the comparison has no ground truth or none of those metrics."""

from __future__ import annotations

from html import escape as esc

import numpy as np

from interpret_rl.compare import ComparisonResult
from interpret_rl.metrics import MetricResult


def _percent(x: float) -> str:
    return f"{100 * x:.2g} %" if x < 0.1 else f"{100 * x:.0f} %"


def _mean_percent(values) -> str:
    defined = [v for v in values if v is not None]
    return _percent(float(np.mean(defined))) if defined else "n/a"


def _details(result: ComparisonResult, method: str, metric: str) -> list[dict]:
    return [r.details for r in result.metric_results(method, metric) if isinstance(r, MetricResult)]


def _facts_table(facts: list[dict]) -> str:
    keys = [k for k in ("step", "lives", "score", "bricks_left") if any(k in f for f in facts)]
    def cell(facts: dict, key: str) -> str:
        of = f" of {facts['game_steps']}" if key == "step" and facts.get("game_steps") else ""
        return f"<td>{esc(str(facts.get(key, '')))}{of}</td>"

    rows = "".join(f"<tr><td>obs {i}</td>{''.join(cell(f, k) for k in keys)}</tr>" for i, f in enumerate(facts))
    return ("<table class='kv'><tr><th>observation</th>"
            + "".join(f"<th>{esc(k.replace('_', ' '))}</th>" for k in keys) + f"</tr>{rows}</table>")


def _method_lines(result: ComparisonResult, method: str) -> list[str]:
    lines = []
    objects = _details(result, method, "objects")
    if objects:
        for name in objects[0]["objects"]:
            shares = [d["objects"][name]["share"] for d in objects if d["objects"][name]["share"] is not None]
            chance = objects[0]["objects"][name]["chance"]
            if shares and not name.startswith("bricks row"):
                share = float(np.mean(shares))
                factor = f"; {share / chance:.1f}x chance" if chance > 0 else ""
                per_frame = ", ".join(_mean_percent([d["objects"][name]["share_per_frame"][f] for d in objects])
                                      for f in range(len(objects[0]["objects"][name]["share_per_frame"])))
                per_frame = per_frame if "," in per_frame else ""  # one frame: nothing to compare
                lines.append(f"{name}: {_percent(share)} of the mass on {_percent(chance)} of the pixels "
                             f"(chance {_percent(chance)}{factor})"
                             + (f"; of each stacked frame's mass, oldest to newest: {per_frame}" if per_frame else ""))
    pointing = _details(result, method, "pointing")
    if pointing:
        for name, entry in pointing[0]["objects"].items():
            rates = [d["objects"][name]["hit_rate"] for d in pointing if d["objects"][name]["hit_rate"] is not None]
            if rates:
                chance = entry["chance"] or 0.0
                lines.append(f"{name}: the map's peak within {pointing[0]['tolerance']:g} px in "
                             f"{_percent(float(np.mean(rates)))} of the maps (chance {_percent(chance)})")
    return lines


def render_ground_truth_section(result: ComparisonResult) -> str:
    truth = result.ground_truth
    if truth is None:
        return ""
    out = ["<h2>Ground truth from the emulator</h2>",
           f"<p>Each observation's place in its game (from the RAM, {esc(truth.env_id)}):</p>",
           _facts_table(truth.facts)]
    per_method = {m.name: _method_lines(result, m.name) for m in result.methods}
    if any(per_method.values()):
        out.append("<p>Where the maps' |mass| and peaks lie, averaged over the targets "
                   f"({len(result.targets)}); chance is what an evenly spread map would score:</p><ul>")
        for method, lines in per_method.items():
            if lines:
                out.append(f"<li><b>{esc(method)}</b><ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines)
                           + "</ul></li>")
        out.append("</ul>")
    return "".join(out)
