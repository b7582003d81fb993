"""The report's section on synthetic images: each one with its honest numbers, and the real states
that excite the same target most (dataset examples) shown as images.

The numbers come from ``interpret_rl.honest_numbers`` through the method's extras (optim writes
them): the target against its real range, an out-of-distribution flag, realism (nearest real state
against the typical real-to-real distance, beside the same ratio for held-out real states) and the
prior's reconstruction error. A method that writes none of them still gets its images shown.
"""

from __future__ import annotations

import html

from interpret_rl.html_page import image_html

EXAMPLE_ZOOM = 2


def _number(value, digits: str = ".3g") -> str:
    return "n/a" if value is None else format(value, digits)


def honest_lines(extras: dict, j: int) -> list[tuple[str, bool]]:
    """Lines of text about synthetic image ``j`` (``(text, is_warning)``), from the method's extras."""
    def at(key):
        values = extras.get(key)
        return values[j] if isinstance(values, list) and j < len(values) else None

    lines = []
    activation = at("activation")
    if activation is not None:
        text = f"target {activation:.3g}"
        if extras.get("max_real_activation") is not None:
            times = at("times_real_max")
            text += (f" = {times:.2f}× the best real state" if times is not None else " (best real state")
            text += (f" ({extras['max_real_activation']:.3g}" if times is not None else
                     f" {extras['max_real_activation']:.3g}")
            if extras.get("p99_real_activation") is not None:
                text += f"; 99th percentile {extras['p99_real_activation']:.3g}"
            text += ")"
            spread = at("times_real_spread")
            if times is None and spread is not None:  # a best real value <= 0: compare rises over the median
                text += f", {spread:.2f}× the best real state's rise above the real median"
        lines.append((text, False))
    if at("out_of_distribution"):
        lines.append(("OUT OF DISTRIBUTION: over 10× the real maximum", True))
    ratio = at("nearest_real_ratio")
    if ratio is not None:
        text = f"nearest real state: {ratio:.2f}× the typical real-to-real distance"
        held = extras.get("held_out_nearest_real_ratio")
        if held:
            text += f" (held-out real states: median {held['median']:.2f}, 90th percentile {held['p90']:.2f})"
            if ratio > held["p90"]:
                lines.append((text, False))
                lines.append(("farther from the real states than 90% of held-out real states are", True))
                text = None
        if text:
            lines.append((text, False))
    rmse = at("reconstruction_rmse")
    if rmse is not None:
        lines.append((f"prior reconstruction RMSE {rmse:.1f} (held-out real states "
                      f"{_number(extras.get('prior_held_out_rmse'), '.1f')})", False))
    if extras.get("path"):
        where = "the latent space of the learned prior" if extras["path"] == "prior" else "pixels"
        lines.append((f"optimised in: {where}", False))
    return lines


def render_synthesis_section(result, renderer) -> str:
    """HTML: per synthesis method and target, every synthetic image with its numbers, then the top
    real states as images. Empty when no method synthesises."""
    from interpret_rl.report import grey_rgb, side_by_side  # report imports this module

    esc = html.escape
    synthesis = [m for m in result.methods if m.kind == "synthesis"]
    if not synthesis or not renderer.is_image:
        return ""
    out = ["<h2>Synthetic images: honest numbers and dataset examples</h2>",
           "<p>Each synthetic image with its target against the real range (best real state and 99th percentile "
           "of the real states), how close it is to a real state (distance to the nearest real state ÷ the median "
           "distance between a real state and its nearest other real state; real states from games outside the "
           "pool give the reference range), and, where the agent has a learned prior, how well the prior "
           "reconstructs it. Below each: the real states exciting the target most (newest frame of each stack, "
           "its target score underneath).</p>"]
    for method in synthesis:
        for target in result.targets:
            cell = result.cell(method.name, target.spec)
            if not cell.ok:
                continue
            explanation, extras = cell.explanation, cell.explanation.extras
            out.append(f"<div class='synth'><h3>{esc(method.name)} · {esc(target.label)}</h3>"
                       f"<p><small>real states: {esc(str(extras.get('real_states', 'the observations given')))}"
                       f"</small></p><div class='synth-row'>")
            for j, image in enumerate(explanation.values.detach().cpu().numpy()):
                lines = "".join(f"<div{' class=error' if warn else ''}>{esc(text)}</div>"
                                for text, warn in honest_lines(extras, j))
                out.append(f"<figure class='synth-image'>{image_html(renderer.observation(image), 2)}"
                           f"<figcaption>{lines}</figcaption></figure>")
            out.append("</div>")
            examples = explanation.examples
            if examples is not None and len(examples):
                scores = extras.get("dataset_example_scores", [None] * len(examples))
                out.append(f"<p><small>top {len(examples)} real states for this target</small></p>"
                           "<div class='examples'>")
                for rank, (state, score) in enumerate(zip(examples.detach().cpu().numpy(), scores), start=1):
                    newest = side_by_side([grey_rgb(state[-1], renderer.lo, renderer.hi)])
                    out.append(f"<figure class='example'>{image_html(newest, EXAMPLE_ZOOM)}"
                               f"<figcaption>#{rank}: {_number(score)}</figcaption></figure>")
                out.append("</div>")
            out.append("</div>")
    return "\n".join(out)


CSS = """.synth{margin-bottom:1.5em;border-top:1px solid #ddd}.synth-row{display:flex;flex-wrap:wrap;gap:12px}
figure.synth-image{width:700px}figure.synth-image figcaption div{margin:2px 0}
.examples{display:flex;flex-wrap:wrap;gap:6px}figure.example{width:168px}figure.example img{width:168px}"""

