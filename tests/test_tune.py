"""``interpret-rl tune``: search spaces, the learning-curve reporter, bad input, a whole small study,
two processes on one study, and a study stopped with SIGINT and resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from interpret_rl import cli_tune, tune, tune_space  # noqa: E402,F401 - cli_tune adds the command

ROOT = Path(__file__).resolve().parents[1]


def in_memory_trial():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    return study, study.ask()


# --- search spaces -----------------------------------------------------------------------------

def test_every_sample_lies_in_its_range_and_fixed_values_pass_through():
    space = tune_space.build_space("a2c", {"vf_coef": 0.7, "n_steps": {"int": [3, 9]}})
    for _ in range(20):
        _, trial = in_memory_trial()
        values = tune_space.sample(trial, space)
        assert values["vf_coef"] == 0.7 and "vf_coef" not in trial.params  # fixed: not searched
        assert 3 <= values["n_steps"] <= 9 and isinstance(values["n_steps"], int)
        assert 1e-5 <= values["lr"] <= 1e-2
        assert values["optimizer"] in ("rmsprop", "adam")


def test_derived_parameters_become_config_fields():
    from interpret_rl import a2c, ppo

    base = ppo.config_from_preset("cartpole")  # 8 envs
    overrides = tune_space.to_config_overrides(
        {"one_minus_gamma": 0.01, "one_minus_gae_lambda": 0.1, "n_steps": 64, "minibatch_size": 128,
         "net_arch": "tiny", "activation": "relu", "lr": 3e-4}, base)
    assert overrides["gamma"] == pytest.approx(0.99) and overrides["gae_lambda"] == pytest.approx(0.9)
    assert overrides["num_minibatches"] == 8 * 64 // 128
    assert overrides["architecture_args"] == {"shared_trunk": False, "hidden": [64], "activation": "relu"}
    assert overrides["lr"] == 3e-4 and "net_arch" not in overrides
    assert a2c.config_from_preset("cartpole").architecture_args == {"shared_trunk": False}  # preset untouched


def test_the_first_trial_is_the_preset():
    """An enqueued ``from_config`` trial samples back to the preset's own settings (ent_coef 0 lies
    outside the log range and becomes its low end, 1e-8)."""
    from dataclasses import asdict

    from interpret_rl import a2c

    preset = a2c.config_from_preset("cartpole")
    space = tune_space.build_space("a2c")
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(tune_space.from_config(space, preset, default_hidden=[64, 64]))
    values = tune_space.sample(study.ask(), space)
    rebuilt = {**asdict(preset), **tune_space.to_config_overrides(values, preset)}
    for name in ("n_steps", "lr", "max_grad_norm", "optimizer", "normalize_advantage"):
        assert rebuilt[name] == asdict(preset)[name], name
    # The MLP's own defaults, now spelled out: the same network.
    assert rebuilt["architecture_args"] == {**preset.architecture_args, "hidden": [64, 64], "activation": "tanh"}
    assert rebuilt["gamma"] == pytest.approx(preset.gamma) and rebuilt["ent_coef"] == 1e-8


@pytest.mark.parametrize("overrides, says", [
    ({"ent_coeff": {"float": [1e-4, 1e-3]}}, "did you mean ent_coef"),
    ({"one_minus_gae_lambda": {"float": [1e-4, 1e-3]}}, "unknown a2c search parameter"),
    ({"lr": {"float": [1e-3, 1e-4]}}, "must be below"),
    ({"lr": {"float": [0.0, 1e-3], "log": True}}, "low > 0"),
    ({"n_steps": {"choices": []}}, "non-empty"),
    ({"n_steps": {"int": [1.5, 4]}}, "two int numbers"),
    ({"lr": {"range": [1, 2]}}, "a spec is"),
])
def test_a_bad_space_is_refused_naming_the_parameter(overrides, says):
    with pytest.raises(tune_space.SpaceError, match=says):
        tune_space.build_space("a2c", overrides)


def test_space_files_in_json_and_toml_say_the_same(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"lr": {"float": [1e-4, 1e-3], "log": True},
                                                 "ent_coef": {"remove": True}, "vf_coef": 0.25}))
    (tmp_path / "s.toml").write_text('vf_coef = 0.25\n[lr]\nfloat = [1e-4, 1e-3]\nlog = true\n'
                                     '[ent_coef]\nremove = true\n')
    spaces = [tune_space.build_space("a2c", tune_space.read_space_file(tmp_path / f)) for f in ("s.json", "s.toml")]
    assert spaces[0] == spaces[1]
    assert "ent_coef" not in spaces[0] and spaces[0]["lr"] == {"float": [1e-4, 1e-3], "log": True}


def test_image_observations_drop_the_mlp_parameters():
    assert "net_arch" not in tune_space.build_space("ppo", image_observations=True)


def test_docs_show_the_spaces_the_code_searches():
    docs = (ROOT / "docs" / "tune.md").read_text()
    for algo in tune_space.SPACES:
        assert tune_space.space_table(algo) in docs, f"docs/tune.md: the {algo} table is out of date"


# --- the learning-curve reporter ---------------------------------------------------------------

def test_minatar_shares_are_per_named_object_channel_and_atari_per_frame(tmp_path):
    # MinAtar's (C, 10, 10) channels are object layers (Breakout: paddle, ball, trail, brick), not a
    # stack of frames; its shares used to be labelled "frame 0" ... "frame 3 (newest)".
    pytest.importorskip("minatar")
    from types import SimpleNamespace

    from interpret_rl import a2c

    agent = a2c.train(a2c.config_from_preset("minatar", total_steps=80, num_envs=4, log_every_steps=10**9)).agent
    request = tune.TuneRequest(env_id=agent.env_id, algo="a2c", trials=1, budget=80, study="s", storage="",
                               space={}, explain_states=3)
    attrs, picture = tune.explanation_numbers(agent, tmp_path, request)
    assert attrs["explain.unit"] == "channel"
    assert list(attrs["explain.share"]) == ["paddle", "ball", "trail", "brick"]
    assert attrs["explain.top"] in attrs["explain.share"] and picture.stat().st_size > 0
    atari = SimpleNamespace(env_id="ALE/Breakout-v5", observation_space={"shape": [4, 84, 84]})
    assert tune.unit_names(atari) == ("frame", ["frame 0", "frame 1", "frame 2", "frame 3 (newest)"])


def test_reporter_reads_the_curve_at_even_points_and_reports_the_running_mean():
    study, trial = in_memory_trial()
    reporter = tune.CurveReporter(trial, budget=2000, stopping=threading.Event())
    # Updates of 320 steps: points fall due at 100, 200, ... 2000 steps (REPORT_POINTS = 20).
    returns = {320 * k: float(k) for k in range(1, 8)}
    returns[320] = float("nan")  # no game ended yet: the point is kept but not averaged
    for steps, mean in returns.items():
        reporter(steps, {"ep_rew_mean": mean})
    assert len(reporter.points) == 20  # 2240 >= 2000: every point is read
    assert all(p != p for p in reporter.points[:3])  # points 1-3 (100-300 steps) read at step 320: NaN
    assert reporter.points[3:6] == [2.0] * 3 and reporter.points[12:16] == [5.0] * 4 and reporter.points[-1] == 7.0
    study.tell(trial, 0.0)
    reported = study.trials[0].intermediate_values
    known = [p for p in reporter.points if p == p]
    assert reported[20] == pytest.approx(sum(known) / len(known))
    assert 1 not in reported and 2 not in reported  # only NaN so far at points 1-3 (step 320)
    assert reported[4] == pytest.approx(2.0)


def test_reporter_prunes_a_curve_below_the_others():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(
        n_startup_trials=2, n_warmup_steps=0))
    for value in (100.0, 120.0):
        trial = study.ask()
        for step in range(1, 6):
            trial.report(value, step)
        study.tell(trial, value)
    trial = study.ask()
    reporter = tune.CurveReporter(trial, budget=1000, stopping=threading.Event())
    with pytest.raises(optuna.TrialPruned):
        for steps in range(50, 1001, 50):
            reporter(steps, {"ep_rew_mean": 10.0})
    assert len(reporter.points) == 1  # pruned at the first point


def test_reporter_stops_a_trial_when_the_study_is_stopping():
    _, trial = in_memory_trial()
    stopping = threading.Event()
    stopping.set()
    with pytest.raises(tune.TuneInterrupted):
        tune.CurveReporter(trial, 1000, stopping)(100, {"ep_rew_mean": 1.0})


# --- command line ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["--algo", "sac"], "--algo 'sac'"),
    (["--sampler", "cmaes"], "--sampler 'cmaes'"),
    (["--pruner", "hyperband"], "--pruner 'hyperband'"),
    (["--trials", "0"], "--trials 0"),
    (["--storage", "nosuchdb://x/y"], "--storage nosuchdb://x/y"),
    (["--space", "missing.json"], "cannot read"),
    (["--space", "space.yaml"], ".json or .toml"),
])
def test_bad_input_is_one_line_and_exit_2(run, tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text("lr: 1")
    base = {"--env": "CartPole-v1", "--trials": "2", "--budget": "1000"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    result = run("tune", *[item for pair in base.items() for item in pair])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in result.output


def test_without_optuna_tune_says_what_to_install(run, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    result = run("tune", "--env", "CartPole-v1", "--trials", "1", "--budget", "100")
    assert result.exit_code == 2 and "interpret-rl[tune]" in result.output


def test_a_bad_space_file_is_one_line(run, tmp_path):
    bad = tmp_path / "space.json"
    bad.write_text('{"lr": {"float": [1, 0.1]}}')
    result = run("tune", "--env", "CartPole-v1", "--trials", "1", "--budget", "100", "--space", str(bad))
    assert result.exit_code == 2 and "low 1 must be below high 0.1" in result.output
    bad.write_text("{not json")
    result = run("tune", "--env", "CartPole-v1", "--trials", "1", "--budget", "100", "--space", str(bad))
    assert result.exit_code == 2 and "not valid JSON" in result.output


def test_show_space_prints_the_effective_table(run, tmp_path):
    space = tmp_path / "s.toml"
    space.write_text("[lr]\nfloat = [0.001, 0.002]\n")
    result = run("tune", "--env", "CartPole-v1", "--trials", "1", "--budget", "100", "--space", str(space),
                 "--show-space")
    assert result.exit_code == 0 and "| `lr` | float 0.001 .. 0.002 |" in result.output


def test_train_takes_a_preset_file_and_the_options_override_it(run, tmp_path, isolated_home):
    from interpret_rl import registry

    preset = tmp_path / "best.json"
    preset.write_text(json.dumps({"algo": "a2c", "about": {"study": "hand-made"},
                                  "config": {"env_id": "CartPole-v1", "n_steps": 7, "lr": 0.0123, "num_envs": 2}}))
    result = run("train", "--preset-file", str(preset), "--steps", "60", "--lr", "0.002", "--name", "p",
                 "--eval-episodes", "0", "--quiet")
    assert result.exit_code == 0, result.output
    config = registry.read_meta(isolated_home / "models" / "p")["config"]
    assert (config["n_steps"], config["num_envs"], config["lr"]) == (7, 2, 0.002)


@pytest.mark.parametrize("content, extra, says", [
    ({"algo": "a2c", "config": {"lr": 0.01}}, ["--preset", "cartpole"], "give one of them"),
    ({"algo": "a2c", "config": {"lr": 0.01}}, ["--algo", "ppo"], "holds a2c settings"),
    ({"algo": "a2c", "config": {"learning_rate": 0.01}}, [], "learning_rate not settings of a2c"),
    ({"algo": "sac", "config": {}}, [], "expected"),
])
def test_a_bad_preset_file_is_one_line(run, tmp_path, content, extra, says):
    preset = tmp_path / "best.json"
    preset.write_text(json.dumps(content))
    result = run("train", "--preset-file", str(preset), "--steps", "60", *extra)
    assert result.exit_code == 2 and says in result.output and len(result.output.strip().splitlines()) == 1


# --- whole studies -----------------------------------------------------------------------------

def load_study(home: Path, name: str):
    return optuna.load_study(study_name=name, storage=tune.open_storage(str(home / "studies" / f"{name}.log")))


@pytest.mark.slow
def test_a_small_study_saves_the_best_model_a_preset_and_a_report(run, isolated_home):
    from interpret_rl import registry

    result = run("tune", "--env", "CartPole-v1", "--trials", "2", "--budget", "1600", "--study", "small",
                 "--pruner", "none")
    assert result.exit_code == 0, result.output
    study = load_study(isolated_home, "small")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 2
    best = study.best_trial
    for trial in complete:  # score = (evaluation + curve area) / 2, as documented
        assert trial.value == pytest.approx((trial.user_attrs["eval_mean"] + trial.user_attrs["curve_area"]) / 2,
                                            abs=1e-2)
        share = trial.user_attrs["explain.share"]
        assert set(share) == set(tune.FEATURE_NAMES["CartPole-v1"])
        assert sum(share.values()) == pytest.approx(1, abs=1e-3)
        assert trial.user_attrs["explain.picture_artifact"]
    meta = registry.read_meta(isolated_home / "models" / "small-best")
    assert meta["tune"]["trial"] == best.number and meta["tune"]["params"] == best.params
    assert meta["config"]["lr"] == best.params["lr"]
    preset = isolated_home / "studies" / "small-best.json"
    report = (isolated_home / "studies" / "small-report.html").read_text()
    assert report.count("data:image/png;base64,") >= 4 and "Optimisation history" in report
    # The preset file is what train takes: the tuned settings, with the command line's on top.
    trained = run("train", "--preset-file", str(preset), "--steps", "400", "--name", "from-preset",
                  "--eval-episodes", "0", "--quiet")
    assert trained.exit_code == 0, trained.output
    config = registry.read_meta(isolated_home / "models" / "from-preset")["config"]
    assert config["lr"] == best.params["lr"] and config["total_steps"] == 400
    assert config["n_steps"] == best.params["n_steps"]
    # A rerun with the same --trials runs nothing more and writes the results again.
    again = run("tune", "--env", "CartPole-v1", "--trials", "2", "--budget", "1600", "--study", "small")
    assert again.exit_code == 0 and len(load_study(isolated_home, "small").trials) == 2


def tune_process(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "INTERPRET_RL_HOME": str(home), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "interpret_rl", "tune", "--env", "CartPole-v1", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trial_numbers(output: str) -> list[int]:
    """The trials a process ran, from its progress lines ``trial 7: score ...``."""
    return [int(m.group(1)) for m in re.finditer(r"^trial (\d+): ", output, re.MULTILINE)]


@pytest.mark.slow
@pytest.mark.timeout(900)  # fresh processes: about 35 s of CPU, minutes of wall time on a busy machine
def test_two_processes_on_one_study_count_every_trial_once(isolated_home):
    args = ("--trials", "4", "--budget", "500", "--study", "shared", "--pruner", "none")
    processes = [tune_process(isolated_home, *args, "--seed", str(seed)) for seed in (0, 1)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    ran = [trial_numbers(err) for _, err in outputs]
    assert ran[0] and ran[1], "both processes ran trials"
    assert not set(ran[0]) & set(ran[1]), "no trial ran in both processes"
    study = load_study(isolated_home, "shared")
    finished = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(ran[0] + ran[1]) == sorted(finished)
    # The study stops at 4; a process whose trial was already running when the 4th finished adds one.
    assert 4 <= len(finished) <= 5


@pytest.mark.slow
@pytest.mark.timeout(900)  # two tune runs in turn: about 35 s of CPU, minutes on a busy machine
def test_sigint_keeps_every_finished_trial_and_the_study_resumes(isolated_home):
    args = ("--trials", "40", "--budget", "1000", "--study", "stopped", "--pruner", "none")
    process = tune_process(isolated_home, *args)
    journal = isolated_home / "studies" / "stopped.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until two trials have finished
        trials = load_study(isolated_home, "stopped").trials if journal.exists() else []
        if sum(t.state.name == "COMPLETE" for t in trials) >= 2:
            break
        time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 130, err
    assert "run the same command to resume" in err and "Traceback" not in err
    before = {t.number: t.value for t in load_study(isolated_home, "stopped").trials if t.state.name == "COMPLETE"}
    assert len(before) >= 2
    resumed = tune_process(isolated_home, "--trials", str(len(before) + 1), *args[2:])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    after = {t.number: t.value for t in load_study(isolated_home, "stopped").trials if t.state.name == "COMPLETE"}
    assert {n: after[n] for n in before} == before  # nothing finished was lost or changed
    assert len(after) == len(before) + 1
