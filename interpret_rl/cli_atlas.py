"""``interpret-rl atlas``: one page showing what every unit of a layer responds to and what it feeds."""

from __future__ import annotations

import time

import click

from interpret_rl import registry
from interpret_rl.cli_base import UserError, cli, positive


@cli.command(name="atlas")
@click.argument("model")
@click.option("--layer", default="conv3", show_default=True, help="A layer with positions (a conv layer).")
@click.option("--nmf", type=int, default=None, callback=positive,
              help="Show K NMF groups of the layer's activations instead of its channels.")
@click.option("--states", type=int, default=1000, show_default=True, callback=positive,
              help="Real states of the agent's own play to measure on (cached per agent).")
@click.option("--steps", type=int, default=256, show_default=True, callback=positive,
              help="Optimisation steps for the images (all units in one batch).")
@click.option("--diversity", type=int, default=1, show_default=True, callback=positive,
              help="Optimised images per unit.")
@click.option("--prior", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
              help="Optimise through the agent's learned prior where it has one (auto), or the pixels.")
@click.option("--out", default="atlas-out", show_default=True, help="Folder for atlas.html.")
@click.option("--device", default="cpu", show_default=True)
def atlas_command(model, layer, nmf, states, steps, diversity, prior, out, device):
    """Write an atlas of one LAYER of MODEL: per channel (or NMF group) its optimised input, the
    real states exciting it most (receptive-field crops), where it fires and what it feeds."""
    from interpret_rl.atlas import build_atlas, write_atlas
    from interpret_rl.report import check_output_dir

    try:
        out_dir = check_output_dir(out)
    except ValueError as err:
        raise UserError(str(err)) from None
    agent = registry.load_agent(model, device=device)
    if len(agent.observation_shape) != 3:
        raise UserError(f"{model}: the atlas needs image observations (C, H, W), this agent's are "
                        f"{list(agent.observation_shape)}")
    start = time.perf_counter()
    atlas = build_atlas(agent, layer, nmf=nmf, pool_size=states, steps=steps, diversity=diversity, prior=prior,
                        progress=lambda message: click.echo(f"{time.perf_counter() - start:6.1f} s  {message}",
                                                            err=True))
    path = write_atlas(atlas, out_dir)
    click.echo(f"atlas of {atlas.layer} ({len(atlas.units)} units) in {time.perf_counter() - start:.1f} s: {path}")
