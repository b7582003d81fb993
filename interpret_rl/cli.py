"""The ``interpret-rl`` command line: a thin click layer over the library API."""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import click

from interpret_rl import registry
from interpret_rl.distributed import Ranks
from interpret_rl.envs import UnknownEnvError, check_env_id, is_atari


class UserError(click.ClickException):
    """A mistake in what the user asked for: one line on stderr, exit code 2."""

    exit_code = 2


def user_errors() -> tuple[type[BaseException], ...]:
    from interpret_rl.a2c import InvalidConfigError
    from interpret_rl.agent import UnknownArchitectureError

    errors: list[type[BaseException]] = [registry.ModelNotFoundError, registry.ModelLoadError,
                                         registry.InvalidNameError, InvalidConfigError,
                                         UnknownEnvError, UnknownArchitectureError]
    try:
        from interpret_rl.methods import UnknownMethodError
        from interpret_rl.targets import TargetError

        errors += [UnknownMethodError, TargetError]
        from interpret_rl.metrics import UnknownMetricError

        errors.append(UnknownMetricError)
    except ImportError:  # pragma: no cover - only while the compare layer is absent
        pass
    return tuple(errors)


class InterpretRLGroup(click.Group):
    """Turns the library's "you asked for something that does not exist" errors into exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except user_errors() as err:
            raise UserError(str(err)) from None


@click.group(cls=InterpretRLGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="interpret-rl")
def cli():
    """Train A2C agents and compare what explanation methods say they look at."""


def _default_preset(env_id: str) -> str:
    return "breakout" if is_atari(env_id) else "cartpole"


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


@cli.command()
@click.option("--env", "env_id", default=None, help="Environment id, e.g. CartPole-v1 or ALE/Breakout-v5.")
@click.option("--preset", type=click.Choice(["cartpole", "breakout", "paper"]), default=None,
              help="Settings preset (default: breakout for Atari, cartpole otherwise).")
@click.option("--steps", type=int, default=None, callback=_positive, help="Environment steps to train for.")
@click.option("--name", default=None, help="Registry name of the model (default: <env>-a2c).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--num-envs", type=int, default=None, callback=_positive, help="Parallel environments.")
@click.option("--n-steps", type=int, default=None, callback=_positive, help="Steps per env per update.")
@click.option("--lr", type=float, default=None, callback=_positive, help="Learning rate.")
@click.option("--architecture", default=None,
              help="Network: mlp, nature-cnn or one a plugin registers (default: by observation shape).")
@click.option("--target-return", type=float, default=None, help="Stop once the 100-episode mean reaches this.")
@click.option("--tensorboard", is_flag=True, help="Also write TensorBoard scalars.")
@click.option("--keep-checkpoints", is_flag=True, help="Keep a weight snapshot at every checkpoint.")
@click.option("--checkpoint-every", type=int, default=None, callback=_positive, help="Steps between checkpoints.")
@click.option("--eval-episodes", type=int, default=10, show_default=True, help="Evaluate after training (0: skip).")
@click.option("--force", is_flag=True, help="Overwrite an existing model of the same name.")
@click.option("--resume", default=None, metavar="NAME",
              help="Continue training your model NAME from its last checkpoint (--steps: new total).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(env_id, preset, steps, name, seed, device, num_envs, n_steps, lr, architecture, target_return, tensorboard,
          keep_checkpoints, checkpoint_every, eval_episodes, force, resume, quiet):
    """Train an A2C agent and save it in the registry."""
    from interpret_rl.a2c import PRESETS, config_from_preset, train as train_agent

    if resume:
        return _resume(resume, steps, device, tensorboard, eval_episodes, quiet)
    preset = preset or _default_preset(env_id or "CartPole-v1")
    env_id = env_id or PRESETS[preset]["env_id"]
    check_env_id(env_id)
    name = registry.check_name(name or f"{env_id.removeprefix('ALE/').split('-')[0].lower()}-a2c")
    out_dir = registry.user_models_dir() / name
    main_rank = Ranks().is_main  # under torchrun only rank 0 checks, saves and evaluates
    if main_rank and (out_dir / registry.META).exists() and not force:
        raise UserError(f"model {name!r} already exists at {out_dir}; pick another --name or pass --force")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    config = config_from_preset(preset, env_id=env_id, total_steps=steps, seed=seed, device=device,
                                num_envs=num_envs, n_steps=n_steps, lr=lr, target_return=target_return,
                                architecture=architecture,
                                keep_checkpoints=keep_checkpoints or None,
                                checkpoint_every_steps=checkpoint_every)
    click.echo(f"training {name}: {env_id}, preset {preset}, {config.total_steps:,} steps, seed {seed}", err=True)
    with _training_outcomes(name):
        result = train_agent(config, out_dir=out_dir, progress=not quiet, tensorboard=tensorboard)
    if main_rank:
        _finish_training(result, name, out_dir, eval_episodes, seed)


@contextlib.contextmanager
def _training_outcomes(name: str):
    """Interrupted: say what was kept and exit 130/143. Non-finite loss: one line, exit 1."""
    from interpret_rl.a2c import NonFiniteLossError
    from interpret_rl.interrupts import TrainingInterrupted

    try:
        yield
    except TrainingInterrupted as stop:
        click.echo(f"{stop}; checkpoint saved. Continue with: interpret-rl train --resume {name}", err=True)
        sys.exit(stop.exit_code)
    except NonFiniteLossError as err:
        raise click.ClickException(f"{err} (model {name!r})") from None


def _resume(name, steps, device, tensorboard, eval_episodes, quiet):
    from interpret_rl.a2c import A2CConfig, train as train_agent

    out_dir = registry.resolve(name)
    if out_dir.is_relative_to(registry.BUNDLED_DIR):
        raise UserError(f"--resume {name}: bundled models are read-only; train your own with --name")
    agent = registry.load_agent(out_dir, device=device)
    saved = agent.meta.get("config")
    if not isinstance(saved, dict):
        raise UserError(f"--resume {name}: {out_dir / registry.META} records no training config")
    config = A2CConfig(**{**saved, "device": device, **({"total_steps": steps} if steps else {})})
    if agent.steps_trained >= config.total_steps:
        raise UserError(f"--resume {name}: already trained {agent.steps_trained:,} of {config.total_steps:,} "
                        f"steps; pass a larger --steps")
    click.echo(f"resuming {name} at step {agent.steps_trained:,} of {config.total_steps:,}", err=True)
    with _training_outcomes(name):
        result = train_agent(config, out_dir=out_dir, progress=not quiet, tensorboard=tensorboard,
                             agent=agent, resume=True)
    if Ranks().is_main:
        _finish_training(result, name, out_dir, eval_episodes, config.seed)


def _finish_training(result, name, out_dir, eval_episodes, seed):
    from interpret_rl.evaluate import evaluate

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


def plot_training_curve(model_dir: Path) -> Path | None:
    """training_curve.csv -> training_curve.png (mean return against env steps)."""
    import csv

    csv_path = Path(model_dir) / "training_curve.csv"
    if not csv_path.is_file():
        return None
    rows = list(csv.DictReader(csv_path.open()))
    points = [(int(r["step"]), float(r["ep_rew_mean"])) for r in rows if r["ep_rew_mean"] not in ("", "nan")]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interpret_rl.atomic import atomic_write_bytes
    import io

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([p[0] for p in points], [p[1] for p in points])
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean return, last 100 games")
    ax.set_title(Path(model_dir).name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(model_dir) / "training_curve.png", buffer.getvalue())
    return Path(model_dir) / "training_curve.png"


@cli.command(name="evaluate")
@click.argument("model")
@click.option("--episodes", type=int, default=10, show_default=True, callback=_positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--greedy", is_flag=True, help="Take the most likely action instead of sampling.")
@click.option("--record", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write a video of the first episode (.mp4 or .gif).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--save", is_flag=True, help="Store the result in the model's meta.json (user models).")
def evaluate_command(model, episodes, seed, greedy, record, device, save):
    """Play full games with MODEL and report the unclipped score (mean +/- std)."""
    from interpret_rl.evaluate import evaluate, write_video

    if record and Path(record).suffix.lower() not in (".mp4", ".gif"):
        raise UserError(f"--record {record}: the video file must end in .mp4 or .gif")
    agent = registry.load_agent(model, device=device)
    result = evaluate(agent, episodes=episodes, seed=seed, deterministic=greedy, record_first=bool(record))
    click.echo(f"{agent.name}: {agent.env_id}, {episodes} episodes, "
               f"{'greedy' if greedy else 'stochastic'} policy: score {result.mean:.2f} +/- {result.std:.2f} "
               f"(min {min(result.scores):g}, max {max(result.scores):g})")
    if record:
        write_video(result.frames, record)
        click.echo(f"video of the first episode ({len(result.frames)} frames): {record}")
    if save:
        path = registry.resolve(model)
        if path.is_relative_to(registry.BUNDLED_DIR):
            raise UserError(f"{model} is a bundled model; its meta.json is part of the package and is not changed")
        registry.update_meta(path, evaluation=result.as_dict())


@cli.command()
def models():
    """List registered models: bundled ones and yours."""
    rows = [("NAME", "ENV", "ARCHITECTURE", "STEPS", "SCORE", "SOURCE")]
    for info in registry.list_models():
        score = info.score
        score_text = f"{score['mean']:.1f} +/- {score['std']:.1f}" if score else "-"
        rows.append((info.name, info.meta["env_id"], info.meta["architecture"],
                     f"{info.meta['steps_trained']:,}", score_text, "bundled" if info.bundled else "user"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _default_compare_model() -> str:
    """The bundled Breakout agent when it is there, else the bundled CartPole one."""
    try:
        registry.resolve("breakout-a2c")
        return "breakout-a2c"
    except registry.ModelNotFoundError:
        return "cartpole-a2c"


def _comma_list(ctx, param, value):
    if value is None:
        return None
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise click.BadParameter("give at least one name")
    return items


@cli.command(name="compare")
@click.option("--model", default=None, help="Registered model or model folder "
              "(default: breakout-a2c when registered, else cartpole-a2c).")
@click.option("--methods", "method_names", default="saliency,optim", show_default=True, callback=_comma_list,
              help="Comma-separated methods (see `interpret-rl methods`).")
@click.option("--targets", default=None, callback=_comma_list,
              help="Comma-separated targets: action, action:FIRE, value, conv3:5, conv3:5:3:4 "
                   "(default: every action, then the value).")
@click.option("--frames", type=click.IntRange(min=1), default=None,
              help="Observations to collect by playing the agent's policy  [default: 3]")
@click.option("--observations", "observations_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Explain the observations in this .npz file (key 'observations') instead of collecting.")
@click.option("--out", default="compare-out", show_default=True, help="Folder for grid.png, report.html, results.json.")
@click.option("-o", "--option", "option_args", multiple=True, metavar="NAME.FIELD=VALUE",
              help="A method or metric option, e.g. -o optim.steps=64 or -o deletion.steps=10 (repeatable).")
@click.option("--metrics", "metric_names", default=None, callback=_comma_list, metavar="NAME,NAME|all",
              help="Also score every explanation with these metrics (see docs/methods-api.md), e.g. "
                   "deletion,insertion,randomization, or all; they cost more than the explanations themselves.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds observation collection and the methods.")
@click.option("--checkpoints", default=None, metavar="all|STEP,STEP",
              help="Explain the same observations at these kept training checkpoints (checkpoints.png); "
                   "needs a model trained with --keep-checkpoints. --frames then defaults to 1.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="CPU threads for torch (0: torch's default, all cores). One is the default because the "
                   "batches here are small: measured on 2 busy cores, optim took 1.9 s on one thread and "
                   "90 s on two (threads that wait for a core spin).")
def compare_command(model, method_names, targets, frames, observations_file, out, option_args, metric_names, seed,
                    checkpoints, device, threads):
    """Run several explanation methods on the same targets and observations; write a report."""
    from interpret_rl.compare import compare, prepare_methods, prepare_metrics, prepare_targets
    from interpret_rl.methods import parse_option_args, registered_methods
    from interpret_rl.metrics import registered_metrics
    from interpret_rl.observations import load_observations
    from interpret_rl.report import check_output_dir, write_report

    if frames is not None and observations_file:
        raise UserError("--frames and --observations exclude each other: the file decides the observations")
    try:  # everything that can be wrong with the request fails here, before any observation is collected
        out_dir = check_output_dir(out)
        options = parse_option_args(list(option_args))
        metric_options = {}
        known_metrics, known_methods = registered_metrics(), registered_methods()
        for name in list(options):  # -o NAME.FIELD=VALUE: a metric's when NAME is a metric and no method
            if name in known_metrics and name not in known_methods:
                metric_options[name] = options.pop(name)
        if metric_names and checkpoints is not None:
            raise ValueError("--metrics and --checkpoints cannot be combined yet; score one checkpoint at a time")
        metrics = prepare_metrics(metric_names, metric_options) if metric_names else []
        if metric_options and not metrics:
            raise ValueError(f"options given for metric {', '.join(metric_options)}, but no --metrics asked for")
    except ValueError as err:
        raise UserError(str(err)) from None
    _check_device(device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    if checkpoints is not None:
        return _compare_checkpoints(model or _default_compare_model(), method_names, targets, frames,
                                    observations_file, out_dir, options, seed, checkpoints, device)
    agent = registry.load_agent(model or _default_compare_model(), device=device)
    try:
        prepare_methods(method_names, options)
        prepare_targets(agent, targets)
        observations = load_observations(observations_file, agent.observation_shape) if observations_file else None
    except ValueError as err:
        if isinstance(err, user_errors()):
            raise
        raise UserError(str(err)) from None
    click.echo(f"comparing {', '.join(method_names)} on {agent.name} ({agent.env_id})", err=True)
    result = compare(agent, method_names, targets=targets, observations=observations, frames=frames or 3,
                     seed=seed, options=options, metrics=metrics)
    if observations_file:
        result.observation_source = f"file {observations_file}"
    paths = write_report(result, out_dir)
    for info in result.methods:
        errors = result.method_errors(info.name)
        outcome = f"failed on {len(errors)} of {len(result.targets)} targets: {errors[0]}" if errors else "ok"
        click.echo(f"  {info.name:<22} {result.method_seconds(info.name):7.2f} s  {outcome}")
        for metric in result.metrics:
            mean = result.metric_mean(info.name, metric.name)
            rank = result.metric_ranks(metric.name).get(info.name)
            shown = (f"{mean:.4g}" + (f" (#{rank})" if rank else "")) if mean is not None else \
                f"n/a: {result.metric_error(info.name, metric.name)}"
            click.echo(f"      {metric.name:<18} {shown}")
    click.echo(f"wrote {', '.join(p.name for p in paths.values())} to {out_dir}")


def _compare_checkpoints(model, method_names, targets, frames, observations_file, out_dir, options, seed,
                         checkpoints, device):
    """``compare --checkpoints``: the same observations and targets explained at each chosen checkpoint."""
    from interpret_rl.compare import compare_checkpoints, prepare_methods, prepare_targets, select_checkpoints
    from interpret_rl.observations import load_observations
    from interpret_rl.report import write_checkpoint_report

    try:  # a model without snapshots, an unknown step, method or target: one line, before any work
        chosen = select_checkpoints(model, checkpoints)
        prepare_methods(method_names, options)
        final = registry.load_agent(model, device=device)
        prepare_targets(final, targets)
        observations = load_observations(observations_file, final.observation_shape) if observations_file else None
    except ValueError as err:
        if isinstance(err, user_errors()):
            raise
        raise UserError(str(err)) from None
    click.echo(f"comparing {', '.join(method_names)} on {final.name} ({final.env_id}) at {len(chosen)} "
               f"checkpoints, steps {', '.join(f'{s:,}' for s, _ in chosen)}", err=True)
    result = compare_checkpoints(model, method_names, targets=targets, observations=observations, frames=frames or 1,
                                 seed=seed, options=options, checkpoints=[s for s, _ in chosen], device=device)
    if observations_file:
        for described in (result, *result.results):
            described.observation_source = f"file {observations_file}"
    paths = write_checkpoint_report(result, out_dir)
    for step, compared in zip(result.steps, result.results):
        failed = sum(len(compared.method_errors(m.name)) for m in compared.methods)
        click.echo(f"  step {step:>12,}  {sum(compared.method_seconds(m.name) for m in compared.methods):7.2f} s  "
                   f"{f'{failed} failed cells' if failed else 'ok'}")
    click.echo(f"wrote {', '.join(p.name for p in paths.values())} to {out_dir}")


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")


@cli.command(name="methods")
@click.option("-v", "--verbose", is_flag=True, help="Also list each method's options with their defaults.")
def methods_command(verbose):
    """List the registered explanation methods: name, kind, plugin, description."""
    import dataclasses

    from interpret_rl.methods import method_plugins, registered_methods
    from interpret_rl.plugin_manager import load_errors

    methods, plugins = registered_methods(), method_plugins()
    rows = [("NAME", "KIND", "PLUGIN", "DESCRIPTION")]
    rows += [(name, method.kind, plugins[name], method.description) for name, method in methods.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row, (name, method) in zip(rows, [(None, None)] + list(methods.items())):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
        if verbose and method is not None:
            fields = [f"{f.name}={f.default!r}" for f in dataclasses.fields(method.Options)]
            click.echo(f"    options: {', '.join(fields) or 'none'}")
    for name, reason in load_errors.items():
        click.echo(f"plugin {name} failed to load: {reason}", err=True)


@cli.command(name="video")
@click.option("--model", default="cartpole-a2c", show_default=True, help="Registered model or model folder.")
@click.option("--methods", "method_names", default="saliency,perturbation", show_default=True, callback=_comma_list,
              help="Comma-separated attribution methods, one panel each (see `interpret-rl methods`).")
@click.option("--steps", type=int, default=200, show_default=True, help="Steps to play: one frame each.")
@click.option("--out", default="video.mp4", show_default=True, help="Video file: .mp4 or .gif.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the game, the actions and the methods.")
@click.option("-o", "--option", "option_args", multiple=True, metavar="METHOD.FIELD=VALUE",
              help="A method option, e.g. -o saliency.samples=8 (repeatable).")
@click.option("--fps", type=int, default=15, show_default=True, callback=_positive, help="Frames per second.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
def video_command(model, method_names, steps, out, seed, option_args, fps, device):
    """Play an episode and write a video of each method's actor (blue) and critic (red) maps."""
    from interpret_rl.methods import NotApplicableError, parse_option_args
    from interpret_rl.video import ExplanationFailed, check_video_path, explanation_video, prepare_video_methods

    if steps < 1:
        raise UserError(f"--steps {steps}: play at least one step")
    try:  # everything that can be wrong with the request fails here, before a model is loaded
        path = check_video_path(out)
        options = parse_option_args(list(option_args))
        prepare_video_methods(method_names, options)
    except ValueError as err:
        if isinstance(err, user_errors()):
            raise
        raise UserError(str(err)) from None
    _check_device(device)
    import torch

    torch.set_num_threads(1)  # one observation per call: more threads only spin (see compare --threads)
    agent = registry.load_agent(model, device=device)
    click.echo(f"video of {', '.join(method_names)} on {agent.name} ({agent.env_id}), {steps} steps", err=True)
    try:
        result = explanation_video(agent, method_names, steps, path, seed=seed, options=options, fps=fps)
    except NotApplicableError as err:
        raise UserError(str(err)) from None
    except ExplanationFailed as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {result.frames} frames of {result.width}x{result.height} at {fps} fps to {result.path}")


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
    from interpret_rl.plugin_manager import get_plugin_manager

    _one_line_plugin_warnings()
    get_plugin_manager().hook.register_commands(cli=cli)
    cli(prog_name="interpret-rl")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
