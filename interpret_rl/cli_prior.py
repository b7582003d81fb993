"""``interpret-rl prior``: train and inspect the learned prior optim searches in (see prior.py)."""

from __future__ import annotations

import click

from interpret_rl import registry
from interpret_rl.cli_base import bad_request_is_a_user_error, cli, positive


@cli.group(name="prior")
def prior_group():
    """Learned priors of an agent's observations (optim keeps its frames on them)."""


@prior_group.command(name="train")
@click.argument("model")
@click.option("--steps", type=int, default=None, callback=positive, help="Adam updates  [default: 3000]")
@click.option("--minutes", type=float, default=14.0, show_default=True, callback=positive,
              help="Stop training after this many minutes, whatever --steps says (the default keeps the "
                   "training within 15 minutes on 2 busy cores: the bundled prior did 2,751 steps in 14; "
                   "collecting the real states the first time adds minutes).")
@click.option("--latent-dim", type=int, default=None, callback=positive, help="Size of the latent code  [default: 32]")
@click.option("--pool-size", type=int, default=None, callback=positive,
              help="Real states of the agent's own play, and as many again with exploration  [default: 1000]")
@click.option("--epsilon", type=click.FloatRange(0, 1), default=None,
              help="Share of random actions in the exploring games  [default: 0.1]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Train again even when the agent has a prior.")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="CPU threads for torch (0: torch's default).")
def train_command(model, steps, minutes, latent_dim, pool_size, epsilon, seed, force, threads):
    """Train MODEL's prior on its real states (collected once, cached) and store it beside the model."""
    import dataclasses

    import torch

    from interpret_rl.prior import PriorConfig, observation_scale, prior_folder, save_prior, train_prior

    if threads:
        torch.set_num_threads(threads)
    agent = registry.load_agent(model)
    with bad_request_is_a_user_error():
        observation_scale(agent)  # a vector-observation agent is refused before any work
    existing = prior_folder(agent)
    if existing is not None and not force:
        click.echo(f"{agent.name} already has a prior at {existing}; reusing it (--force trains a new one)")
        return
    given = {"steps": steps, "latent_dim": latent_dim, "pool_size": pool_size, "epsilon": epsilon,
             "max_seconds": minutes * 60 if minutes else None}
    config = dataclasses.replace(PriorConfig(seed=seed), **{k: v for k, v in given.items() if v is not None})
    click.echo(f"training a prior for {agent.name}: {config.steps} steps, latent {config.latent_dim}, "
               f"{2 * config.pool_size} states (collected once, then cached)", err=True)

    def progress(step, total, loss):
        click.echo(f"  step {step:>6} of {total}: loss {loss:.1f}", err=True)

    with bad_request_is_a_user_error():
        prior, record = train_prior(agent, config, progress=progress)
    folder = save_prior(prior, agent, record)
    click.echo(f"trained in {record['seconds_training']:.0f} s ({record['steps_done']} steps; states collected in "
               f"{record['seconds_collecting']:.0f} s); reconstruction RMSE on held-out real states "
               f"{record['reconstruction_rmse_held_out']:.2f} (0..255 scale)")
    click.echo(f"saved to {folder}")


@prior_group.command(name="show")
@click.argument("model")
def show_command(model):
    """Where MODEL's prior is and how it was trained."""
    from interpret_rl.prior import load_prior, prior_folder

    agent = registry.load_agent(model)
    prior = load_prior(agent)
    if prior is None:
        click.echo(f"{agent.name} has no prior; train one with: interpret-rl prior train {model}")
        return
    training = prior.meta.get("training", {})
    click.echo(f"{agent.name}: prior at {prior_folder(agent)}, latent {prior.latent_dim}, "
               f"{training.get('steps_done', '?')} steps on {training.get('training_states', '?')} states in "
               f"{training.get('seconds_training', '?')} s; held-out reconstruction RMSE "
               f"{training.get('reconstruction_rmse_held_out', float('nan')):.2f}")
