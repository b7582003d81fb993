"""Checks of a training request made before any work, where a mistake would otherwise surface as a
traceback deep inside training (or a machine out of memory):

- the rollout buffer's size, before the environments are made (``--n-steps 10**9`` asked for 128 GB);
- that the network takes the environment's observations, before the first update
  (``--architecture nature-cnn`` on CartPole's 4 numbers failed inside ``conv2d``);
- that a checkpoint's resume state fits the run it resumes, before anything of it is applied (a
  crafted meta.json could set any attribute of the environment, ``render_mode`` included, or hand
  torch a random-number state it rejects).
"""

from __future__ import annotations

import base64
import binascii
import math

# Sub-environments are all made before the first step; more than this is never meant on one machine.
MAX_NUM_ENVS = 1024
# Transitions one rollout holds (num_envs x n_steps); the presets use at most 4,096. A rollout of
# this many Atari frame stacks (4x84x84 bytes) takes 1.85 GB.
MAX_ROLLOUT_TRANSITIONS = 65_536


def check_rollout_size(config) -> None:
    """Raise ``InvalidConfigError`` when ``config`` asks for more environments or a larger rollout
    than the bounds above."""
    from interpret_rl.rollout import InvalidConfigError

    if config.num_envs > MAX_NUM_ENVS:
        raise InvalidConfigError(f"num_envs={config.num_envs:,}: at most {MAX_NUM_ENVS:,} environments")
    transitions = config.num_envs * config.n_steps
    if transitions > MAX_ROLLOUT_TRANSITIONS:
        raise InvalidConfigError(f"num_envs x n_steps = {config.num_envs:,} x {config.n_steps:,} = {transitions:,} "
                                 f"transitions per rollout, more than the limit of {MAX_ROLLOUT_TRANSITIONS:,}")


