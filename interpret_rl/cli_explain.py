"""The explanation commands of ``interpret-rl``: compare and video."""

from __future__ import annotations

import click

from interpret_rl import registry
from interpret_rl.cli_base import UserError, bad_request_is_a_user_error, check_device, cli, comma_list, positive


def _default_compare_model() -> str:
    """The bundled Breakout agent when it is there, else the bundled CartPole one."""
    try:
        registry.resolve("breakout-a2c")
        return "breakout-a2c"
    except registry.ModelNotFoundError:
        return "cartpole-a2c"


@cli.command(name="compare")
@click.option("--model", default=None, help="Registered model or model folder "
              "(default: breakout-a2c when registered, else cartpole-a2c).")
@click.option("--models", default=None, callback=comma_list, metavar="A,B,...",
              help="Several agents of one env side by side on the same states pooled from their play "
                   "(columns agent x method; agreement, CKA, per-frame share; targets default to action).")
@click.option("--methods", "method_names", default="saliency,optim", show_default=True, callback=comma_list,
              help="Comma-separated methods (see `interpret-rl methods`).")
@click.option("--targets", default=None, callback=comma_list,
              help="Comma-separated targets: action, action:FIRE, value, conv3:5, conv3:5:3:4 "
                   "(default: every action, then the value).")
@click.option("--collect", "--frames", "frames", type=click.IntRange(min=1), default=None,
              help="Observations (each a whole frame stack in Atari) to collect by playing the agent's policy; "
                   "--frames is the old name  [default: 3, 8 with --metrics]")
@click.option("--sample", type=click.Choice(["start", "game"]), default=None,
              help="Where collected observations come from: start (the first stretch of a game) or game "
                   "(spread over one whole game: early, middle, late)  [default: start, game with --metrics]")
@click.option("--observations", "observations_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Explain the observations in this .npz file (key 'observations') instead of collecting.")
@click.option("--out", default="compare-out", show_default=True, help="Folder for grid.png, report.html, results.json.")
@click.option("-o", "--option", "option_args", multiple=True, metavar="NAME.FIELD=VALUE",
              help="A method or metric option, e.g. -o optim.steps=64 or -o deletion.steps=10 (repeatable).")
@click.option("--metrics", "metric_names", default=None, callback=comma_list, metavar="NAME,NAME|all",
              help="Also score every explanation with these metrics (see docs/methods-api.md), e.g. "
                   "deletion,insertion,randomization, or all; they cost more than the explanations themselves.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds observation collection and the methods.")
