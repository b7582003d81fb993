"""Write an ``AgentComparison`` (``interpret-rl compare --models a,b,c``): ``report.html``,
``results.json`` and ``observations.npz``.

The page: the agents (algorithm, steps, recorded score), where each agent's maps lie on the game's
objects (from the ground-truth metrics, when computed), which stacked frame each agent's maps use,
how far the agents' maps agree, how alike their penultimate representations are (linear CKA), and
the maps themselves for a few of the observations: columns agent x method, each map drawn as in
the single-agent report (``report.CellRenderer``: divided by its own largest |attribution|).
Every mean carries its 95 % bootstrap interval over the observations, in brackets.
"""

from __future__ import annotations

import json
import os
from html import escape as esc
from pathlib import Path

from interpret_rl.across_agents import MIN_CKA_OBSERVATIONS, AgentComparison
from interpret_rl.across_training import StripCellRenderer
from interpret_rl.atomic import atomic_write_text, check_output_dir
from interpret_rl.html_page import image_html, json_safe, page
from interpret_rl.observations import save_observations, spread
from interpret_rl.report import CSS, HTML_ZOOM

SHOWN = 6  # observations whose maps are drawn (spread over the pooled ones): each is a row of pictures


def number_text(value, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return (f"{100 * value:.1f} %" if abs(value) < 0.1 else f"{100 * value:.0f} %") if percent else f"{value:.2f}"


def _with_interval(entry: dict | None, percent: bool = False, value_key: str = "mean") -> str:
    """``mean [lo, hi]`` as HTML (interval in small grey type); n/a when there is no value."""
    if not entry or entry.get(value_key) is None:
        return "<span class='na'>n/a</span>"
    interval = entry.get("interval")
    bracket = (f" <span class='ci'>[{number_text(interval[0], percent)}, {number_text(interval[1], percent)}]</span>"
               if interval else "")
    return number_text(entry[value_key], percent) + bracket


def _agents_table(comparison: AgentComparison) -> str:
    out = ["<table class='kv'><tr><th>agent</th><th>algorithm</th><th>steps trained</th><th>score (meta.json)</th>"
           "<th>actions chosen on these states</th><th>model sha256</th></tr>"]
    for info, result in zip(comparison.agents, comparison.results):
        actions = [p["action"] for p in result.policy]
        counts = ", ".join(f"{name} {actions.count(name)}" for name in dict.fromkeys(sorted(actions)))
        out.append(f"<tr><td>{esc(info.name)}</td><td>{esc(info.algo)}</td><td>{info.steps:,}</td>"
                   f"<td>{esc(info.score)}</td><td>{esc(counts)}</td><td><code>{esc((info.sha256 or '?')[:16])}</code>"
                   f"</td></tr>")
    out.append("</table>")
    return "".join(out)


def _objects_section(comparison: AgentComparison) -> str:
    summary = comparison.object_summary()
    columns = list(dict.fromkeys(c for methods in summary.values() for cols in methods.values() for c in cols))
    if not columns:
        return ""
    chance = {}
    for methods in summary.values():
        for cols in methods.values():
            for name, entry in cols.items():
                chance.setdefault(name, entry.get("chance"))
    out = ["<h2>Where each agent's maps lie</h2>",
           "<p>From the emulator's ground truth: <i>mass</i> is the share of the map's |mass| on the object "
           "(all stacked frames), <i>pointing</i> the share of maps whose peak lies on the object, "
           "<i>interventions</i> the rank correlation between how densely the map covers each object and how "
           "much changing that object in the emulator moves the target. Each a mean over targets, then over the "
           "observations, with its 95 % bootstrap interval; chance (an evenly spread map) under each column "
           "name.</p><table class='kv metrics'><tr><th>agent</th><th>method</th>"]
    out += [f"<th>{esc(c)}<br><small>chance {number_text(chance[c], percent=c != 'interventions')}</small></th>"
            for c in columns]
    out.append("</tr>")
    for agent, methods in summary.items():
        for method, cols in methods.items():
            out.append(f"<tr><th>{esc(agent)}</th><th>{esc(method)}</th>")
            out += [f"<td>{_with_interval(cols.get(c), percent=c != 'interventions')}</td>" for c in columns]
            out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _frames_section(comparison: AgentComparison) -> str:
    shares = comparison.frame_share
    frames = next((len(s["mean"]) for methods in shares.values() for s in methods.values() if s), 0)
    if not frames:
        return ""
    out = ["<h2>Which stacked frame each agent uses</h2>",
           "<p>Share of each map's |mass| on each stacked frame, oldest to newest (per observation the shares "
           f"sum to 1; an even spread is {number_text(1 / frames, percent=True)} each); mean over targets and "
           "observations with its 95 % bootstrap interval. A method with one map for all frames (Grad-CAM) "
           "cannot tell them apart.</p><table class='kv metrics'><tr><th>agent</th><th>method</th>"]
    out += [f"<th>frame {f + 1}{' (oldest)' if f == 0 else ' (newest)' if f == frames - 1 else ''}</th>"
            for f in range(frames)]
    out.append("</tr>")
    for agent, methods in shares.items():
        for method, share in methods.items():
            out.append(f"<tr><th>{esc(agent)}</th><th>{esc(method)}</th>")
            out += [f"<td>{_with_interval({'mean': share['mean'][f], 'interval': share['interval'][f]}, True)}</td>"
                    if share else "<td class='na'>n/a</td>" for f in range(frames)]
            out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _agreement_section(comparison: AgentComparison) -> str:
    out = ["<h2>Agreement between agents</h2>",
           "<p>Spearman's rank correlation of two agents' |maps| of the same method on the same observation "
           "(every element of the observation: in Atari every pixel of every stacked frame), mean over the "
           "targets both agents have a map for and over observations with its 95 % bootstrap "
           "interval. <i>Mismatched</i>: the same on different observations (state i of one agent against "
           "state i + n/2 of the other, mostly from another game): what agreement the game's fixed layout alone "
           "gives.</p>"
           "<table class='kv metrics'><tr><th>method</th><th>agents</th><th>ρ same state</th>"
           "<th>ρ mismatched</th><th>states</th></tr>"]
    for method, pairs in comparison.agreement.items():
        for pair in pairs:
            out.append(f"<tr><th>{esc(method)}</th><td>{esc(' vs '.join(pair['agents']))}</td>"
                       f"<td>{_with_interval(pair)}</td><td>{number_text(pair.get('chance'))}</td>"
                       f"<td>{pair['observations']}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _cka_section(comparison: AgentComparison) -> str:
    cka = comparison.cka
    layers = ", ".join(f"{name}: {layer}" for name, layer in cka["layer"].items())
    out = ["<h2>Representation similarity (linear CKA)</h2>",
           f"<p>Linear CKA (Kornblith et al. 2019) between the agents' penultimate representations ({esc(layers)}) "
           "on the same observations: 1 = the same up to rotation and scale. In brackets its 95 % jackknife "
           "interval over observations (leave one out); <i>shuffled</i> is CKA with one side's rows shuffled: "
           "with fewer states than features CKA is high even for unrelated representations, so read a value "
           f"against it. n/a with fewer than {MIN_CKA_OBSERVATIONS} states (on 2 states CKA is 1 for any two "
           "representations).</p>"
           "<table class='kv metrics'><tr><th>agents</th><th>CKA</th><th>shuffled</th><th>states</th></tr>"]
    for pair in cka["pairs"]:
        out.append(f"<tr><td>{esc(' vs '.join(pair['agents']))}</td><td>{_with_interval(pair, value_key='value')}</td>"
                   f"<td>{number_text(pair['chance'])}</td><td>{pair['observations']}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _run_table(comparison: AgentComparison) -> str:
    out = ["<table class='kv'><tr><th>agent</th><th>method</th><th>seconds</th><th>outcome</th></tr>"]
    for info, result in zip(comparison.agents, comparison.results):
        for m in result.methods:
            errors = result.method_errors(m.name)
            outcome = (f"<span class='error'>{len(errors)} of {len(result.targets)} targets failed: "
                       f"{esc(errors[0])}</span>" if errors else "ok")
            out.append(f"<tr><td>{esc(info.name)}</td><td>{esc(m.name)}</td>"
                       f"<td>{result.method_seconds(m.name):.1f}</td><td>{outcome}</td></tr>")
    out.append("</table>")
    return "".join(out)


def _maps_section(comparison: AgentComparison, shown: list[int]) -> str:
    # one square per map (newest frame, map summed over the stack) keeps agents x methods columns on one
    # screen; the frames table above says which frame each map comes from
    renderers = [StripCellRenderer(result) for result in comparison.results]
    zoom = HTML_ZOOM if renderers[0].is_image else 1
    methods = comparison.methods
    facts = comparison.ground_truth.facts if comparison.ground_truth is not None else None
    out = ["<h2>Maps</h2>",
           f"<p>{len(shown)} of the {len(comparison.observations)} observations, spread over them. "
           + ("The observation column shows the newest stacked frame; each map is drawn on it, summed over the "
              "stacked frames" if renderers[0].is_image else "Each map is drawn as one bar per observation element")
           + " and divided by its own largest |value| (0 … 1 on the sequential scale, −1 … 1 on the "
           "diverging one). Click a picture to enlarge it.</p>",
           "<div class='scroll'><table class='grid'><tr><th rowspan='2'>target / observation</th>"
           "<th rowspan='2'>observation</th>"]
    out += [f"<th colspan='{len(methods)}'>{esc(info.name)} <small>({esc(info.algo)}, {info.steps:,} steps)</small>"
            f"</th>" for info in comparison.agents]
    out.append("</tr><tr>" + "".join(f"<th>{esc(m.name)}</th>" for _ in comparison.agents for m in methods) + "</tr>")
    observations = renderers[0].observations
    for target in comparison.targets:
        for i in shown:
            x = observations[i]
            where = f"from {comparison.origins[i]}'s play" + (f", step {facts[i]['step']}" if facts else "")
            out.append(f"<tr><th class='row'>{esc(target.label)}<br><small>obs {i}, {esc(where)}</small></th>"
                       f"<td><figure>{image_html(renderers[0].observation(x), zoom, renderers[0].is_image)}"
                       "</figure></td>")
            for renderer, result in zip(renderers, comparison.results):
                policy = result.policy[i]
                for m in methods:
                    cell = renderer.method_cell(m.name, target.spec, i, x)
                    image = image_html(cell.image, zoom, renderer.is_image) if cell.image is not None else ""
                    caption = cell.caption if cell.error else f"chose {policy['action']} ({policy['strength']})"
                    klass = " class='error'" if cell.error else ""
                    out.append(f"<td><figure>{image}<figcaption{klass}>{esc(caption)}</figcaption></figure></td>")
            out.append("</tr>")
    out.append("</table></div>")
    return "".join(out)


def render_agents_html(comparison: AgentComparison, show: int = SHOWN) -> str:
    names = ", ".join(a.name for a in comparison.agents)
    shown = sorted(set(spread(0, len(comparison.observations) - 1, min(show, len(comparison.observations)))))
    first = comparison.results[0]
    settings = [("agents", names), ("environment", comparison.env_id),
                ("observations", f"{len(comparison.observations)} of shape "
                                 f"{tuple(comparison.observations.shape[1:])}; {comparison.observation_source}"),
                ("targets", ", ".join(t.spec for t in comparison.targets)),
                ("methods", "; ".join(f"{m.name} ({', '.join(f'{k}={v}' for k, v in m.options.items()) or 'defaults'})"
                                      for m in comparison.methods)),
                ("metrics", ", ".join(m.name for m in first.metrics) or "none"),
                ("seed", str(comparison.seed)), ("created", comparison.created),
                ("versions", ", ".join(f"{k} {v}" for k, v in first.versions.items()))]
    out = [f"<h1>{len(comparison.agents)} agents on {esc(comparison.env_id)}</h1><h2>Settings</h2><table class='kv'>"]
    out += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in settings]
    out += ["</table><h2>Agents</h2>", _agents_table(comparison), _objects_section(comparison),
            _frames_section(comparison), _agreement_section(comparison), _cka_section(comparison),
            "<h2>Run</h2>", _run_table(comparison), _maps_section(comparison, shown),
            "<p>Also written: results.json (every number above, and per agent the full single-agent results), "
            "observations.npz (rerun with --observations).</p>"]
    return page(f"interpret-rl: {names}", out, CSS)


def write_agents_report(comparison: AgentComparison, out_dir: str | os.PathLike, show: int = SHOWN) -> dict[str, Path]:
    """Write report.html, results.json and observations.npz into ``out_dir`` (created if missing), each
    atomically. Returns ``{"html": path, "json": path, "observations": path}``."""
    out_dir = check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / "report.html", "json": out_dir / "results.json",
             "observations": out_dir / "observations.npz"}
    atomic_write_text(paths["html"], render_agents_html(comparison, show))
    atomic_write_text(paths["json"], json.dumps(json_safe(comparison.to_dict()), indent=2, allow_nan=False))
    save_observations(paths["observations"], comparison.observations, comparison.ground_truth)
    return paths
