"""The report's "Metrics" section: per method and metric the mean over targets with its 95 %
bootstrap interval over observations and its rank, chance levels for the curves, verdicts of
checks read off the numbers shown beside them, and small plots of the deletion / insertion curves
(with their chance curves) and of the randomization cascade."""

from __future__ import annotations

import html
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from interpret_rl.compare import ComparisonResult
from interpret_rl.html_page import data_uri
from interpret_rl.metrics import MetricResult

# What is drawn follows from a metric's details, not its name (any plugin's metric can have it):
CURVE_KEYS = ("curve", "fractions")  # a score curve over the fraction of units replaced (+ "chance_curve")
CASCADE_KEYS = ("correlations", "layers")  # a rank correlation per cumulative randomisation step
CURVE_COLOURS = ("firebrick", "steelblue", "darkgreen", "darkorange")


def _drawn_metrics(result: ComparisonResult, keys: tuple[str, ...]) -> list[str]:
    """Names of the metrics some of whose results carry all of ``keys`` in their details."""
    return [m.name for m in result.metrics
            if any(all(k in r.details for k in keys) for method in result.methods
                   for r in _results(result, method.name, m.name))]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _interval(interval) -> str:
    return f" <span class='ci'>[{_fmt(interval[0])}, {_fmt(interval[1])}]</span>" if interval else ""


def _png_uri(fig: Figure) -> str:
    fig.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return data_uri(buffer.getvalue())


def _results(result: ComparisonResult, method: str, metric: str) -> list[MetricResult]:
    return [r for r in result.metric_results(method, metric) if isinstance(r, MetricResult)]


def _chance(result: ComparisonResult, method: str, metric: str) -> float | None:
    """Mean over targets of the chance level a curve metric measured with random unit orders."""
    levels = [r.details["chance"]["value"] for r in _results(result, method, metric)
              if isinstance(r.details.get("chance"), dict)]
    return sum(levels) / len(levels) if levels else None


def _curves_png(result: ComparisonResult, method: str) -> str | None:
    """Data URI of ``method``'s score curves (deletion / insertion: mean over targets, solid) and
    their chance curves (random unit orders, dotted), or None."""
    fig = Figure(figsize=(2.6, 1.8), dpi=90)
    ax = fig.add_subplot()
    drawn = False
    for index, metric in enumerate(_drawn_metrics(result, CURVE_KEYS)):
        scored = [r for r in _results(result, method, metric) if all(k in r.details for k in CURVE_KEYS)]
        if not scored or any(r.details["fractions"] != scored[0].details["fractions"] for r in scored):
            continue
        colour = CURVE_COLOURS[index % len(CURVE_COLOURS)]
        fractions = scored[0].details["fractions"]
        ax.plot(fractions, np.mean([r.details["curve"] for r in scored], axis=0), color=colour, label=metric)
        chance = [r.details["chance_curve"] for r in scored if "chance_curve" in r.details]
        if chance:
            ax.plot(fractions, np.mean(chance, axis=0), color=colour, linestyle=":", linewidth=1,
                    label=f"{metric} chance")
        drawn = True
    if not drawn:
        return None
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("fraction of units replaced", fontsize=6)
    ax.set_ylabel("score, 0 = baseline, 1 = observation", fontsize=5.5)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5, frameon=False)
    return _png_uri(fig)


def _cascade_png(result: ComparisonResult, method: str) -> str | None:
    """Data URI of ``method``'s randomization cascade: rank correlation with the trained network's
    map after each cumulative randomisation step (one line per target), the threshold dashed."""
    cascades = _drawn_metrics(result, CASCADE_KEYS)
    scored = []
    for target in result.targets:
        cell = result.cells.get((method, target.spec))
        found = cell.metrics.get(cascades[0]) if cell is not None and cascades else None
        if isinstance(found, MetricResult) and all(k in found.details for k in CASCADE_KEYS):
            scored.append((found, target.label))
    if not scored:
        return None
    fig = Figure(figsize=(2.8, 1.9), dpi=90)
    ax = fig.add_subplot()
    longest = max((r.details["layers"] for r, _ in scored), key=len)
    for r, label in scored:
        steps = r.details["correlations"]
        offset = len(longest) - len(steps)  # a layer target's cascade starts further down
        ax.plot(range(offset + 1, offset + len(steps) + 1), steps, marker="o", markersize=2.5, linewidth=1,
                label=label)
    ax.axhline(scored[0][0].details.get("threshold", 0.5), color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(1, len(longest) + 1), [name.replace("trunk.", "") for name in longest], fontsize=5,
                  rotation=25)
    ax.set_ylim(-0.65, 1.05)  # room under the curves for the legend
    ax.set_ylabel("rank corr. with trained map", fontsize=5.5)
    ax.set_xlabel("randomised down to (cumulative)", fontsize=5.5)
    ax.tick_params(axis="y", labelsize=6)
    if len(scored) <= 6:
        ax.legend(fontsize=4.5, frameon=False, ncol=3, loc="lower left")
    return _png_uri(fig)


