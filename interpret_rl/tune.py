"""Hyperparameter search on Optuna: one trial = train with sampled settings for ``budget`` steps,
score the result, explain what the agent looks at.

The score a trial maximises (in return units, so a score of 500 on CartPole-v1 is perfect):

    score = (mean evaluation return + normalised area under the learning curve) / 2

* the evaluation: ``eval_episodes`` full games with the stochastic policy after training;
* the area: the 100-game mean training return read at ``REPORT_POINTS`` evenly spaced steps of
  the budget, averaged (the area under the curve divided by the budget): a run that learns early
  scores higher than one that gets there at the last step.

The running average of that curve is reported to Optuna at each of the points, so the pruner
stops trials whose curve lags the others' at the same point. Every finished trial also gets cheap
explanation numbers as user attributes (``explain.share``: the share of gradient saliency per
observation feature, MinAtar object channel or stacked frame; ``explain.deletion``: the deletion
AUC) and a saliency picture as an Optuna artifact.

Storage: a journal file ``<home>/studies/<study>.log`` by default (several processes, also on a
shared disk, can work on one study; a stopped study resumes), or any Optuna storage URL.
``--trials N`` is the study's total: a rerun with the same N runs only what is missing.
Optuna is imported inside the functions, so the CLI starts without it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpret_rl import registry
from interpret_rl.errors import first_line

REPORT_POINTS = 20
"""Points of the learning curve a trial reports (and the area averages)."""

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")

FEATURE_NAMES = {
    "CartPole-v1": ["cart position", "cart velocity", "pole angle", "pole angular velocity"],
    "Acrobot-v1": ["cos theta1", "sin theta1", "cos theta2", "sin theta2", "theta1 dot", "theta2 dot"],
    "MountainCar-v0": ["position", "velocity"],
    "Pendulum-v1": ["cos theta", "sin theta", "theta dot"],
    "LunarLander-v3": ["x", "y", "vx", "vy", "angle", "angular velocity", "left leg", "right leg"],
}
"""Names of the observation features of classic problems (others are named ``obs[i]``)."""


class StorageError(ValueError):
    """An Optuna storage that cannot be opened (bad URL, missing driver, unreachable database)."""


class TuneInterrupted(Exception):
    """Ctrl-C / SIGTERM: the running trials stop, every finished one is kept in the storage."""


@dataclass
class TuneRequest:
    env_id: str
    algo: str
    trials: int
    budget: int
    study: str
    storage: str
    space: dict[str, Any]
    sampler: str = "tpe"
    pruner: str = "median"
    n_jobs: int = 1
    timeout: float | None = None
    seed: int = 0
    eval_episodes: int = 10
    explain_states: int = 16
    """Observations the per-trial explanation numbers are computed over."""
    preset: str = "cartpole"
    extra: dict = field(default_factory=dict)


def studies_dir() -> Path:
    return registry.home() / "studies"


def default_storage(study: str) -> str:
    return str(studies_dir() / f"{study}.log")


def trials_dir(study: str) -> Path:
    """Where each finished trial's model is kept (the best one is copied into the registry)."""
    return studies_dir() / f"{study}-trials"


def artifacts_dir(study: str) -> Path:
    return studies_dir() / f"{study}-artifacts"


