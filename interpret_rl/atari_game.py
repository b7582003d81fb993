"""One ALE game with exactly the preprocessing of ale_py's ``AtariVectorEnv``, plus what the vector
env hides: the RAM and the emulator state.

The agents train and are explained on ``AtariVectorEnv`` (C++, see ``envs.py``), which exposes no RAM.
Ground truth about objects needs the RAM, so observations are collected here with a pure-Python
copy of its preprocessing (ale-py 0.12.1, ``src/ale/vector/preprocessed_env.cpp``), checked in
tests/test_atari_game.py to give bit-identical observations for the same action sequence:

* reset: ``reset_game``, one frame of FIRE (games that have it), then ``noops - 1`` single frames of
  NOOP (``noops`` drawn from 0..noop_max-1); the stack is zeroed and the first frame pushed;
* step: the action repeated for ``frameskip`` frames; the screens (grayscale palette) of the last two
  frames are max-pooled, resized to 84x84 with ``cv2.INTER_AREA`` and pushed as the newest frame;
* after a lost life the next step is forced to FIRE (as ``envs.AtariEnv`` does).

Beside each pooled frame the RAM of both pooled raw frames is kept, so object boxes can cover
where an object was drawn in either of them (a moving ball shows twice after max-pooling).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from interpret_rl.envs import ATARI_DEFAULTS, atari_rom_name

RAM_SIZE = 128
FIRE = 1  # index of FIRE in the minimal action set of the games that have it (as envs.AtariEnv)


@dataclass
class StepInfo:
    """What one preprocessed step did: raw (unclipped) reward, lives after it, whether the game is
    over, whether a life was lost, and the action index actually sent (FIRE when forced)."""

    reward: float
    lives: int
    game_over: bool
    life_lost: bool
    action: int


class AtariGame:
    """A single ALE emulator stepping like one sub-environment of ``AtariVectorEnv``.

    :param env_id: ``ALE/Breakout-v5`` or ``BreakoutNoFrameskip-v4``.
    :param settings: the agent's env settings (``envs.ATARI_DEFAULTS`` keys); missing keys default.
    :param seed: seeds ALE and the no-op draw.
    """

    def __init__(self, env_id: str, settings: dict | None = None, seed: int = 0):
        import ale_py

        merged = {**ATARI_DEFAULTS, **(settings or {})}
        self.frameskip = int(merged["frameskip"])
        self.stack_num = int(merged["stack_num"])
        self.size = (int(merged["img_height"]), int(merged["img_width"]))
        self.noop_max = int(merged["noop_max"])
        self.max_frames = int(merged["max_num_frames_per_episode"])
        self.fire_after_life_loss = bool(merged["fire_after_life_loss"])
        self.rng = np.random.default_rng(seed)
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # before construction: no banner on stderr
        self.ale = ale_py.ALEInterface()
        self.ale.setFloat("repeat_action_probability", float(merged["repeat_action_probability"]))
        self.ale.setInt("random_seed", int(seed))
        self.ale.loadROM(ale_py.roms.get_rom_path(atari_rom_name(env_id)))
        self.actions = list(self.ale.getMinimalActionSet())
        self.action_meanings = [a.name for a in self.actions]
        self.has_fire = len(self.actions) > FIRE and self.action_meanings[FIRE] == "FIRE"
        self.raw_shape = tuple(self.ale.getScreenDims())
        self._frames: deque[np.ndarray] = deque(maxlen=self.stack_num)
        self._rams: deque[np.ndarray] = deque(maxlen=self.stack_num)
        self._fire_next = False
        self.elapsed_frames = 0
        self.lives = 0

    # -- preprocessing -------------------------------------------------------------------------
    def _push(self, pooled: np.ndarray, rams: np.ndarray) -> None:
        import cv2

        height, width = self.size
        self._frames.append(cv2.resize(pooled, (width, height), interpolation=cv2.INTER_AREA))
        self._rams.append(rams)

    def observation(self) -> np.ndarray:
        """The stacked observation ``(stack_num, H, W)`` uint8, newest frame last (zeros before the first)."""
        missing = self.stack_num - len(self._frames)
        frames = [np.zeros(self.size, np.uint8)] * missing + list(self._frames)
        return np.stack(frames)

    def stacked_ram(self) -> tuple[np.ndarray, np.ndarray]:
        """RAM of both pooled raw frames per stacked frame ``(stack_num, 2, 128)`` uint8 (older raw
        frame first) and which stacked frames exist ``(stack_num,)`` bool (False: zero padding)."""
        missing = self.stack_num - len(self._rams)
        rams = [np.zeros((2, RAM_SIZE), np.uint8)] * missing + list(self._rams)
        return np.stack(rams), np.arange(self.stack_num) >= missing

    def reset(self, noops: int | None = None) -> np.ndarray:
        """Start a game; ``noops`` (default: drawn from 0..noop_max-1) as the vector env counts them."""
        if noops is None:
            noops = int(self.rng.integers(0, max(self.noop_max, 1)))
        self.ale.reset_game()
        if self.has_fire:
            self.ale.act(self.actions[FIRE])
        for _ in range(noops - int(self.has_fire)):
            self.ale.act(self.actions[0])
            if self.ale.game_over():
                self.ale.reset_game()
        self._frames.clear()
        self._rams.clear()
        ram = self.ale.getRAM().copy()
        self._push(self.ale.getScreenGrayscale(), np.stack([ram, ram]))
        self.elapsed_frames = 0
        self.lives = self.ale.lives()
        self._fire_next = False
        return self.observation()

    def step(self, action: int, before_frame=None, frame_rams: list | None = None) -> StepInfo:
        """One agent step (``frameskip`` emulator frames); FIRE replaces ``action`` after a lost life.

        :param before_frame: optional ``f(ale, ale_action)`` called before every emulator frame
            (an intervention writes RAM there).
        :param frame_rams: when given, the RAM after every frame is appended to it.
        """
        if not 0 <= action < len(self.actions):
            raise ValueError(f"action {action} out of range 0..{len(self.actions) - 1}")
        if self._fire_next and self.has_fire and self.fire_after_life_loss:
            action = FIRE
        screens = [np.zeros(self.raw_shape, np.uint8), np.zeros(self.raw_shape, np.uint8)]
        rams = [np.zeros(RAM_SIZE, np.uint8), np.zeros(RAM_SIZE, np.uint8)]
        reward, game_over = 0.0, False
        for skip in range(self.frameskip, 0, -1):
            if before_frame is not None:
                before_frame(self.ale, self.actions[action])
            reward += self.ale.act(self.actions[action])
            if frame_rams is not None:
                frame_rams.append(self.ale.getRAM().copy())
            game_over = self.ale.game_over()
            self.elapsed_frames += 1
            if game_over or self.elapsed_frames >= self.max_frames:
                break
            if skip <= 2:  # the last two frames are max-pooled
                screens[2 - skip] = self.ale.getScreenGrayscale()
                rams[2 - skip] = self.ale.getRAM().copy()
        lives = self.ale.lives()
        life_lost = 0 < lives < self.lives
        self._push(np.maximum(screens[0], screens[1]), np.stack(rams))
        self.lives = lives
        self._fire_next = life_lost
        over = game_over or self.elapsed_frames >= self.max_frames
        return StepInfo(reward=float(reward), lives=lives, game_over=over, life_lost=life_lost, action=action)

    # -- emulator state ------------------------------------------------------------------------
    def save_state(self) -> np.ndarray:
        """The emulator and the preprocessing state as one uint8 array (ALE's own serialisation, no
        pickle): ``restore_state`` continues from it bit-exactly."""
        ale_bytes = np.frombuffer(self.ale.cloneState().serialize(), dtype=np.uint8)
        header = np.array([self.lives, int(self._fire_next)], dtype=np.int64).view(np.uint8)
        return np.concatenate([header, ale_bytes])

    def restore_state(self, state: np.ndarray) -> None:
        """Continue from ``save_state``'s array; the frame stack is left as it is."""
        import ale_py

        state = np.asarray(state, dtype=np.uint8)
        self.lives, fire_next = (int(v) for v in state[:16].view(np.int64))
        self._fire_next = bool(fire_next)
        self.ale.restoreState(ale_py.ALEState(state[16:].tobytes()))

    def replay(self, state: np.ndarray, actions, before_frame=None, frame_rams: list | None = None) -> np.ndarray:
        """Restore ``state``, then play ``actions`` (one per stacked frame) into a fresh stack.

        :param before_frame: optional ``f(ale, ale_action)`` called before every emulator frame.
        :param frame_rams: when given, the RAM after every emulator frame is appended to it.
        :returns: the observation the steps make ``(stack_num, H, W)``; with as many actions as
            stacked frames it holds no zero padding.
        """
        self.restore_state(state)
        self._frames.clear()
        self._rams.clear()
        for action in actions:
            self.step(int(action), before_frame=before_frame, frame_rams=frame_rams)
        return self.observation()

    def render_rgb(self) -> np.ndarray:
        """The current raw frame ``(210, 160, 3)`` uint8."""
        return self.ale.getScreenRGB()