def _value_cell(result: ComparisonResult, method: str, metric, rank: int | None, best: bool) -> str:
    """The table cell: mean [interval] #rank, chance or the verdict's numbers, undefined counts."""
    esc = html.escape
    mean = result.metric_mean(method, metric.name)
    if mean is None:
        error = result.metric_error(method, metric.name) or "no value"
        return f"<td class='na' title='{esc(error)}'>n/a</td>"
    text = f"<b>{_fmt(mean)}</b>" if best else _fmt(mean)
    cell = text + _interval(result.metric_interval(method, metric.name))
    cell += f" <span class='rank'>#{rank}</span>" if rank is not None else ""
    notes = []
    chance = _chance(result, method, metric.name)
    if chance is not None:
        notes.append(f"chance {_fmt(chance)}")
    undefined = sum(len(r.details.get("undefined") or {}) for r in _results(result, method, metric.name))
    if undefined:
        total = sum(len(r.per_observation or []) for r in _results(result, method, metric.name))
        notes.append(f"{undefined} of {total} undefined")
    clamped = [r.details["clamped_share"] for r in _results(result, method, metric.name)
               if "clamped_share" in r.details]
    if clamped and max(clamped) > 0:  # the model is not monotone along the curve: say how much was cut off
        notes.append(f"{100 * sum(clamped) / len(clamped):.0f} % of curve points clamped")
    verdict = result.metric_verdict(method, metric.name)
    if verdict is not None:
        notes.append(" · ".join(f"{name} {_fmt(v)}" for name, v in verdict["statistics"].items())
                     + f" (pass: all &lt; {_fmt(verdict['below'])})")
    passed = result.metric_passed(method, metric.name)
    if passed is not None:
        cell += f" <span class='badge {'pass' if passed else 'fail'}'>{'pass' if passed else 'fail'}</span>"
    if notes:
        cell += "<br><small>" + "; ".join(notes) + "</small>"
    error = result.metric_error(method, metric.name)
    per_target = "; ".join(f"{t.label}: {_fmt(r.value)}" for t in result.targets
                           for r in [result.cells[(method, t.spec)].metrics.get(metric.name)]
                           if isinstance(r, MetricResult))  # one-element loop: names the lookup
    title = f"per target: {per_target}" + (f"; failed on some targets: {error}" if error else "")
    return f"<td title='{esc(title)}'>{cell}</td>"


def render_metrics_section(result: ComparisonResult) -> str:
    """The "Metrics" section: one row per method, one column per metric with the mean over targets,
    its interval and rank among the methods (1 = best), pass/fail badges for checks, and the plots."""
    if not result.metrics:
        return ""
    esc = html.escape
    out = ["<h2>Metrics</h2>",
           f"<p>Each number is the metric's mean over the targets ({len(result.targets)}) on the same "
           f"{len(result.observations)} observations, with its 95 % bootstrap interval over the observations "
           f"in brackets; ↑ higher is better, ↓ lower is better. The report ranks methods per metric "
           f"(#1 = best; ties share a rank); the best value is bold. Deletion and insertion areas lie in "
           f"[0, 1]; <i>chance</i> is the same curve with the pixels in random order: a method is only "
           f"informative where it beats it. An observation is <i>undefined</i> for a curve when the baseline "
           f"scores the target as high as the observation, or nearly so; curve points beyond the baseline or "
           f"the observation's own score are clamped into [0, 1] (the share is shown). Randomization: the value "
           f"is the area "
           f"under the cascade curve; <i>top</i> is the correlation once the heads and the layer below them are "
           f"random; the verdict uses exactly these two numbers. n/a: the metric gave no value (hover for "
           f"why; hover any number for its per-target values).</p>",
           "<table class='kv metrics'><tr><th>method</th>"]
    for m in result.metrics:
        arrow = {True: " ↑", False: " ↓", None: ""}[m.higher_is_better]
        opts = ", ".join(f"{k}={v}" for k, v in m.options.items()) or "no options"
        out.append(f"<th title='{esc(m.description)} ({esc(m.plugin)}; {esc(opts)})'>{esc(m.name)}{arrow}</th>")
    curves, cascades = _drawn_metrics(result, CURVE_KEYS), _drawn_metrics(result, CASCADE_KEYS)
    has_curves, has_cascade = bool(curves), bool(cascades)
    if has_curves:
        out.append(f"<th>{esc(' / '.join(curves))} curves</th>")
    if has_cascade:
        out.append(f"<th>{esc(cascades[0])} cascade</th>")
    out.append("</tr>")
    ranks = {m.name: result.metric_ranks(m.name) for m in result.metrics}
    for method in result.methods:
        out.append(f"<tr><th>{esc(method.name)}</th>")
        for m in result.metrics:
            rank = ranks[m.name].get(method.name)
            out.append(_value_cell(result, method.name, m, rank, rank == 1 and len(ranks[m.name]) > 1))
        for wanted, draw, what in ((has_curves, _curves_png, "curves"), (has_cascade, _cascade_png, "cascade")):
            if wanted:
                uri = draw(result, method.name)
                out.append(f"<td><img class='curve' src='{uri}' alt='{what} of {esc(method.name)}'></td>"
                           if uri else "<td class='na'>n/a</td>")
        out.append("</tr>")
    out.append("</table>")
    for m in result.metrics:
        verdicts = {method.name: result.metric_passed(method.name, m.name) for method in result.methods}
        if all(v is None for v in verdicts.values()):
            continue
        passing = [name for name, v in verdicts.items() if v is True]
        failing = [name for name, v in verdicts.items() if v is False]
        unknown = [name for name, v in verdicts.items() if v is None]
        words = [f"passes: {', '.join(passing)}" if passing else "no method passes",
                 f"fails: {', '.join(failing)}" if failing else "no method fails"]
        if unknown:
            words.append(f"no verdict: {', '.join(unknown)}")
        out.append(f"<p class='verdict'>Sanity check <b>{esc(m.name)}</b> ({esc(m.description)}): "
                   f"{esc('; '.join(words))}.</p>")
    return "\n".join(out)


CSS = """.ci{color:#555;font-size:11px}table.metrics td small{color:#555;font-size:10.5px}"""