def open_storage(storage: str):
    """An Optuna storage: a URL with ``://`` (sqlite, postgresql, mysql...) or a journal file path."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    try:
        if "://" in storage:
            with warnings.catch_warnings():  # Optuna calls the heartbeat experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # A process killed without a word leaves its trial RUNNING; the heartbeat fails it.
                return optuna.storages.RDBStorage(storage, heartbeat_interval=60, grace_period=180)
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(storage))
    except Exception as err:  # sqlalchemy's errors, a missing database driver, a bad path
        message = first_line(err)
        raise StorageError(f"--storage {storage}: cannot open it ({message}); give a journal file path "
                           f"or a URL such as sqlite:///tune.db or postgresql://user@host/db") from None


def make_sampler(name: str, seed: int):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # The zoo's TPE: 5 random trials before the model, multivariate to see interactions.
    return optuna.samplers.TPESampler(n_startup_trials=5, seed=seed, multivariate=True)


def make_pruner(name: str):
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=REPORT_POINTS // 5, reduction_factor=3)
    # Wait for 5 finished trials and a third of the budget before judging a curve.
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=REPORT_POINTS // 3)


def load_or_create_study(request: TuneRequest):
    import optuna

    return optuna.create_study(study_name=request.study, storage=open_storage(request.storage),
                               sampler=make_sampler(request.sampler, request.seed),
                               pruner=make_pruner(request.pruner), direction="maximize", load_if_exists=True)


def finished_trials(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def preset_for(env_id: str, presets: dict[str, dict]) -> str:
    """The algorithm's preset made for ``env_id`` if it has one, else ``breakout`` (Atari) or ``cartpole``."""
    from interpret_rl.envs import is_atari

    own = [name for name, values in presets.items() if values.get("env_id") == env_id]
    return own[0] if own else "breakout" if is_atari(env_id) else "cartpole"


def base_config(request: TuneRequest):
    """The algorithm's preset for the env, with the tune budget and seed (schedules span the budget)."""
    from interpret_rl.rollout import algorithm_module

    return algorithm_module(request.algo).config_from_preset(
        request.preset, env_id=request.env_id, total_steps=request.budget, seed=request.seed,
        log_every_steps=10**12, checkpoint_every_steps=10**12, torch_threads=1)


class CurveReporter:
    """``on_update`` of a trial: reads the 100-game mean return at ``REPORT_POINTS`` evenly spaced
    steps, reports the running average to Optuna and prunes; stops when the study is stopping."""

    def __init__(self, trial, budget: int, stopping: threading.Event):
        self.trial, self.budget, self.stopping = trial, budget, stopping
        self.points: list[float] = []

    def area(self) -> float:
        """The mean of the points read so far (NaN points, before any game ended, left out)."""
        known = [p for p in self.points if not math.isnan(p)]
        return sum(known) / len(known) if known else float("nan")

    def __call__(self, steps: int, stats: dict) -> None:
        import optuna

        if self.stopping.is_set():
            raise TuneInterrupted("stopping")
        while len(self.points) < REPORT_POINTS and steps >= self.budget * (len(self.points) + 1) / REPORT_POINTS:
            self.points.append(float(stats["ep_rew_mean"]))
            area = self.area()
            if not math.isnan(area):
                self.trial.report(area, step=len(self.points))
                if self.trial.should_prune():
                    raise optuna.TrialPruned(f"curve average {area:.1f} at point {len(self.points)}")


def run_trial(trial, request: TuneRequest, stopping: threading.Event) -> float:
    """Optuna's objective: sample, train, evaluate, explain, keep the model; returns the score."""
    from interpret_rl import tune_space
    from interpret_rl.evaluate import evaluate
    from interpret_rl.interrupts import TrainingInterrupted
    from interpret_rl.rollout import algorithm_module, config_from_meta

    if stopping.is_set():
        raise TuneInterrupted("stopping")
    algorithm = algorithm_module(request.algo)
    base = base_config(request)
    params = tune_space.sample(trial, request.space)
    values = {**dataclasses.asdict(base), **tune_space.to_config_overrides(params, base)}
    config = config_from_meta(algorithm.CONFIG, values)
    config.validate()  # an impossible combination fails this trial only (optimize's catch)
    trial.set_user_attr("config", dataclasses.asdict(config))
    reporter = CurveReporter(trial, request.budget, stopping)
    start = time.perf_counter()
    try:
        result = algorithm.train(config, on_update=reporter)
    except TrainingInterrupted:
        stopping.set()
        raise TuneInterrupted("stopping") from None
    evaluation = evaluate(result.agent, episodes=request.eval_episodes, seed=request.seed + 10_000)
    area = reporter.area()
    score = evaluation.mean if math.isnan(area) else (evaluation.mean + area) / 2
    trial.set_user_attr("eval_mean", round(evaluation.mean, 3))
    trial.set_user_attr("curve_area", None if math.isnan(area) else round(area, 3))
    trial.set_user_attr("curve", [None if math.isnan(p) else round(p, 2) for p in reporter.points])
    trial.set_user_attr("train_seconds", round(time.perf_counter() - start, 1))
    folder = trials_dir(request.study) / f"trial-{trial.number:04d}"
    registry.save_agent(result.agent, folder, config=dataclasses.asdict(config), seed=config.seed,
                        evaluation=evaluation.as_dict(), tune={"study": request.study, "trial": trial.number,
                                                               "params": params, "score": round(score, 3)})
    trial.set_user_attr("model_dir", str(folder))
    explain_trial(trial, result.agent, folder, request)
    return score


