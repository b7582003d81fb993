"""``interpret-rl compare --models a,b,c``: several agents explained on the same states, one report."""

from __future__ import annotations

import click

from interpret_rl.cli_base import UserError, bad_request_is_a_user_error

DEFAULT_FRAMES = 12
GROUND_TRUTH_METRICS = ("objects", "pointing", "interventions")  # default where the env has an object detector


def compare_models(models, method_names, targets, frames, sample, observations_file, out_dir, options, metrics,
                   metric_options, seed, device) -> None:
    """Run ``across_agents.compare_agents`` and write its report; every bad request is one line, exit 2."""
    from interpret_rl.across_agents import MIN_CKA_OBSERVATIONS, compare_agents, prepare_agents
    from interpret_rl.compare import prepare_methods, prepare_metrics, prepare_targets
    from interpret_rl.objects import detector_for
    from interpret_rl.observations import load_ground_truth, load_observations
    from interpret_rl.report_agents import write_agents_report

    if len(models) < 2:
        raise UserError(f"--models {','.join(models)}: give at least two agents, comma-separated")
    with bad_request_is_a_user_error():
        agents = prepare_agents(models, device=device)
        prepare_methods(method_names, options)
        observations = truth = None
        if observations_file:
            observations = load_observations(observations_file, agents[0].observation_shape)
            truth = load_ground_truth(observations_file, len(observations))
        targets = targets or ["action"]
        for agent in agents:  # a target one of the agents lacks (a layer only one network has)
            try:
                prepare_targets(agent, targets)
            except ValueError as err:
                raise ValueError(f"{agent.name}: {err}") from None
        frames = frames or DEFAULT_FRAMES
        if not metrics and detector_for(agents[0].env_id) is not None:  # the game's own judges, where it has them
            metrics = prepare_metrics(GROUND_TRUTH_METRICS)
        if observations is None and frames < len(agents):
            raise ValueError(f"--collect {frames}: at least one state per agent, so at least {len(agents)}")
    click.echo(f"comparing {', '.join(method_names)} on {', '.join(a.name for a in agents)} ({agents[0].env_id}), "
               f"{len(observations) if observations is not None else frames} states", err=True)
    comparison = compare_agents(agents, method_names, targets=targets, observations=observations,
                                frames=frames, seed=seed, options=options, metrics=metrics,
                                metric_options=metric_options, sample=sample or "game", ground_truth=truth,
                                device=device)
    if observations_file:
        comparison.observation_source = f"file {observations_file}"
    paths = write_agents_report(comparison, out_dir)
    for info, result in zip(comparison.agents, comparison.results):
        for m in result.methods:
            errors = result.method_errors(m.name)
            outcome = f"failed on {len(errors)} of {len(result.targets)} targets: {errors[0]}" if errors else "ok"
            click.echo(f"  {info.name:<20} {m.name:<20} {result.method_seconds(m.name):8.2f} s  {outcome}")
    unscored: dict[tuple[str, str], list[str]] = {}  # (metric, why) -> "agent method" it has no value for
    for info, result in zip(comparison.agents, comparison.results):
        for m in result.methods:
            for metric in result.metrics:
                if result.metric_mean(m.name, metric.name) is None:
                    why = result.metric_error(m.name, metric.name) or "not computed"
                    unscored.setdefault((metric.name, why), []).append(f"{info.name} {m.name}")
    for (metric, why), where in unscored.items():
        click.echo(f"  {metric}: n/a for {', '.join(where)}: {why}")
    for pair in comparison.cka["pairs"]:
        value, chance = ("n/a" if v is None else f"{v:.3f}" for v in (pair["value"], pair["chance"]))
        shown = (f"n/a (needs at least {MIN_CKA_OBSERVATIONS} states)" if pair["observations"] < MIN_CKA_OBSERVATIONS
                 else f"{value} (shuffled rows: {chance})")
        click.echo(f"  CKA {' vs '.join(pair['agents'])}: {shown}")
    click.echo(f"wrote {', '.join(p.name for p in paths.values())} to {out_dir}")
