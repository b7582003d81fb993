"""Vectorised environments with one interface for classic-control and Atari.

Both backends run with *same-step* autoreset: when a sub-environment ends, the step returns the
first observation of the next episode and the last observation of the old one in ``final_obs``.
So no pseudo-transition (gymnasium's next-step autoreset) ever reaches the learner, and a
truncated episode can be bootstrapped from V(final observation).

Atari uses ale_py's C++ threaded ``AtariVectorEnv`` with the standard preprocessing (84x84 gray,
4 stacked frames channels-first newest last, frameskip 4, up to 30 no-op starts, FIRE on reset,
no sticky actions). Two things it does not do the way the A2C anchors do, so they live here:

* Its ``episodic_life`` flag restarts the *whole game* on every life loss (measured with ale-py
  0.12.1), so the agent would never see a wall with bricks missing. We use ``life_loss_info``
  instead: a lost life is a terminal for the learner while the game goes on.
* After a lost life Breakout waits for FIRE. The step after a life loss therefore sends FIRE
  (as baselines' FireResetEnv does inside reset) and is masked out of the loss.

Rewards for learning are sign-clipped on Atari; the game score reported in ``finished`` is the
unclipped sum over the full game (all lives), as the published anchors report it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from interpret_rl.names import UnknownNameError

ATARI_DEFAULTS: dict[str, Any] = {
    "frameskip": 4,
    "stack_num": 4,
    "img_height": 84,
    "img_width": 84,
    "noop_max": 30,
    "repeat_action_probability": 0.0,
    "max_num_frames_per_episode": 108_000,
    "fire_after_life_loss": True,
}

# Readable action names for classic tasks (Atari names come from the ROM's action set).
CLASSIC_ACTION_MEANINGS = {
    "CartPole-v1": ["LEFT", "RIGHT"],
    "CartPole-v0": ["LEFT", "RIGHT"],
    "Acrobot-v1": ["TORQUE_NEG", "TORQUE_ZERO", "TORQUE_POS"],
    "MountainCar-v0": ["LEFT", "NOOP", "RIGHT"],
    "Pendulum-v1": ["TORQUE"],
    "MountainCarContinuous-v0": ["FORCE"],
    "LunarLander-v3": ["NOOP", "FIRE_LEFT", "FIRE_MAIN", "FIRE_RIGHT"],
    "LunarLanderContinuous-v3": ["MAIN", "LATERAL"],
}


# MinAtar's action letters (minatar.Environment's action set), in readable form.
MINATAR_ACTION_NAMES = {"n": "NOOP", "l": "LEFT", "u": "UP", "r": "RIGHT", "d": "DOWN", "f": "FIRE"}
MINATAR_DEFAULTS: dict[str, Any] = {"max_episode_steps": 10_000}
"""MinAtar games have no time limit of their own; a very good Breakout agent would play forever."""

# Optional extras of interpret-rl that bring an environment family: (what to import, extra).
EXTRAS = {"box2d": ("Box2D", "box2d"), "minatar": ("minatar", "minatar")}


class UnsupportedSpaceError(ValueError):
    """An environment whose observation or action space the agents cannot use."""


class MissingDependencyError(ValueError):
    """An environment whose package is not installed; the message names the pip command."""


def is_minatar(env_id: str) -> bool:
    return env_id.startswith("MinAtar/")


def is_continuous_space(space) -> bool:
    return isinstance(space, gym.spaces.Box)


def check_spaces_supported(env_id: str, observation_space, action_space) -> None:
    """``UnsupportedSpaceError`` in one line unless observations are a Box and actions Discrete or a
    1-D Box."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise UnsupportedSpaceError(f"{env_id} has a {type(observation_space).__name__} observation space; "
                                    f"interpret-rl agents take Box observations (arrays)")
    if isinstance(action_space, gym.spaces.Discrete):
        return
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return
    raise UnsupportedSpaceError(f"{env_id} has a {type(action_space).__name__}{list(action_space.shape or [])} "
                                f"action space; interpret-rl agents take Discrete or 1-D Box actions")