def explain_trial(trial, agent, folder: Path, request: TuneRequest) -> None:
    """Saliency of the chosen action over a few states: share per feature (channel, frame) and deletion AUC
    as user attributes, the picture as an artifact. An explanation failure never fails the trial."""
    try:
        attrs, picture = explanation_numbers(agent, folder, request)
    except Exception as err:  # noqa: BLE001 - the score stands; say why the numbers are missing
        trial.set_user_attr("explain.error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    store_dir = artifacts_dir(request.study)
    store_dir.mkdir(parents=True, exist_ok=True)
    artifact_id = upload_artifact(artifact_store=FileSystemArtifactStore(str(store_dir)), file_path=str(picture),
                                  study_or_trial=trial, mimetype="image/png")
    trial.set_user_attr("explain.picture_artifact", artifact_id)


def unit_names(agent) -> tuple[str, list[str]]:
    """What one unit of attribution share is: a feature of a vector, an object channel of a MinAtar
    grid (named by the game), a frame of an Atari stack."""
    from interpret_rl.envs import channel_names

    shape = agent.observation_space.get("shape") or []
    if len(shape) == 1:
        names = FEATURE_NAMES.get(agent.env_id)
        return "feature", names if names and len(names) == shape[0] else [f"obs[{i}]" for i in range(shape[0])]
    count = shape[0] if shape else 1
    channels = channel_names(agent.env_id)
    if channels is not None and len(channels) == count:
        return "channel", channels
    return "frame", [f"frame {i}" + (" (newest)" if i == count - 1 else "") for i in range(count)]


def explanation_numbers(agent, folder: Path, request: TuneRequest) -> tuple[dict, Path]:
    from interpret_rl.methods import build_method
    from interpret_rl.metrics import MetricResult, evaluate_metrics
    from interpret_rl.observations import collect_observations
    from interpret_rl.targets import parse_target

    observations = collect_observations(agent, request.explain_states, seed=request.seed)
    method = build_method("saliency")
    target = parse_target("action", agent)
    explanation = method.explain(agent, target, observations)
    magnitude = explanation.values.abs().float()
    per_unit = magnitude.reshape(magnitude.shape[0], magnitude.shape[1], -1).sum(-1).mean(0)
    share = (per_unit / per_unit.sum().clamp(min=1e-12)).tolist()
    kind, names = unit_names(agent)
    attrs: dict[str, Any] = {"explain.unit": kind, "explain.share": dict(zip(names, [round(s, 4) for s in share])),
                             "explain.top": names[max(range(len(share)), key=share.__getitem__)],
                             "explain.states": int(observations.shape[0])}
    deletion = evaluate_metrics(agent, method, target, observations, explanation, names=["deletion"],
                                seed=request.seed).get("deletion")
    if isinstance(deletion, MetricResult):
        attrs["explain.deletion"] = round(deletion.value, 4)
    picture = folder / "saliency.png"
    draw_saliency(picture, names, share, magnitude.mean(0), kind, f"trial {folder.name.split('-')[-1]}")
    return attrs, picture


def draw_saliency(path: Path, names: list[str], share: list[float], mean_map, kind: str, title: str) -> None:
    """Bar chart of the share per unit; for images also the mean saliency map of the newest frame (or,
    for object channels, summed over the channels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = mean_map.dim() == 3
    fig, axes = plt.subplots(1, 2 if images else 1, figsize=(8 if images else 4.5, 3), dpi=100, squeeze=False)
    axes[0][0].barh(names, share, color="#4c72b0")
    axes[0][0].invert_yaxis()
    axes[0][0].set_xlabel(f"share of |saliency| per {kind}")
    axes[0][0].set_xlim(0, 1)
    if images:
        frames = kind == "frame"
        axes[0][1].imshow((mean_map[-1] if frames else mean_map.sum(0)).numpy(), cmap="inferno")
        axes[0][1].set_title(f"mean |saliency|, {'newest frame' if frames else 'all channels'}", fontsize=9)
        axes[0][1].axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def progress_line(study, trial, started: float, target: int) -> str:
    """``trial 7: complete, score 312.4 (eval 400.0, curve 224.8) | best 455.1 (trial 3) | ...``."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    if trial.state == TrialState.COMPLETE:
        what = (f"score {trial.value:.1f} (eval {trial.user_attrs.get('eval_mean', float('nan')):.1f}, "
                f"curve {trial.user_attrs.get('curve_area') or float('nan'):.1f})")
    elif trial.state == TrialState.PRUNED:
        what = f"pruned at point {trial.last_step}/{REPORT_POINTS}"
    else:
        what = "failed" + (f": {trial.user_attrs['error']}" if "error" in trial.user_attrs else "")
    try:
        best = f"best {study.best_value:.1f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no complete trial yet"
    return (f"trial {trial.number}: {what} | {best} | {done}/{target} finished, {pruned} pruned | "
            f"{time.perf_counter() - started:.0f} s")


def optimize(request: TuneRequest, echo: Callable[[str], None]):
    """Run trials until the study has ``request.trials`` finished ones (complete or pruned), the
    timeout passes or a signal arrives; returns the study. Raises ``TuneInterrupted`` on a signal."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from interpret_rl import tune_space
    from interpret_rl.rollout import InvalidConfigError, NonFiniteLossError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_or_create_study(request)
    study.set_user_attr("env_id", request.env_id)
    study.set_user_attr("algo", request.algo)
    study.set_user_attr("budget", request.budget)
    if not study.trials:  # trial 0 is the algorithm's preset, moved into the space where it lies outside
        base = base_config(request)
        default_hidden = [256, 256] if request.algo in ("pqn", "dqn") else [64, 64]  # the MLPs' defaults
        study.enqueue_trial(tune_space.from_config(request.space, base, default_hidden),
                            user_attrs={"preset": request.preset}, skip_if_exists=True)
    remaining = request.trials - len(finished_trials(study))
    if remaining <= 0:
        echo(f"study {request.study} already has {request.trials} finished trials; writing its results")
        return study
    echo(f"study {request.study}: {remaining} more trials of {request.algo} on {request.env_id}, "
         f"{request.budget:,} steps each; storage {request.storage}")
    stopping = threading.Event()
    started = time.perf_counter()

    def after_trial(study, trial) -> None:
        if stopping.is_set():
            study.stop()
        echo(progress_line(study, trial, started, request.trials))

    def on_signal(signum, frame):
        if stopping.is_set():  # a second Ctrl-C: stop now (the running trial is marked failed)
            raise KeyboardInterrupt
        stopping.set()
        echo("stopping after the running trial's next update (Ctrl-C again to stop at once) ...")

    # The trial a signal stops ends as failed by design; Optuna would log that with a traceback.
    # Our own "interrupted: ..." line says what happened, so its failure logs are dropped then.
    def quiet_when_stopping(record) -> bool:
        return not stopping.is_set()

    optuna_trial_logger = logging.getLogger("optuna.study._optimize")
    optuna_trial_logger.addFilter(quiet_when_stopping)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        study.optimize(lambda trial: _objective(trial, request, stopping), n_trials=remaining,
                       timeout=request.timeout, n_jobs=request.n_jobs, gc_after_trial=True,
                       catch=(InvalidConfigError, NonFiniteLossError),
                       callbacks=[MaxTrialsCallback(request.trials, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                                  after_trial])
    except (TuneInterrupted, KeyboardInterrupt):
        stopping.set()
    finally:
        optuna_trial_logger.removeFilter(quiet_when_stopping)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stopping.is_set():
        raise TuneInterrupted(f"interrupted: {len(finished_trials(study))} finished trials are kept in "
                              f"{request.storage}")
    return study


def _objective(trial, request: TuneRequest, stopping: threading.Event) -> float:
    try:
        return run_trial(trial, request, stopping)
    except Exception as err:
        import optuna

        if not isinstance(err, (optuna.TrialPruned, TuneInterrupted)):
            trial.set_user_attr("error", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        raise


def best_model_dir(study, request: TuneRequest, echo: Callable[[str], None]) -> Path:
    """The best trial's model folder; retrained from its recorded config when this machine lacks it
    (the trial ran in another process on another machine)."""
    from interpret_rl.rollout import algorithm_module, config_from_meta

    best = study.best_trial
    folder = Path(best.user_attrs.get("model_dir", ""))
    if folder.is_dir() and (folder / registry.META).is_file():
        return folder
    echo(f"trial {best.number}'s model is not on this machine; retraining it from its settings")
    algorithm = algorithm_module(request.algo)
    config = config_from_meta(algorithm.CONFIG, best.user_attrs["config"])
    result = algorithm.train(config)
    folder = trials_dir(request.study) / f"trial-{best.number:04d}"
    registry.save_agent(result.agent, folder, config=dataclasses.asdict(config), seed=config.seed)
    return folder


def save_results(study, request: TuneRequest, model_name: str, echo: Callable[[str], None]) -> dict[str, Path]:
    """The best trial as a registry model (hyperparameters in meta.json) and a preset file for
    ``train --preset-file``; returns their paths."""
    from interpret_rl.atomic import atomic_write_text

    best = study.best_trial
    source = best_model_dir(study, request, echo)
    destination = registry.user_models_dir() / model_name
    try:
        with registry.writer_lock(destination):
            meta = registry.read_meta(source)
            registry.save_agent(registry.load_agent(source), destination, config=meta.get("config"),
                                seed=meta.get("seed"), evaluation=meta.get("evaluation"),
                                tune=tune_record(study, request, best))
    except registry.ModelBusyError:  # another process of this study is saving the same best trial
        echo(f"model {model_name} is being written by another process of this study; left to it")
    preset_path = studies_dir() / f"{request.study}-best.json"
    config = {k: v for k, v in best.user_attrs["config"].items()
              if k not in ("seed", "device", "torch_threads", "log_every_steps", "checkpoint_every_steps",
                           "keep_checkpoints", "target_return")}
    preset = {"algo": request.algo, "config": config, "about": tune_record(study, request, best)}
    atomic_write_text(preset_path, json.dumps(preset, indent=2, sort_keys=True))
    return {"model": destination, "preset": preset_path}


def tune_record(study, request: TuneRequest, best) -> dict:
    return {"study": request.study, "storage": request.storage, "trial": best.number,
            "score": round(best.value, 3), "params": best.params,
            "eval_mean": best.user_attrs.get("eval_mean"), "curve_area": best.user_attrs.get("curve_area"),
            "budget": request.budget, "finished_trials": len(finished_trials(study))}


def read_preset_file(path: str | Path) -> tuple[str, dict]:
    """``(algo, config values)`` of a preset file written by ``tune`` (``train --preset-file``)."""
    from interpret_rl.rollout import ALGORITHMS, InvalidConfigError

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InvalidConfigError(f"--preset-file {path}: cannot read it as JSON ({err})") from None
    if not isinstance(data, dict) or data.get("algo") not in ALGORITHMS or not isinstance(data.get("config"), dict):
        raise InvalidConfigError(f"--preset-file {path}: expected {{\"algo\": one of {', '.join(ALGORITHMS)}, "
                                 f"\"config\": {{...}}}} as tune writes it")
    from interpret_rl.rollout import algorithm_module

    known = {f.name for f in dataclasses.fields(algorithm_module(data["algo"]).CONFIG)}
    unknown = sorted(set(data["config"]) - known)
    if unknown:
        raise InvalidConfigError(f"--preset-file {path}: {', '.join(unknown)} not settings of {data['algo']}")
    return data["algo"], data["config"]
