"""``interpret-rl import``: an agent trained elsewhere into the registry (see interpret_rl/importing)."""

from __future__ import annotations

import click

from interpret_rl.cli_base import UserError, cli


@cli.command(name="import")
@click.argument("path")
@click.option("--name", required=True, help="Registry name of the imported model.")
@click.option("--force", is_flag=True, help="Replace an existing model of the same name.")
@click.option("--architecture", default=None,
              help="Layout of a state dict: cleanrl-ppo-atari, cleanrl-dqn-atari, cleanrl-ppo or cleanrl-dqn "
                   "(default: the one its weights fit). Not for stable-baselines3 zips.")
@click.option("--env", "env_id", default=None,
              help="Environment the agent acts in (default: CartPole-v1, Acrobot-v1, MountainCar-v0 or "
                   "ALE/Breakout-v5, whichever fits its spaces).")
def import_command(path, name, force, architecture, env_id):
    """Import a stable-baselines3 .zip (A2C, PPO, DQN, QR-DQN) or a CleanRL / PyTorch state dict
    from PATH as model NAME. Nothing in the file is run: pickled parts are refused or left unread."""
    from interpret_rl.importing import ImportRefusedError, import_agent

    try:
        result = import_agent(path, name, force=force, architecture=architecture, env_id=env_id)
    except ImportRefusedError as err:
        raise UserError(str(err)) from None
    if result.env_guessed:
        click.echo(f"the file records no environment; its spaces fit {result.env_id} (pass --env to choose)", err=True)
    source = result.source
    origin = (f"stable-baselines3 {source.get('sb3_version') or '?'} {source['policy_class'].rsplit('.', 1)[-1]}"
              if source["format"] == "stable-baselines3" else f"state dict, layout {source['layout']}")
    click.echo(f"imported {name}: {result.algo} from {origin} as {result.architecture} in {result.env_id}")
    click.echo(f"saved to {result.path}")
    from interpret_rl import registry

    if (registry.BUNDLED_DIR / name / registry.META).is_file():  # user models shadow bundled ones of the same name
        click.echo(f"note: {name} now names this import; the bundled {name} is hidden until you remove "
                   f"{result.path}", err=True)
