"""The ``interpret-rl`` command line: a thin click layer over the library API."""

from __future__ import annotations

import contextlib
import math
import sys

import click

from interpret_rl import registry
from interpret_rl.cli_base import UserError, cli, hold_writer_lock, positive


def _default_preset(env_id: str, presets: dict) -> str:
    """The algorithm's preset made for ``env_id``'s family if it has one, else breakout (Atari) or cartpole."""
    from interpret_rl.envs import is_atari, is_minatar

    own = {"Pendulum-v1": "pendulum"}.get(env_id, "minatar" if is_minatar(env_id) else None)
    if own in presets:
        return own
    return "breakout" if is_atari(env_id) else "cartpole"


@cli.command()
@click.option("--algo", type=click.Choice(["a2c", "ppo", "pqn", "dqn"]), default="a2c", show_default=True,
              help="Training algorithm (a Q-learner's agent acts greedily on its Q-values).")
@click.option("--env", "env_id", default=None, help="Environment id, e.g. CartPole-v1 or ALE/Breakout-v5.")
@click.option("--preset", type=click.Choice(["cartpole", "breakout", "paper", "pendulum", "minatar"]), default=None,
              help="Settings preset of the algorithm (default: the algorithm's preset for the env's family "
                   "(pendulum: PPO; minatar: A2C), else breakout for Atari, cartpole otherwise; paper: A2C only).")
@click.option("--preset-file", type=click.Path(dir_okay=False), default=None,
              help="Settings file that `tune` writes (studies/<study>-best.json), in place of --preset; "
                   "the other options override it.")
@click.option("--steps", type=int, default=None, callback=positive, help="Environment steps to train for.")
@click.option("--name", default=None, help="Registry name of the model (default: <env>-<algo>).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--num-envs", type=int, default=None, callback=positive, help="Parallel environments.")
@click.option("--n-steps", type=int, default=None, callback=positive, help="Steps per env per update.")
@click.option("--lr", type=float, default=None, callback=positive, help="Learning rate.")
@click.option("--architecture", default=None,
              help="Network: mlp, nature-cnn or one a plugin registers (default: by observation shape).")
@click.option("--architecture-arg", "architecture_args", multiple=True, metavar="KEY=VALUE",
              help="An argument of the network's constructor, e.g. hidden=[128,128] (JSON where it parses, "
                   "else text; repeatable; added to the preset's). See docs/methods-api.md, Architectures.")
@click.option("--target-return", type=float, default=None, help="Stop once the 100-episode mean reaches this.")
@click.option("--torch-threads", type=int, default=None, callback=positive,
              help="Torch threads (default: all cores for images, 1 for vectors; 1 each when runs share cores).")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard scalars.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep a weight snapshot at every checkpoint.")
@click.option("--checkpoint-every", type=int, default=None, callback=positive, help="Steps between checkpoints.")
@click.option("--eval-episodes", type=int, default=10, show_default=True, help="Evaluate after training (0: skip).")
@click.option("--force", is_flag=True, help="Overwrite an existing model of the same name.")
@click.option("--resume", default=None, metavar="NAME",
              help="Continue training your model NAME from its last checkpoint (--steps: new total).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(algo, env_id, preset, preset_file, steps, name, seed, device, num_envs, n_steps, lr, architecture,
          architecture_args, target_return, torch_threads, tensorboard, keep_checkpoints, checkpoint_every,
          eval_episodes, force, resume, quiet):
    """Train an agent (A2C, PPO, PQN or DQN) and save it in the registry."""
    from interpret_rl import rollout
    from interpret_rl.agent import Q_LEARNERS
    from interpret_rl.distributed import Ranks
    from interpret_rl.envs import check_env_id, check_env_supported
    from interpret_rl.rollout import algorithm_module

    if resume:
        return _resume(resume, steps, device, tensorboard, eval_episodes, quiet, torch_threads)
    presets = algorithm_module(algo).PRESETS
    if preset_file:  # the settings tune found stand in for a preset
        algo, presets, preset = _preset_file(preset_file, algo, preset)
    algorithm = algorithm_module(algo)
    preset = preset or _default_preset(env_id or "CartPole-v1", presets)
    if preset not in presets:
        raise UserError(f"--preset {preset}: not a preset of {algo}; choose one of {', '.join(presets)}")
    env_id = env_id or presets[preset]["env_id"]
    check_env_id(env_id)
    check_env_supported(env_id, discrete_actions=algo in Q_LEARNERS)  # missing package, odd spaces: before any write
    name = registry.check_name(name or f"{env_id.removeprefix('ALE/').replace('/', '-').split('-v')[0].lower()}-{algo}")
    out_dir = registry.user_models_dir() / name
    main_rank = Ranks().is_main  # under torchrun only rank 0 checks, saves and evaluates
    if main_rank:
        hold_writer_lock(out_dir)
    if main_rank and (out_dir / registry.META).exists() and not force:
        raise UserError(f"model {name!r} already exists at {out_dir}; pick another --name or pass --force")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    config = rollout.config_from_preset(algorithm.CONFIG, presets, preset, env_id=env_id, total_steps=steps,
                                        seed=seed, device=device, num_envs=num_envs, n_steps=n_steps, lr=lr,
                                        target_return=target_return, architecture=architecture,
                                        architecture_args=_architecture_args(architecture_args, architecture,
                                                                             presets[preset]),
                                        torch_threads=torch_threads, keep_checkpoints=keep_checkpoints or None,
                                        checkpoint_every_steps=checkpoint_every)
    click.echo(f"training {name}: {algo}, {env_id}, preset {preset}, {config.total_steps:,} steps, seed {seed}",
               err=True)
    with _training_outcomes(name):
        result = algorithm.train(config, out_dir=out_dir, progress=not quiet, tensorboard=tensorboard)
    if main_rank:
        _finish_training(result, name, out_dir, eval_episodes, seed)