def q_learner_refusal(env_id: str) -> UnsupportedSpaceError:
    return UnsupportedSpaceError(f"{env_id} has continuous (Box) actions; a Q-learner (pqn, dqn) needs discrete "
                                 f"actions: use --algo a2c or ppo")


def check_env_supported(env_id: str, discrete_actions: bool = False) -> None:
    """Build one ``env_id`` and raise the one-line ``MissingDependencyError`` or
    ``UnsupportedSpaceError`` a training run would meet, before anything is written.

    :param discrete_actions: the algorithm needs discrete actions (a Q-learner).
    """
    if is_atari(env_id):
        return
    env = make_single_env(env_id, default_env_settings(env_id))
    try:
        check_spaces_supported(env_id, env.observation_space, env.action_space)
        if discrete_actions and is_continuous_space(env.action_space):
            raise q_learner_refusal(env_id)
    finally:
        env.close()


def _missing(env_id: str, extra: str) -> MissingDependencyError:
    module = EXTRAS[extra][0]
    return MissingDependencyError(f"{env_id} needs {module}, which is not installed: "
                                  f'pip install "interpret-rl[{extra}]"')


def register_minatar(env_id: str) -> None:
    """Register MinAtar's games with gymnasium (``MinAtar/Breakout-v1``...), once."""
    if env_id in gym.registry:
        return
    try:
        from minatar.gym import register_envs
    except ImportError:
        raise _missing(env_id, "minatar") from None
    register_envs()


def make_single_env(env_id: str, kwargs: dict, render_mode: str | None = None) -> gym.Env:
    """``gym.make`` with one-line errors for a missing optional package; MinAtar observations are
    turned channels-first ``(C, 10, 10)`` float32 (its grids are channels-last bools)."""
    render = {"render_mode": render_mode} if render_mode else {}
    if is_minatar(env_id):
        register_minatar(env_id)
    try:
        env = gym.make(env_id, **kwargs, **render)
    except gym.error.DependencyNotInstalled as err:
        entry = str(getattr(gym.registry.get(env_id), "entry_point", ""))
        if "box2d" in entry:
            raise _missing(env_id, "box2d") from None
        raise MissingDependencyError(f"{env_id}: {str(err).splitlines()[0]}") from None
    if is_minatar(env_id):
        height, width, channels = env.observation_space.shape
        space = gym.spaces.Box(0.0, 1.0, (channels, height, width), np.float32)
        env = gym.wrappers.TransformObservation(
            env, lambda obs: np.ascontiguousarray(np.moveaxis(obs, -1, 0), dtype=np.float32), space)
    return env


def channel_names(env_id: str) -> list[str] | None:
    """Names of the observation's channels where they are object layers, not stacked frames: MinAtar's
    (Breakout: paddle, ball, trail, brick, from the game's own ``channels``); ``None`` for others."""
    if not is_minatar(env_id):
        return None
    if env_id not in _CHANNEL_NAMES:  # making the env imports minatar: once per id
        env = make_single_env(env_id, {})
        try:
            channels = getattr(env.unwrapped.game.env, "channels", None) or {}
            count = env.observation_space.shape[0]
        finally:
            env.close()
        by_index = {index: name for name, index in channels.items()}
        _CHANNEL_NAMES[env_id] = [by_index.get(i, f"channel {i}") for i in range(count)]
    return list(_CHANNEL_NAMES[env_id])


_CHANNEL_NAMES: dict[str, list[str]] = {}


def action_meanings(env_id: str, env: gym.Env) -> list[str]:
    """A readable name per discrete action, or per dimension of a continuous action."""
    space = env.action_space
    if is_minatar(env_id):
        letters = env.unwrapped.game.env.action_map
        return [MINATAR_ACTION_NAMES[letters[a]] for a in env.unwrapped.action_set]
    count = int(np.prod(space.shape)) if is_continuous_space(space) else int(space.n)
    return CLASSIC_ACTION_MEANINGS.get(env_id, [str(i) for i in range(count)])


