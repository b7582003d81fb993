"""Agents trained elsewhere, opened safely: ``import_agent`` turns a stable-baselines3 ``.zip``
or a CleanRL / plain PyTorch state dict into an ordinary registry entry (safetensors weights and
meta.json with provenance), so every command works on it. Nothing in the file is ever run: see
``safe_read`` (pickles) and ``sb3`` (the JSON's cloudpickled fields are never decoded).

Everything is read and checked before anything is written; a refused file leaves no trace.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from interpret_rl.importing.safe_read import MAX_MEMBER_BYTES, ImportRefusedError

__all__ = ["ImportRefusedError", "ImportResult", "import_agent", "STATE_DICT_LAYOUTS"]

# The spaces of environments a file that records none is taken to come from, when --env is not given.
ENV_GUESSES = [("CartPole-v1", [4], 2), ("Acrobot-v1", [6], 3), ("MountainCar-v0", [2], 3),
               ("ALE/Breakout-v5", [4, 84, 84], 4)]


def __getattr__(name):  # the layout names without importing the layouts at package import
    if name == "STATE_DICT_LAYOUTS":
        from interpret_rl.importing.cleanrl import LAYOUTS

        return tuple(LAYOUTS)
    raise AttributeError(name)


@dataclass
class ImportResult:
    path: Path
    architecture: str
    algo: str
    env_id: str
    env_guessed: bool
    source: dict


def import_agent(path: str | os.PathLike, name: str, *, force: bool = False, architecture: str | None = None,
                 env_id: str | None = None) -> ImportResult:
    """Import the agent in ``path`` as registry model ``name``.

    :param architecture: a state dict's layout (``cleanrl-ppo-atari``...; default: the one its keys fit).
    :param env_id: the environment it acts in (default: the one listed in ``ENV_GUESSES`` whose spaces fit).
    :raises ImportRefusedError: a file that is not importable, or ``name`` taken without ``force``.
    """
    from interpret_rl import registry

    registry.check_name(name)
    out_dir = registry.user_models_dir() / name
    _refuse_existing(out_dir, name, force)
    where = Path(path).name
    data = _read_file(Path(path))
    found, source, observation = _layout(data, where, architecture)
    network = _build(found, where)
    env_id, guessed = (env_id, False) if env_id else (_guess_env(observation, found.args["n_actions"], where), True)
    agent = _agent(network, found, env_id, observation, where)
    agent.steps_trained = source.pop("num_timesteps", 0)
    source.update(file=where, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
                  imported_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  ignored=found.ignored, env_settings="interpret-rl defaults for the env id (the file records none)")
    with registry.writer_lock(out_dir):
        _refuse_existing(out_dir, name, force)  # another process may have saved it meanwhile
        registry.save_agent(agent, out_dir, fresh=True, algo=found.algo, imported_from=source)
    return ImportResult(out_dir, found.architecture, found.algo, env_id, guessed, source)


def _refuse_existing(out_dir: Path, name: str, force: bool) -> None:
    from interpret_rl import registry

    if (out_dir / registry.META).exists() and not force:
        raise ImportRefusedError(f"model {name!r} already exists at {out_dir}; pick another --name or pass --force")


def _read_file(path: Path) -> bytes:
    from interpret_rl.atomic import UnsafeFileError, read_regular_file

    if path.is_dir():
        raise ImportRefusedError(f"{path}: a directory; give the model file (a stable-baselines3 .zip or a state dict)")
    try:
        data = read_regular_file(path, MAX_MEMBER_BYTES)
    except FileNotFoundError:
        raise ImportRefusedError(f"{path}: no such file") from None
    except (OSError, UnsafeFileError) as err:
        raise ImportRefusedError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    if not data:
        raise ImportRefusedError(f"{path}: an empty file; give the model file (a stable-baselines3 .zip or a state "
                                 f"dict)")
    return data


def _layout(data: bytes, where: str, architecture: str | None):
    """(layout, provenance, observation space as far as the file says) of the file's bytes."""
    import io

    from interpret_rl.importing import cleanrl, sb3
    from interpret_rl.importing.safe_read import load_state_dict

    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as err:
            raise ImportRefusedError(f"{where}: not a readable zip ({err})") from None
        if sb3.is_sb3_zip(archive):
            if architecture is not None:
                raise ImportRefusedError(f"--architecture {architecture}: a stable-baselines3 zip names its own "
                                         f"policy; --architecture is for state dicts")
            json_data, state, version = sb3.read_sb3(archive, where)
            found = sb3.layout(json_data, state, where)
            module, policy = sb3.policy_class(json_data, where)
            steps = json_data.get("num_timesteps")
            source = {"format": "stable-baselines3", "sb3_version": version, "policy_class": f"{module}.{policy}",
                      "algo": found.algo.upper(), "num_timesteps": steps if isinstance(steps, int) else 0}
            return found, source, sb3.spaces(json_data, where)[0]
    layout_name, found = cleanrl.layout(load_state_dict(data, where), architecture, where)
    shape = list(found.args["observation_shape"])
    return found, {"format": "state dict", "layout": layout_name}, {"type": "Box", "shape": shape, "dtype": None}


def _build(found, where: str):
    from interpret_rl.importing.layouts import build

    return build(found, where)


def _guess_env(observation: dict, n_actions: int, where: str) -> str:
    fits = [env for env, shape, n in ENV_GUESSES if shape == observation["shape"] and n == n_actions]
    if len(fits) != 1:
        raise ImportRefusedError(f"{where}: the file does not record its environment and its spaces (observation "
                                 f"{observation['shape']}, {n_actions} actions) fit none of "
                                 f"{', '.join(e for e, _, _ in ENV_GUESSES)}; pass --env")
    return fits[0]


def _agent(network, found, env_id: str, observation: dict, where: str):
    """The agent in ``env_id``, after checking that the env's spaces are the file's and that the
    network maps one of its real observations to ``(B, A)`` and ``(B,)`` finite outputs."""
    import torch

    from interpret_rl.agent import Agent, space_to_dict
    from interpret_rl.envs import default_env_settings, make_vector_env

    envs = make_vector_env(env_id, 1, for_training=False, num_threads=1)
    try:
        env_obs, env_action = space_to_dict(envs.single_observation_space), space_to_dict(envs.single_action_space)
        obs = envs.reset(seed=0)
        meanings = list(envs.action_meanings)
    finally:
        envs.close()
    recorded = {"shape": observation["shape"], "n": found.args["n_actions"]}
    actual = {"shape": env_obs.get("shape"), "n": env_action.get("n")}
    if observation.get("dtype") is not None:
        recorded["dtype"], actual["dtype"] = observation["dtype"], env_obs.get("dtype")
    if recorded != actual:
        raise ImportRefusedError(f"{where}: its spaces {recorded} are not those of {env_id} {actual}; pass the --env "
                                 f"it was trained in")
    with torch.no_grad():
        outputs, value = network(torch.as_tensor(obs))
    if outputs.shape != (1, found.args["n_actions"]) or value.shape != (1,) or not torch.isfinite(outputs).all():
        raise ImportRefusedError(f"{where}: the imported network gives outputs of shape {list(outputs.shape)} (or "
                                 f"non-finite ones) on an observation of {env_id}")
    return Agent(network=network, env_id=env_id, env_settings=default_env_settings(env_id),
                 architecture=found.architecture, architecture_args=found.args, observation_space=env_obs,
                 action_space=env_action, action_meanings=meanings, meta={"algo": found.algo})
