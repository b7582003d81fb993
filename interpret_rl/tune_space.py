"""Search spaces of ``interpret-rl tune``: what Optuna samples per algorithm, and how a sample
becomes training settings.

The spaces follow rl-baselines3-zoo's ``hyperparams_opt.py`` (``sample_a2c_params``,
``sample_ppo_params``, ``sample_dqn_params``), narrowed where a zoo range cannot fit the short
budgets a tune trial gets (the zoo's 2048-step rollouts x 8 envs leave six updates in 100k steps)
and widened where our presets sit outside it (A2C CartPole trains at lr 2e-3, the zoo's upper end).
docs/tune.md has the same tables; ``space_table`` writes them and a test checks they agree.

A space is a dict ``parameter -> spec``; a spec is one of

* ``{"float": [low, high], "log": bool}`` / ``{"int": [low, high], "log": bool}``: a range;
* ``{"choices": [a, b, ...]}``: a categorical choice;
* a plain value (number, string, bool, list): fixed, not searched.

A parameter is a config field of the algorithm (``lr``, ``n_steps``, ``ent_coef``...) or one of the
zoo-style derived parameters of ``DERIVED``. A JSON or TOML file (``tune --space FILE``) replaces
or adds parameters of the built-in space; ``{"remove": true}`` takes one out (the preset's value
is then used).
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

NET_ARCHS = {"tiny": [64], "small": [64, 64], "medium": [256, 256]}
"""Hidden layer widths of the MLP (actor and critic each get their own trunk in the cartpole presets)."""

DERIVED = {
    "one_minus_gamma": "gamma = 1 - value (log-uniform near 1, as the zoo samples it)",
    "one_minus_gae_lambda": "gae_lambda = 1 - value",
    "net_arch": f"MLP hidden widths: {', '.join(f'{k} {v}' for k, v in NET_ARCHS.items())}",
    "activation": "MLP activation (actor-critic MLPs only)",
    "minibatch_size": "PPO: num_minibatches = num_envs * n_steps // value (the zoo's batch_size)",
    "subsample_steps": "DQN: gradient_steps = max(n_steps // value, 1) (the zoo's subsample_steps)",
}
"""Parameters that are not config fields, and what each sets."""

NETWORK_PARAMS = ("net_arch", "activation")
"""Only for vector observations (an MLP); dropped from the space for image observations."""

SPACES: dict[str, dict[str, Any]] = {
    # zoo sample_a2c_params, minus GAE (our A2C uses plain n-step returns); n_steps per env with the
    # preset's 8 envs; plus the optimizer and advantage normalisation of the zoo's older A2C sampler.
    "a2c": {
        "n_steps": {"choices": [5, 8, 16, 32, 64, 128]},
        "one_minus_gamma": {"float": [0.0001, 0.03], "log": True},
        "lr": {"float": [1e-5, 1e-2], "log": True},
        "max_grad_norm": {"float": [0.3, 2.0], "log": False},
        "ent_coef": {"float": [1e-8, 0.1], "log": True},
        "optimizer": {"choices": ["rmsprop", "adam"]},
        "normalize_advantage": {"choices": [False, True]},
        "net_arch": {"choices": ["small", "medium"]},
        "activation": {"choices": ["tanh", "relu"]},
    },
    # zoo sample_ppo_params; n_steps per env with the preset's 8 envs, up to 256 (zoo: 2048).
    "ppo": {
        "minibatch_size": {"choices": [32, 64, 128, 256, 512]},
        "n_steps": {"choices": [8, 16, 32, 64, 128, 256]},
        "one_minus_gamma": {"float": [0.0001, 0.03], "log": True},
        "one_minus_gae_lambda": {"float": [0.0001, 0.1], "log": True},
        "lr": {"float": [1e-5, 0.002], "log": True},
        "ent_coef": {"float": [1e-8, 0.1], "log": True},
        "clip_coef": {"choices": [0.1, 0.2, 0.3, 0.4]},
        "epochs": {"choices": [1, 5, 10, 20]},
        "max_grad_norm": {"float": [0.3, 2.0], "log": False},
        "net_arch": {"choices": ["tiny", "small", "medium"]},
        "activation": {"choices": ["tanh", "relu"]},
    },
    # zoo sample_dqn_params with buffers, target updates and learning starts that fit 100k-step
    # budgets; n_steps is the zoo's train_freq (one env).
    "dqn": {
        "gamma": {"choices": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]},
        "lr": {"float": [1e-5, 1e-2], "log": True},
        "batch_size": {"choices": [16, 32, 64, 100, 128, 256, 512]},
        "buffer_size": {"choices": [10_000, 50_000, 100_000]},
        "epsilon_end": {"float": [0.0, 0.2], "log": False},
        "exploration_fraction": {"float": [0.01, 0.5], "log": False},
        "target_update_steps": {"choices": [1, 1000, 5000, 10000]},
        "learning_starts": {"choices": [0, 1000, 5000, 10000]},
        "n_steps": {"choices": [1, 4, 8, 16, 128, 256]},
        "subsample_steps": {"choices": [1, 2, 4, 8]},
        "net_arch": {"choices": ["tiny", "small", "medium"]},
    },
    # No zoo sampler exists for PQN; ranges around Gallici et al. 2024's (lambda, epochs, minibatches).
    "pqn": {
        "n_steps": {"choices": [16, 32, 64, 128]},
        "one_minus_gamma": {"float": [0.0001, 0.03], "log": True},
        "lr": {"float": [1e-5, 1e-2], "log": True},
        "q_lambda": {"float": [0.3, 0.95], "log": False},
        "epochs": {"choices": [1, 2, 4]},
        "num_minibatches": {"choices": [1, 2, 4, 8]},
        "epsilon_end": {"float": [0.001, 0.1], "log": True},
        "exploration_fraction": {"float": [0.05, 0.5], "log": False},
        "max_grad_norm": {"float": [0.5, 10.0], "log": True},
        "net_arch": {"choices": ["tiny", "small", "medium"]},
    },
}


NOT_SEARCHED = {"env_id", "total_steps", "seed", "device", "torch_threads", "target_return", "log_every_steps",
                "checkpoint_every_steps", "keep_checkpoints"}
"""Config fields a trial sets itself (``--env``, ``--budget``, ``--seed``) or that do not change learning."""


class SpaceError(ValueError):
    """A search space (or its file) that cannot be used; the message names what is wrong."""


def valid_names(algo: str) -> list[str]:
    """Parameters a space of ``algo`` may hold: its config fields and the derived ones."""
    from interpret_rl.rollout import algorithm_module

    own = {f.name for f in fields(algorithm_module(algo).CONFIG)} - NOT_SEARCHED
    derived = {"one_minus_gamma", "net_arch"}
    derived |= {"one_minus_gae_lambda"} if "gae_lambda" in own else set()
    derived |= {"activation"} if algo in ("a2c", "ppo") else set()  # the Q-networks have no choice of activation
    derived |= {"minibatch_size"} if algo == "ppo" else {"subsample_steps"} if algo == "dqn" else set()
    return sorted(own | derived)


def check_spec(name: str, spec: Any) -> None:
    """Raise ``SpaceError`` unless ``spec`` is a range, a choice or a fixed value."""
    if not isinstance(spec, dict):
        return  # a fixed value; the config checks it when a trial is built
    kinds = [k for k in ("float", "int", "choices") if k in spec]
    extra = set(spec) - {"float", "int", "choices", "log"}
    if len(kinds) != 1 or extra:
        raise SpaceError(f"parameter {name}: a spec is {{\"float\": [low, high], \"log\": bool}}, "
                         f"{{\"int\": [low, high]}} or {{\"choices\": [...]}}, got {spec!r}")
    kind = kinds[0]
    if kind == "choices":
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices or not all(
                c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise SpaceError(f"parameter {name}: choices must be a non-empty list of numbers, strings or "
                             f"booleans, got {choices!r}")
        return
    bounds = spec[kind]
    number = int if kind == "int" else (int, float)
    if (not isinstance(bounds, list) or len(bounds) != 2
            or not all(isinstance(b, number) and not isinstance(b, bool) for b in bounds)):
        raise SpaceError(f"parameter {name}: {kind} needs [low, high] as two {kind} numbers, got {bounds!r}")
    low, high = bounds
    if not low < high:
        raise SpaceError(f"parameter {name}: low {low} must be below high {high}")
    if not isinstance(spec.get("log", False), bool):
        raise SpaceError(f"parameter {name}: log must be true or false, got {spec['log']!r}")
    if spec.get("log") and low <= 0:
        raise SpaceError(f"parameter {name}: a log range needs low > 0, got {low}")


def read_space_file(path: str | Path) -> dict[str, Any]:
    """A JSON (``.json``) or TOML (``.toml``) file of ``parameter -> spec``."""
    path = Path(path)
    if path.suffix.lower() not in (".json", ".toml"):
        raise SpaceError(f"--space {path}: the file must end in .json or .toml")
    try:
        text = path.read_text()
    except OSError as err:
        raise SpaceError(f"--space {path}: cannot read it ({err.strerror})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except ValueError as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise SpaceError(f"--space {path}: not valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(data, dict):
        raise SpaceError(f"--space {path}: expected a table of parameter -> spec, got {type(data).__name__}")
    return data


def build_space(algo: str, overrides: dict[str, Any] | None = None, image_observations: bool = False) -> dict:
    """The built-in space of ``algo`` with ``overrides`` (a space file's content) applied and checked."""
    space = dict(SPACES[algo])
    allowed = valid_names(algo)
    for name, spec in (overrides or {}).items():
        if name not in allowed:
            from interpret_rl.plugin_manager import unknown_name_message

            raise SpaceError(unknown_name_message(f"{algo} search parameter", name, allowed))
        if spec == {"remove": True}:
            space.pop(name, None)
            continue
        check_spec(name, spec)
        space[name] = spec
    if image_observations:
        for name in NETWORK_PARAMS:
            space.pop(name, None)
    return space


def sample(trial, space: dict[str, Any]) -> dict[str, Any]:
    """Ask Optuna's ``trial`` for every searched parameter; fixed values are passed through."""
    values = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            values[name] = spec
        elif "choices" in spec:
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif "int" in spec:
            values[name] = trial.suggest_int(name, *spec["int"], log=spec.get("log", False))
        else:
            values[name] = trial.suggest_float(name, *map(float, spec["float"]), log=spec.get("log", False))
    return values


def to_config_overrides(params: dict[str, Any], base_config) -> dict[str, Any]:
    """Sampled parameters -> keyword overrides of the algorithm's config (derived ones converted)."""
    params = dict(params)
    overrides: dict[str, Any] = {}
    arch_args = dict(base_config.architecture_args)
    if "one_minus_gamma" in params:
        overrides["gamma"] = 1.0 - params.pop("one_minus_gamma")
    if "one_minus_gae_lambda" in params:
        overrides["gae_lambda"] = 1.0 - params.pop("one_minus_gae_lambda")
    if "net_arch" in params:
        arch_args["hidden"] = list(NET_ARCHS[params.pop("net_arch")])
    if "activation" in params:
        arch_args["activation"] = params.pop("activation")
    num_envs = params.get("num_envs", base_config.num_envs)
    n_steps = params.get("n_steps", base_config.n_steps)
    if "minibatch_size" in params:
        overrides["num_minibatches"] = max(1, num_envs * n_steps // params.pop("minibatch_size"))
    if "subsample_steps" in params:
        overrides["gradient_steps"] = max(n_steps // params.pop("subsample_steps"), 1)
    overrides.update(params)
    if arch_args != base_config.architecture_args:
        overrides["architecture_args"] = arch_args
    return overrides


def from_config(space: dict[str, Any], config, default_hidden: list[int]) -> dict[str, Any]:
    """The searched parameters that reproduce ``config`` (a preset), for Optuna's ``enqueue_trial``:
    the first trial of a study is the preset, so the search starts from what is known to work.
    A float or int outside its range is moved to the nearest end; a value that is not among the
    choices is left for the sampler to pick."""
    arch = config.architecture_args
    known = {"one_minus_gamma": 1.0 - config.gamma, "activation": arch.get("activation", "tanh"),
             "net_arch": next((k for k, v in NET_ARCHS.items() if v == list(arch.get("hidden", default_hidden))), None)}
    if hasattr(config, "gae_lambda"):
        known["one_minus_gae_lambda"] = 1.0 - config.gae_lambda
    if hasattr(config, "num_minibatches"):
        known["minibatch_size"] = config.num_envs * config.n_steps // config.num_minibatches
    if hasattr(config, "gradient_steps"):
        known["subsample_steps"] = max(config.n_steps // config.gradient_steps, 1)
    params = {}
    for name, spec in space.items():
        value = known[name] if name in known else getattr(config, name, None)
        if not isinstance(spec, dict) or value is None:
            continue
        if "choices" in spec:
            if value in spec["choices"]:
                params[name] = value
            continue
        low, high = spec["float" if "float" in spec else "int"]
        params[name] = min(max(value, low), high)
    return params


def describe(spec: Any) -> str:
    """One table cell for a spec."""
    if not isinstance(spec, dict):
        return f"fixed {spec!r}"
    if "choices" in spec:
        return "one of " + ", ".join(str(c) for c in spec["choices"])
    kind = "float" if "float" in spec else "int"
    low, high = spec[kind]
    return f"{kind} {low:g} .. {high:g}" + (" (log)" if spec.get("log") else "")


def space_table(algo: str, space: dict[str, Any] | None = None) -> str:
    """The space as a markdown table (docs/tune.md and ``tune --show-space``)."""
    space = SPACES[algo] if space is None else space
    lines = ["| parameter | range | sets |", "|---|---|---|"]
    for name, spec in space.items():
        lines.append(f"| `{name}` | {describe(spec)} | {DERIVED.get(name, 'the config field of that name')} |")
    return "\n".join(lines)