class UnknownEnvError(UnknownNameError):
    """An environment id that neither gymnasium nor ALE knows (it suggests the closest ids)."""


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4")


def atari_rom_name(env_id: str) -> str:
    """``ALE/Breakout-v5`` or ``BreakoutNoFrameskip-v4`` -> ``breakout`` (ale_py ROM name)."""
    game = env_id.removeprefix("ALE/").split("-")[0].removesuffix("NoFrameskip")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


def check_env_id(env_id: str) -> None:
    """Raise ``UnknownEnvError`` naming the closest known ids when ``env_id`` does not exist."""
    if is_atari(env_id):
        from ale_py import roms

        if atari_rom_name(env_id) in roms.get_all_rom_ids():
            return
        known = [f"ALE/{r.title().replace('_', '')}-v5" for r in roms.get_all_rom_ids()]
    else:
        if is_minatar(env_id):
            register_minatar(env_id)
        if env_id in gym.registry:
            return
        known = [k for k in gym.registry if not k.startswith("ALE/")]
    raise UnknownEnvError("environment", env_id, known, note="a gymnasium or ALE environment id")


@dataclass
class StepResult:
    """One vector step. Arrays have a leading ``num_envs`` axis.

    :ivar obs: observations to act on next (a new episode's first one where an episode ended).
    :ivar reward: reward to learn from (sign-clipped on Atari).
    :ivar terminated: the transition ended an episode for the learner (no bootstrap).
    :ivar truncated: the episode was cut by a time limit (bootstrap from ``final_obs``).
    :ivar final_obs: last observation of the ended episode, valid where ``truncated``.
    :ivar learn_mask: ``False`` for transitions the agent did not choose (forced FIRE).
    :ivar finished: ``(score, length)`` of full games that ended this step, unclipped.
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    learn_mask: np.ndarray
    finished: list[tuple[float, int]] = field(default_factory=list)
    finished_env_ids: list[int] = field(default_factory=list)


class VectorEnv:
    """Common interface over a same-step-autoreset gymnasium vector env."""

    num_envs: int
    single_observation_space: gym.spaces.Box
    single_action_space: gym.spaces.Discrete
    action_meanings: list[str]

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self._score = np.zeros(num_envs, dtype=np.float64)
        self._length = np.zeros(num_envs, dtype=np.int64)

    def _track_games(self, raw_reward: np.ndarray, game_over: np.ndarray) -> tuple[list, list]:
        self._score += raw_reward
        self._length += 1
        ids = np.flatnonzero(game_over)
        finished = [(float(self._score[i]), int(self._length[i])) for i in ids]
        self._score[ids] = 0.0
        self._length[ids] = 0
        return finished, ids.tolist()

    def reset(self, seed: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def render_first(self) -> np.ndarray | None:
        """A picture of sub-environment 0 if the backend can draw one (else None)."""
        return None

    def get_state(self) -> dict | None:
        """A JSON-able snapshot from which ``set_state`` continues bit-exactly, or None if the
        backend cannot snapshot (ALE's vector env exposes no emulator state)."""
        return None

    def set_state(self, state: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot restore a snapshot")

    def step(self, actions: np.ndarray) -> StepResult:
        raise NotImplementedError

    def close(self) -> None:
        self._env.close()


class ClassicVectorEnv(VectorEnv):
    """gymnasium ``SyncVectorEnv`` in same-step autoreset mode (in-process: cheapest for toy tasks)."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict | None = None, render_first: bool = False):
        super().__init__(num_envs)
        kwargs = env_kwargs or {}

        def make(index: int):
            render = "rgb_array" if render_first and index == 0 else None
            return lambda: make_single_env(env_id, kwargs, render)

        first = make(0)()  # built once here so a missing package or bad space fails in one line
        check_spaces_supported(env_id, first.observation_space, first.action_space)
        self.action_meanings = action_meanings(env_id, first)
        self._env = gym.vector.SyncVectorEnv(
            [lambda: first] + [make(i) for i in range(1, num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        # Only classic-control physics lives in plain attributes a snapshot can hold (Box2D worlds
        # and MinAtar's game objects do not): other envs resume with fresh episodes.
        self._can_snapshot = type(first.unwrapped).__module__.startswith("gymnasium.envs.classic_control")
        self._render_first = render_first
        if render_first:  # pygame draws off-screen; no display or audio device is needed
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        self.single_observation_space = self._env.single_observation_space
        self.single_action_space = self._env.single_action_space
        if is_continuous_space(self.single_action_space):  # the policy's unclipped sample -> the bounds
            self._action_low, self._action_high = self.single_action_space.low, self.single_action_space.high

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self._env.reset(seed=seed)
        return obs

    def render_first(self) -> np.ndarray | None:
        """RGB frame of sub-environment 0 (when built with ``render_first``)."""
        if not self._render_first:
            return None
        try:
            return self._env.envs[0].render()
        except gym.error.DependencyNotInstalled:  # pygame missing: callers fall back to a chart
            self._render_first = False
            return None

    def get_state(self) -> dict | None:
        """Physics variables, time-limit counter and RNG of every sub-environment, and the game
        trackers (None outside classic control, see ``__init__``)."""
        if not self._can_snapshot:
            return None
        subs = []
        for env in self._env.envs:
            core = env.unwrapped
            variables = {k: _to_json(v) for k, v in vars(core).items()  # np.generic: Pendulum's last_u
                         if not k.startswith("_")
                         and isinstance(v, (np.ndarray, np.generic, float, int, bool, type(None)))}
            subs.append({"variables": variables, "rng": core.np_random.bit_generator.state,
                         "elapsed_steps": _time_limit(env)._elapsed_steps})
        return {"envs": subs, "score": self._score.tolist(), "length": self._length.tolist()}

    def set_state(self, state: dict) -> None:
        if len(state["envs"]) != self.num_envs:
            raise ValueError(f"snapshot has {len(state['envs'])} environments, this vector env {self.num_envs}")
        for env, sub in zip(self._env.envs, state["envs"]):
            core = env.unwrapped
            for key, value in sub["variables"].items():
                setattr(core, key, _from_json(value))
            core.np_random.bit_generator.state = sub["rng"]
            _time_limit(env)._elapsed_steps = sub["elapsed_steps"]
        self._score = np.asarray(state["score"], dtype=np.float64)
        self._length = np.asarray(state["length"], dtype=np.int64)

    def step(self, actions: np.ndarray) -> StepResult:
        if is_continuous_space(self.single_action_space):
            actions = np.clip(np.asarray(actions, dtype=np.float32), self._action_low, self._action_high)
        obs, reward, terminated, truncated, info = self._env.step(actions)
        final_obs = obs.copy()
        if "_final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final_obs[i] = info["final_obs"][i]
        finished, ids = self._track_games(reward, terminated | truncated)
        return StepResult(
            obs=obs,
            reward=reward.astype(np.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=final_obs,
            learn_mask=np.ones(self.num_envs, dtype=bool),
            finished=finished,
            finished_env_ids=ids,
        )


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit:
    while not isinstance(env, gym.wrappers.TimeLimit):
        env = env.env
    return env


def _to_json(value):
    if isinstance(value, (np.ndarray, np.generic)):  # a numpy scalar is a 0-d array here, its dtype kept
        return {"ndarray": np.asarray(value).tolist(), "dtype": str(value.dtype)}
    return value


def _from_json(value):
    if isinstance(value, dict) and "ndarray" in value:
        array = np.asarray(value["ndarray"], dtype=value["dtype"])
        return array[()] if array.ndim == 0 else array  # back to a numpy scalar
    return value


class AtariEnv(VectorEnv):
    """ale_py ``AtariVectorEnv``; see the module docstring for life-loss handling.

    :param for_training: sign-clip rewards and end the learner's episode at each lost life.
    """

    FIRE = 1

    def __init__(self, env_id: str, num_envs: int, for_training: bool, settings: dict, num_threads: int = 0):
        from ale_py.vector_env import AtariVectorEnv

        super().__init__(num_envs)
        self.for_training = for_training
        self.fire_after_life_loss = settings["fire_after_life_loss"]
        self._env = AtariVectorEnv(
            atari_rom_name(env_id),
            num_envs,
            num_threads=num_threads,
            frameskip=settings["frameskip"],
            stack_num=settings["stack_num"],
            img_height=settings["img_height"],
            img_width=settings["img_width"],
            noop_max=settings["noop_max"],
            repeat_action_probability=settings["repeat_action_probability"],
            max_num_frames_per_episode=settings["max_num_frames_per_episode"],
            episodic_life=False,
            life_loss_info=True,
            reward_clipping=False,
            use_fire_reset=True,
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        self.single_observation_space = self._env.single_observation_space
        self.single_action_space = self._env.single_action_space
        self.action_meanings = [a.name for a in self._env.ale.get_action_set()]
        self._has_fire = len(self.action_meanings) > self.FIRE and self.action_meanings[self.FIRE] == "FIRE"
        self._lives = np.zeros(num_envs, dtype=np.int64)
        self._fire_next = np.zeros(num_envs, dtype=bool)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, info = self._env.reset(seed=seed)
        self._lives = info["lives"].astype(np.int64)
        self._fire_next[:] = False
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64).copy()
        forced = self._fire_next & self._has_fire & self.fire_after_life_loss
        actions[forced] = self.FIRE
        obs, raw_reward, life_lost, truncated, info = self._env.step(actions)
        lives = info["lives"].astype(np.int64)
        # A game is over when a terminal does not lower the life counter: same-step autoreset
        # has already restored full lives (or the game has no lives at all).
        game_over = (life_lost & (lives >= self._lives)) | truncated
        self._fire_next = life_lost & ~game_over
        self._lives = lives
        finished, ids = self._track_games(raw_reward.astype(np.float64), game_over)
        terminated = life_lost if self.for_training else (life_lost & game_over)
        reward = np.sign(raw_reward) if self.for_training else raw_reward
        final_obs = info["final_obs"] if "final_obs" in info else obs
        return StepResult(
            obs=obs,
            reward=reward.astype(np.float32),
            terminated=terminated & ~truncated,
            truncated=truncated,
            final_obs=final_obs,
            learn_mask=~forced,
            finished=finished,
            finished_env_ids=ids,
        )


def default_env_settings(env_id: str) -> dict[str, Any]:
    """Settings recorded in a model's meta.json so evaluation rebuilds the training env."""
    if is_minatar(env_id):
        return dict(MINATAR_DEFAULTS)
    return dict(ATARI_DEFAULTS) if is_atari(env_id) else {}


def make_vector_env(
    env_id: str,
    num_envs: int,
    *,
    for_training: bool = True,
    settings: dict | None = None,
    num_threads: int = 0,
    render_first: bool = False,
) -> VectorEnv:
    """Build the vector env for ``env_id`` (raises ``UnknownEnvError`` for unknown ids).

    :param for_training: Atari only: clip rewards and treat a lost life as terminal for learning.
    :param settings: overrides of ``default_env_settings(env_id)``.
    :param num_threads: Atari only: emulator threads (0 = one per core).
    :param render_first: classic only: sub-environment 0 renders RGB frames (for videos).
    """
    check_env_id(env_id)
    merged = {**default_env_settings(env_id), **(settings or {})}
    if is_atari(env_id):
        return AtariEnv(env_id, num_envs, for_training, merged, num_threads=num_threads)
    return ClassicVectorEnv(env_id, num_envs, merged, render_first=render_first)
