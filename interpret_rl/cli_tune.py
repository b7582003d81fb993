"""``interpret-rl tune``: hyperparameter search on Optuna (see ``interpret_rl.tune``)."""

from __future__ import annotations

import importlib.util
import sys

import click

from interpret_rl import registry
from interpret_rl.cli_base import UserError, cli
from interpret_rl.option_checks import OptionError


def _one_of(*valid: str):
    """A choice checked in one line (click's Choice prints usage lines too)."""
    def check(ctx, param, value):
        if value is not None and value not in valid:
            raise OptionError(f"{param.opts[-1]} {value!r}: choose one of {', '.join(valid)}")
        return value
    return check


def _at_least_one(ctx, param, value):
    if value is not None and value < 1:
        raise OptionError(f"{param.opts[-1]} {value}: must be at least 1")
    return value


def _positive_seconds(ctx, param, value):
    if value is not None and not value > 0:
        raise OptionError(f"{param.opts[-1]} {value}: must be a positive number of seconds")
    return value


@cli.command()
@click.option("--env", "env_id", required=True, help="Environment id, e.g. CartPole-v1.")
@click.option("--algo", default="a2c", show_default=True, callback=_one_of("a2c", "ppo", "pqn", "dqn"),
              help="a2c, ppo, pqn or dqn.")
@click.option("--trials", type=int, required=True, callback=_at_least_one,
              help="Finished trials the study should hold (a rerun runs only the missing ones).")
@click.option("--budget", type=int, required=True, callback=_at_least_one, help="Environment steps per trial.")
@click.option("--study", default=None, help="Study name (default: <env>-<algo>).")
@click.option("--storage", default=None,
              help="Optuna storage: a URL (sqlite:///x.db, postgresql://...) or a journal file path "
                   "(default: <home>/studies/<study>.log).")
@click.option("--n-jobs", type=int, default=1, show_default=True, callback=_at_least_one,
              help="Trials run at once in this process (threads; run more processes for more cores).")
@click.option("--timeout", type=float, default=None, callback=_positive_seconds,
              help="Stop starting trials after this many seconds.")
@click.option("--sampler", default="tpe", show_default=True, callback=_one_of("tpe", "random"),
              help="tpe (multivariate, after 5 random trials) or random.")
@click.option("--pruner", default="median", show_default=True, callback=_one_of("median", "halving", "none"),
              help="Stop trials whose learning curve lags: median, halving (successive halving) or none.")
@click.option("--space", "space_file", default=None, metavar="FILE",
              help="JSON or TOML file that changes the search space (see docs/tune.md).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampler and of every trial's run.")
@click.option("--name", default=None, help="Registry name of the best model (default: <study>-best).")
@click.option("--show-space", is_flag=True, help="Print the search space as a table and exit.")
def tune(env_id, algo, trials, budget, study, storage, n_jobs, timeout, sampler, pruner, space_file, seed, name,
         show_space):
    """Search hyperparameters of ALGO on ENV with Optuna; save the best as a model and a preset file."""
    from interpret_rl import tune as tuning
    from interpret_rl import tune_space
    from interpret_rl.envs import check_env_id, is_atari
    from interpret_rl.rollout import algorithm_module

    if importlib.util.find_spec("optuna") is None:
        raise UserError('tune needs Optuna, which is not installed: pip install "interpret-rl[tune]" '
                        '(or pip install "optuna>=5,<6")')
    check_env_id(env_id)
    study = study or f"{env_id.removeprefix('ALE/').split('-')[0].lower()}-{algo}"
    registry.check_name(study)
    name = registry.check_name(name or f"{study}-best")
    try:
        overrides = tune_space.read_space_file(space_file) if space_file else None
        space = tune_space.build_space(algo, overrides, image_observations=is_atari(env_id))
    except tune_space.SpaceError as err:
        raise UserError(str(err)) from None
    if show_space:
        click.echo(tune_space.space_table(algo, space))
        return
    _refuse_foreign_model(name, study)
    request = tuning.TuneRequest(env_id=env_id, algo=algo, trials=trials, budget=budget, study=study,
                                 storage=storage or tuning.default_storage(study), space=space, sampler=sampler,
                                 pruner=pruner, n_jobs=n_jobs, timeout=timeout, seed=seed,
                                 preset=tuning.preset_for(env_id, algorithm_module(algo).PRESETS))
    tuning.base_config(request)  # an algorithm without a preset for this env fails here, in one line

    def echo(line: str) -> None:
        click.echo(line, err=True)

    try:
        result = tuning.optimize(request, echo)
    except tuning.StorageError as err:
        raise UserError(str(err)) from None
    except tuning.TuneInterrupted as stop:
        echo(f"{stop}; run the same command to resume")
        sys.exit(130)
    _write_results(result, request, name, echo)


def _refuse_foreign_model(name: str, study: str) -> None:
    """The best model overwrites an earlier result of the same study only, never another model."""
    folder = registry.user_models_dir() / name
    if (folder / registry.META).is_file():
        recorded = registry.read_meta(folder).get("tune") or {}
        if recorded.get("study") != study:
            raise UserError(f"model {name!r} already exists at {folder} and is not a result of study {study!r}; "
                            f"pick another --name")


def _write_results(study, request, name: str, echo) -> None:
    from interpret_rl import tune as tuning
    from interpret_rl.tune_report import write_report

    if not any(t.value is not None for t in tuning.finished_trials(study)):
        raise click.ClickException(f"study {request.study}: no trial completed (see the failures above); "
                                   f"nothing to save")
    saved = tuning.save_results(study, request, name, echo)
    best = study.best_trial
    report = write_report(study, tuning.studies_dir() / f"{request.study}-report.html",
                          tuning.artifacts_dir(request.study),
                          {"env": request.env_id, "algo": request.algo, "budget": f"{request.budget:,} steps",
                           "storage": request.storage, "best model": name})
    click.echo(f"best: trial {best.number}, score {best.value:.1f} "
               f"(eval {best.user_attrs.get('eval_mean')}, curve {best.user_attrs.get('curve_area')})")
    click.echo(f"model: {name} ({saved['model']})")
    click.echo(f"preset: {saved['preset']} (interpret-rl train --preset-file {saved['preset']})")
    click.echo(f"report: {report}")