@click.option("--checkpoints", default=None, metavar="all|STEP,STEP",
              help="Explain the same observations at these kept training checkpoints (checkpoints.png); "
                   "needs a model trained with --keep-checkpoints. --collect then defaults to 1.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="CPU threads for torch (0: torch's default, all cores). One is the default because the "
                   "batches here are small: measured on 2 busy cores, optim took 1.9 s on one thread and "
                   "90 s on two (threads that wait for a core spin).")
def compare_command(model, models, method_names, targets, frames, sample, observations_file, out, option_args,
                    metric_names, seed, checkpoints, device, threads):
    """Run several explanation methods on the same targets and observations; write a report."""
    from interpret_rl.atomic import check_output_dir
    from interpret_rl.methods import parse_option_args, prepare_methods, registered_methods
    from interpret_rl.metrics import prepare_metrics, registered_metrics

    if sample is not None and checkpoints is not None:
        raise UserError("--sample and --checkpoints cannot be combined yet: checkpoints explain the start of a game")
    if sample is not None and observations_file:
        raise UserError("--sample and --observations exclude each other: the file decides the observations")
    if frames is not None and observations_file:
        raise UserError("--collect and --observations exclude each other: the file decides the observations")
    # everything that can be wrong with the request fails here, before any observation is collected
    with bad_request_is_a_user_error():
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
        prepare_methods(method_names, options)  # a misspelled method: one line before torch is imported
    check_device(device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    if models is not None:
        from interpret_rl.cli_agents import compare_models

        if model is not None or checkpoints is not None:
            raise UserError("--models excludes --model and --checkpoints: name every agent in --models")
        return compare_models(models, method_names, targets, frames, sample, observations_file, out_dir, options,
                              metrics, metric_options, seed, device)
    if checkpoints is not None:
        return _compare_checkpoints(model or _default_compare_model(), method_names, targets, frames,
                                    observations_file, out_dir, options, seed, checkpoints, device)
    from interpret_rl.compare import compare, prepare_targets
    from interpret_rl.observations import load_ground_truth, load_observations
    from interpret_rl.report import write_report

    agent = registry.load_agent(model or _default_compare_model(), device=device)
    with bad_request_is_a_user_error():
        prepare_targets(agent, targets)
        observations = load_observations(observations_file, agent.observation_shape) if observations_file else None
        truth = load_ground_truth(observations_file, len(observations)) if observations_file else None
    click.echo(f"comparing {', '.join(method_names)} on {agent.name} ({agent.env_id})", err=True)
    result = compare(agent, method_names, targets=targets, observations=observations,
                     frames=frames or (8 if metrics else 3), seed=seed, options=options, metrics=metrics,
                     sample=sample or ("game" if metrics else "start"), ground_truth=truth)
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
    from interpret_rl.across_training import (
        check_checkpoint_request,
        run_checkpoint_comparison,
        write_checkpoint_report,
    )
    from interpret_rl.observations import load_observations

    # a model without snapshots, an unknown step, method or target: one line, before any work
    with bad_request_is_a_user_error():
        request = check_checkpoint_request(model, method_names, targets=targets, frames=frames or 1, seed=seed,
                                           options=options, checkpoints=checkpoints, device=device)
        if observations_file:
            request.observations = load_observations(observations_file, request.final.observation_shape)
    click.echo(f"comparing {', '.join(method_names)} on {request.final.name} ({request.final.env_id}) at "
               f"{len(request.chosen)} checkpoints, steps {', '.join(f'{s:,}' for s, _ in request.chosen)}", err=True)
    result = run_checkpoint_comparison(request)
    if observations_file:
        for described in (result, *result.results):
            described.observation_source = f"file {observations_file}"
    paths = write_checkpoint_report(result, out_dir)
    for step, compared in zip(result.steps, result.results):
        failed = sum(len(compared.method_errors(m.name)) for m in compared.methods)
        click.echo(f"  step {step:>12,}  {sum(compared.method_seconds(m.name) for m in compared.methods):7.2f} s  "
                   f"{f'{failed} failed cells' if failed else 'ok'}")
    click.echo(f"wrote {', '.join(p.name for p in paths.values())} to {out_dir}")


@cli.command(name="video")
@click.option("--model", default="cartpole-a2c", show_default=True, help="Registered model or model folder.")
@click.option("--methods", "method_names", default="saliency,perturbation", show_default=True, callback=comma_list,
              help="Comma-separated attribution methods, one panel each (see `interpret-rl methods`).")
@click.option("--steps", type=int, default=200, show_default=True, help="Steps to play: one frame each.")
@click.option("--out", default="video.mp4", show_default=True, help="Video file: .mp4 or .gif.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the game, the actions and the methods.")
@click.option("-o", "--option", "option_args", multiple=True, metavar="METHOD.FIELD=VALUE",
              help="A method option, e.g. -o saliency.samples=8 (repeatable).")
@click.option("--fps", type=int, default=15, show_default=True, callback=positive, help="Frames per second.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
def video_command(model, method_names, steps, out, seed, option_args, fps, device):
    """Play an episode and write a video of each method's actor (blue) and critic (red) maps."""
    from interpret_rl.methods import NotApplicableError, parse_option_args
    from interpret_rl.video import ExplanationFailed, explanation_video, prepare_video_methods
    from interpret_rl.video_file import check_video_path

    if steps < 1:
        raise UserError(f"--steps {steps}: play at least one step")
    from interpret_rl.limits import MAX_OBSERVATIONS_ENV, max_observations

    limit = max_observations()
    if steps > limit:  # every step is one explained observation, its frame held in memory
        raise UserError(f"--steps {steps:,}: at most {limit:,} steps, one explained observation "
                        f"each (set {MAX_OBSERVATIONS_ENV} to allow more)")
    # everything that can be wrong with the request fails here, before a model is loaded
    with bad_request_is_a_user_error():
        path = check_video_path(out)
        options = parse_option_args(list(option_args))
        prepare_video_methods(method_names, options)
    check_device(device)
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