def check_network_fits(agent, observation) -> None:
    """Raise ``InvalidConfigError`` unless ``agent``'s network takes ``observation`` (one
    environment's observation, as the vector env gives it)."""
    import torch

    network = agent.network
    x = torch.as_tensor(observation[:1], device=next(network.parameters()).device)
    try:
        with torch.no_grad():
            network.eval()
            network(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise network_refusal(agent.architecture, agent.env_id, tuple(x.shape[1:]), err) from None
    finally:
        network.train()


def network_refusal(architecture: str, env_id: str, shape: tuple, err: Exception):
    """``InvalidConfigError``: the network ``architecture`` cannot take observations of ``shape``,
    found when it was built (its constructor refused the shape) or on its first forward pass."""
    from interpret_rl.errors import first_line
    from interpret_rl.rollout import InvalidConfigError

    why = first_line(err)
    return InvalidConfigError(f"architecture {architecture!r} does not take {env_id}'s observations of shape "
                              f"{shape} ({why}); leave --architecture out to pick one by the observation's shape")


class ResumeStateError(ValueError):
    """A checkpoint's ``resume_state`` that does not fit the run it would continue."""


def check_run_state(state, envs, generator, obs_shape: tuple[int, ...]) -> None:
    """Raise ``ResumeStateError`` unless ``state`` (meta.json's ``resume_state``) has exactly the
    form the run's own snapshot has: the same environments with the same variables, each of the same
    kind (numbers stay numbers, arrays keep dtype and shape, anything else keeps its value, so no
    ``render_mode`` or method can be set), random-number states the generators accept, and
    observations of the run's shape. Nothing is applied here."""
    import numpy as np
    import torch

    reference = envs.get_state()
    _require(isinstance(state, dict) and set(state) == {"env", "obs", "obs_dtype", "generator", "log"},
             "it must hold env, obs, obs_dtype, generator and log")
    env = state["env"]
    _require(isinstance(env, dict) and set(env) == set(reference) and isinstance(env.get("envs"), list),
             "its env entry has another form than this run's")
    _require(len(env["envs"]) == len(reference["envs"]),
             f"it snapshots {len(env['envs'])} environments, this run has {len(reference['envs'])}")
    for index, (sub, own) in enumerate(zip(env["envs"], reference["envs"])):
        _require(isinstance(sub, dict) and set(sub) == set(own), f"environment {index} has another form")
        _require(isinstance(sub["variables"], dict) and set(sub["variables"]) == set(own["variables"]),
                 f"environment {index} sets other variables than {sorted(own['variables'])}")
        for key, value in sub["variables"].items():
            _require(_same_kind(value, own["variables"][key], key),
                     f"environment {index}: {key}={value!r} does not fit")
        _require(_is_count(sub["elapsed_steps"]), f"environment {index}: elapsed_steps must be a count")
        try:
            _require(sub["rng"]["bit_generator"] == own["rng"]["bit_generator"], "")
            getattr(np.random, own["rng"]["bit_generator"])().state = sub["rng"]  # a scratch generator
        except (TypeError, ValueError, KeyError, AttributeError):
            raise ResumeStateError(f"environment {index}'s random-number state is not one numpy accepts") from None
    for key in ("score", "length"):
        _require(isinstance(env[key], list) and len(env[key]) == len(reference[key])
                 and all(_is_number(v) for v in env[key]), f"its {key} must be {len(reference[key])} numbers")
    _require(state["obs_dtype"] in ("float32", "uint8"), "obs_dtype must be float32 or uint8")
    try:
        obs = np.asarray(state["obs"], dtype=state["obs_dtype"])
    except (TypeError, ValueError, OverflowError):
        raise ResumeStateError("its observations are not numbers") from None
    wanted = (len(reference["envs"]), *obs_shape)
    _require(obs.shape == wanted, f"its observations have shape {obs.shape}, this run's {wanted}")
    try:
        raw = base64.b64decode(state["generator"], validate=True)
        scratch = torch.Generator(device=generator.device)
        _require(len(raw) == generator.get_state().numel(), "its action sampler's state has the wrong size")
        scratch.set_state(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    except (TypeError, ValueError, RuntimeError, binascii.Error):
        raise ResumeStateError("its action sampler's random-number state is not one torch accepts") from None
    log = state["log"]
    _require(isinstance(log, dict) and set(log) == {"returns", "lengths", "episodes"}
             and isinstance(log["returns"], list) and isinstance(log["lengths"], list)
             and all(_is_number(v) for v in log["returns"] + log["lengths"]) and _is_count(log["episodes"]),
             "its log must hold lists of returns and lengths and a count of episodes")


def _require(condition: bool, why: str) -> None:
    if not condition:
        raise ResumeStateError(why)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_number_or_scalar_array(value) -> bool:
    """A finite number, or a finite numeric 0-d array as ``envs._to_json`` writes a numpy scalar."""
    if isinstance(value, dict):
        return (set(value) == {"ndarray", "dtype"} and value["dtype"] in ("float32", "float64")
                and _is_number(value["ndarray"]))
    return _is_number(value)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# Classic-control variables that are None after a reset and numbers once the episode has run:
# CartPole's count of steps past termination, Pendulum's last torque (a numpy scalar). Any other
# variable that is None in a fresh env (render_mode, screen, clock) must stay None.
NONE_UNTIL_SET = frozenset({"steps_beyond_terminated", "last_u"})


def _same_kind(value, own, key: str) -> bool:
    """Whether a snapshot's ``value`` may replace the run's ``own`` value of variable ``key``."""
    import numpy as np

    if own is None:
        return value is None or (key in NONE_UNTIL_SET and _is_number_or_scalar_array(value))
    if isinstance(own, dict) and "ndarray" in own:
        if not (isinstance(value, dict) and set(value) == set(own) and value["dtype"] == own["dtype"]):
            return False
        try:
            return np.asarray(value["ndarray"], dtype=own["dtype"]).shape == np.asarray(own["ndarray"]).shape
        except (TypeError, ValueError, OverflowError):
            return False
    if isinstance(own, bool) or isinstance(value, bool):
        return isinstance(own, bool) and isinstance(value, bool)
    if isinstance(own, (int, float)):  # counters and physics
        return value is None or _is_number(value)
    return value == own  # strings and the like (render_mode) are the run's own, never the file's


def check_saved_config(config_class, saved) -> None:
    """Raise ``InvalidConfigError`` unless each field of meta.json's ``config`` that
    ``config_class`` knows has the field's type (a crafted ``"lr": "x"`` failed inside ``validate``
    with a TypeError); the ranges are ``validate``'s."""
    import dataclasses
    import typing

    from interpret_rl.rollout import InvalidConfigError

    if not isinstance(saved, dict):
        raise InvalidConfigError("meta.json's config must be an object")
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in saved and not _has_type(saved[field.name], hints[field.name]):
            raise InvalidConfigError(f"meta.json's config {field.name}={saved[field.name]!r}: "
                                     f"must be {_type_name(hints[field.name])}")


def _has_type(value, kind) -> bool:
    import types
    import typing

    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_has_type(value, option) for option in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is float:
        return _is_number(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(kind, type) and isinstance(value, kind)


def _type_name(kind) -> str:
    return " or ".join(getattr(option, "__name__", str(option)).replace("NoneType", "null")
                       for option in (getattr(kind, "__args__", None) or (kind,)))