def _architecture_args(given: tuple[str, ...], architecture: str | None, preset: dict) -> dict | None:
    """``--architecture-arg KEY=VALUE`` (values JSON where they parse) over the preset's arguments,
    which belong to the preset's network only; None when none are given (the preset's stand)."""
    import json

    if not given:
        return None
    args = {} if architecture else dict(preset.get("architecture_args", {}))
    for item in given:
        key, sep, text = item.partition("=")
        if not (sep and key.strip().isidentifier()):
            raise UserError(f"--architecture-arg {item}: write KEY=VALUE, e.g. hidden=[128,128]")
        try:
            args[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            args[key.strip()] = text
    return args


def _preset_file(path: str, algo: str, preset: str | None) -> tuple[str, dict, str]:
    """``(algo, presets, preset)`` for ``train --preset-file``: the file is the one preset there is."""
    from interpret_rl.tune import read_preset_file

    if preset:
        raise UserError(f"--preset {preset} and --preset-file {path}: give one of them")
    file_algo, values = read_preset_file(path)
    algo_given = click.get_current_context().get_parameter_source("algo") != click.core.ParameterSource.DEFAULT
    if algo_given and algo != file_algo:
        raise UserError(f"--algo {algo}: {path} holds {file_algo} settings; leave --algo out or use {file_algo}")
    return file_algo, {"file": values}, "file"


@contextlib.contextmanager
def _training_outcomes(name: str):
    """Interrupted: say what was kept and exit 130/143. Non-finite loss: one line, exit 1."""
    from interpret_rl.interrupts import TrainingInterrupted
    from interpret_rl.rollout import NonFiniteLossError

    try:
        yield
    except TrainingInterrupted as stop:
        click.echo(f"{stop}; checkpoint saved. Continue with: interpret-rl train --resume {name}", err=True)
        sys.exit(stop.exit_code)
    except NonFiniteLossError as err:
        raise click.ClickException(f"{err} (model {name!r})") from None


def _resume(name, steps, device, tensorboard, eval_episodes, quiet, torch_threads=None):
    from interpret_rl.distributed import Ranks
    from interpret_rl.rollout import algorithm_module, config_from_meta

    out_dir = registry.resolve(name)
    if registry.is_bundled(out_dir):
        raise UserError(f"--resume {name}: bundled models are read-only; train your own with --name")
    if Ranks().is_main:
        hold_writer_lock(out_dir)
    agent = registry.load_agent(out_dir, device=device)
    saved = agent.meta.get("config")
    if not isinstance(saved, dict):
        raise UserError(f"--resume {name}: {out_dir / registry.META} records no training config")
    algorithm = algorithm_module(agent.meta.get("algo", "a2c"))  # models from before PPO are A2C
    overrides = {"device": device, "total_steps": steps, "torch_threads": torch_threads}
    config = config_from_meta(algorithm.CONFIG, saved, **{k: v for k, v in overrides.items() if v is not None})
    if agent.steps_trained >= config.total_steps:
        raise UserError(f"--resume {name}: already trained {agent.steps_trained:,} of {config.total_steps:,} "
                        f"steps; pass a larger --steps")
    click.echo(f"resuming {name} at step {agent.steps_trained:,} of {config.total_steps:,}", err=True)
    with _training_outcomes(name):
        result = algorithm.train(config, out_dir=out_dir, progress=not quiet, tensorboard=tensorboard,
                                 agent=agent, resume=True)
    if Ranks().is_main:
        _finish_training(result, name, out_dir, eval_episodes, config.seed)


def _finish_training(result, name, out_dir, eval_episodes, seed):
    from interpret_rl.evaluate import evaluate
    from interpret_rl.training_log import plot_training_curve

    plot_training_curve(out_dir)
    line = f"trained {name}: {result.steps:,} steps in {result.seconds:.1f} s"
    if not math.isnan(result.mean_return):
        line += f", mean return of the last 100 episodes {result.mean_return:.1f}"
    click.echo(line)
    if eval_episodes > 0:
        evaluation = evaluate(result.agent, episodes=eval_episodes, seed=seed + 10_000)
        registry.update_meta(out_dir, evaluation=evaluation.as_dict())
        click.echo(f"evaluation over {eval_episodes} episodes: {evaluation.mean:.1f} +/- {evaluation.std:.1f}")
    click.echo(f"saved to {out_dir}")


@cli.command(name="evaluate")
@click.argument("model")
@click.option("--episodes", type=int, default=10, show_default=True, callback=positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--greedy", is_flag=True, help="Take the most likely action instead of sampling.")
@click.option("--record", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write a video of the first episode (.mp4 or .gif).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--save", is_flag=True, help="Store the result in the model's meta.json (user models).")
def evaluate_command(model, episodes, seed, greedy, record, device, save):
    """Play full games with MODEL and report the unclipped score (mean +/- std)."""
    from interpret_rl.evaluate import evaluate
    from interpret_rl.video_file import check_video_path, write_video

    if record:
        try:
            record = check_video_path(record)
        except ValueError as err:
            raise UserError(f"--record: {err}") from None
    if save:  # checked before any game is played: a bundled model is never written; one writer at a time
        path = registry.resolve(model)
        if registry.is_bundled(path):
            raise UserError(f"{model} is a bundled model; its meta.json is part of the package and is not changed")
        hold_writer_lock(path)
    agent = registry.load_agent(model, device=device)
    result = evaluate(agent, episodes=episodes, seed=seed, deterministic=greedy, record_first=bool(record))
    policy = "greedy" if result.deterministic else "stochastic"
    click.echo(f"{agent.name}: {agent.env_id}, {episodes} episodes, "
               f"{policy} policy: score {result.mean:.2f} +/- {result.std:.2f} "
               f"(min {min(result.scores):g}, max {max(result.scores):g})")
    if record:
        write_video(result.frames, record)
        click.echo(f"video of the first episode ({len(result.frames)} frames): {record}")
    if save:
        registry.update_meta(path, evaluation=result.as_dict())


@cli.command()
def models():
    """List registered models: bundled ones and yours; a broken folder is named on stderr."""
    rows = [("NAME", "ENV", "ARCHITECTURE", "STEPS", "SCORE", "SOURCE")]
    found, broken = registry.scan_models()
    for name, path, reason in broken:
        click.echo(f"broken: {name} ({path}): {reason}", err=True)
    for info in found:
        score = info.score
        score_text = f"{score['mean']:.1f} +/- {score['std']:.1f}" if score else "-"
        rows.append((info.name, info.meta["env_id"], info.meta["architecture"],
                     f"{info.meta['steps_trained']:,}", score_text, "bundled" if info.bundled else "user"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _one_line_plugin_warnings() -> None:
    """Show a broken plugin as one line on stderr instead of Python's two-line warning format."""
    import warnings

    from interpret_rl.plugin_manager import PluginLoadWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PluginLoadWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    _one_line_plugin_warnings()
    cli(prog_name="interpret-rl")


# The explanation commands (compare, video), the listings (plugins, methods, metrics), `atlas`, `import`,
# `tune` and the `prior` group live in their own modules; importing them adds them to ``cli``.
from interpret_rl import cli_atlas, cli_explain, cli_import, cli_plugins, cli_prior, cli_tune  # noqa: E402,F401
