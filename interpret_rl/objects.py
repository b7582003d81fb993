"""Game knowledge: where the objects are in each observation, and how to move them.

Ground truth comes from the emulator, never from the pixels: while observations are collected in an
ALE game (``observations.collect_game``) the RAM behind every stacked frame is kept, and an
``ObjectDetector`` registered for the game turns RAM into boxes in raw frame pixels (210x160). This
module maps the boxes into observation pixels through the preprocessing's own resize, and replays
the saved emulator state with an ``Intervention`` writing RAM (the ball moved, a brick row removed)
to see how the agent's outputs change when one object changes.

Plugins add games through the hook ``register_object_detectors(register)``: ``register(key,
DetectorClass)`` where ``key`` is an env id (``ALE/Breakout-v5``) or an ALE game name
(``breakout``, matching every env id of that ROM). Breakout is built in (plugins/breakout_objects.py).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import ClassVar

from interpret_rl.lazy import lazy_module
from interpret_rl.names import Registry

np = lazy_module("numpy")

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1) in raw frame pixels, end exclusive


class Intervention:
    """A change to one object, applied by writing RAM before every emulator frame of a replay.

    :ivar obj: the object (a detector mask name) the change is about.
    :ivar description: what it does, in words (for results.json).
    """

    obj: str
    description: str

    def before_frame(self, ale, frame: int, action, clean_ram: np.ndarray) -> None:
        """Called before emulator frame ``frame`` (0-based over the replay) with the ALE action about
        to be played and ``clean_ram``: the RAM after this frame in the replay without intervention."""
        raise NotImplementedError


class ObjectDetector:
    """Turns one game's RAM into object boxes and interventions (subclass per game).

    :cvar objects: names of the object masks, the headline ones (shown by default) listed in
        ``main_objects``; e.g. ``ball``, ``paddle``, ``bricks``, ``bricks row 1``, ``hud``.
    :cvar pointing_objects: the small objects the pointing game asks about.
    """

    objects: ClassVar[tuple[str, ...]]
    main_objects: ClassVar[tuple[str, ...]]
    pointing_objects: ClassVar[tuple[str, ...]] = ()

    def boxes(self, ram: np.ndarray) -> dict[str, list[Box]]:
        """RAM ``(128,)`` uint8 of one raw frame -> boxes per object name (empty list: not on screen)."""
        raise NotImplementedError

    def interventions(self, ram: np.ndarray) -> list[Intervention]:
        """The interventions that make sense for the state whose RAM is ``ram`` (e.g. none on the
        ball while it is off screen)."""
        return []

    def describe(self, ram: np.ndarray) -> dict:
        """A few JSON-able facts about the game state (lives, score, bricks left) for reports."""
        return {}


DETECTORS = Registry("object detector", "register_object_detectors", keyed=True)
registered_detectors = DETECTORS.all  # key (env id or ALE game name) -> detector class


def detector_for(env_id: str) -> ObjectDetector | None:
    """The detector registered for ``env_id`` (exact id first, then its ALE game name), or None."""
    from interpret_rl.envs import atari_rom_name, is_atari

    detectors = registered_detectors()
    if env_id in detectors:
        return detectors[env_id]()
    if is_atari(env_id) and atari_rom_name(env_id) in detectors:
        return detectors[atari_rom_name(env_id)]()
    return None


def box_to_mask(box: Box, raw_shape: tuple[int, int], obs_shape: tuple[int, int]) -> np.ndarray:
    """The observation pixels whose source area (``cv2.INTER_AREA`` averages over it) overlaps ``box``.

    A raw frame ``raw_shape`` resized to ``obs_shape``: observation row i averages raw rows
    [i * sy, (i + 1) * sy) with sy = raw_h / obs_h; same for columns. Any overlap counts, so a
    2-pixel ball still owns the observation pixels it brightens.
    """
    (raw_h, raw_w), (obs_h, obs_w) = raw_shape, obs_shape
    y0, x0, y1, x1 = (max(0, box[0]), max(0, box[1]), min(raw_h, box[2]), min(raw_w, box[3]))
    mask = np.zeros(obs_shape, dtype=bool)
    if y1 <= y0 or x1 <= x0:
        return mask
    sy, sx = raw_h / obs_h, raw_w / obs_w
    rows = slice(int(np.floor(y0 / sy)), int(np.ceil(y1 / sy)))
    cols = slice(int(np.floor(x0 / sx)), int(np.ceil(x1 / sx)))
    mask[rows, cols] = True
    return mask


@dataclass
class GroundTruth:
    """What the emulator knew about each observation, saved beside it in the ``.npz``.

    :ivar env_id: the game.
    :ivar settings: the env settings the observations were made with (for replays).
    :ivar ram: ``(N, F, 2, 128)`` uint8: per stacked frame, the RAM after both max-pooled raw frames.
    :ivar frame_valid: ``(N, F)`` bool: False for the zero frames padding a stack after a reset.
    :ivar states: ``(N, L)`` uint8 or None: emulator state before the step of the oldest stacked
        frame (``AtariGame.save_state``), from which ``stack_actions`` replay the observation.
    :ivar stack_actions: ``(N, F)`` int64 or None: the actions that made the F stacked frames.
    :ivar facts: per observation, JSON-able facts (step, game, lives, score, bricks left).
    """

    env_id: str
    settings: dict
    ram: np.ndarray
    frame_valid: np.ndarray
    states: np.ndarray | None = None
    stack_actions: np.ndarray | None = None
    facts: list[dict] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ram)

    def detector(self) -> ObjectDetector | None:
        if "detector" not in self._cache:
            self._cache["detector"] = detector_for(self.env_id)
        return self._cache["detector"]

    def masks(self, obs_shape: tuple[int, int] = (84, 84), raw_shape: tuple[int, int] = (210, 160)
              ) -> dict[str, np.ndarray]:
        """Per object name, ``(N, F, H, W)`` bool: the pixels of each stacked frame it covers (its boxes
        at both pooled raw frames). ``KeyError``-free: an object absent from a frame has an empty mask."""
        key = ("masks", tuple(obs_shape), tuple(raw_shape))
        if key in self._cache:
            return self._cache[key]
        detector = self.detector()
        if detector is None:
            raise LookupError(no_detector_message(self.env_id))
        n, f = self.frame_valid.shape
        masks = {name: np.zeros((n, f, *obs_shape), dtype=bool) for name in detector.objects}
        for i in range(n):
            for j in range(f):
                if not self.frame_valid[i, j]:
                    continue
                for ram in self.ram[i, j]:
                    for name, boxes in detector.boxes(ram).items():
                        for box in boxes:
                            masks[name][i, j] |= box_to_mask(box, raw_shape, obs_shape)
        self._cache[key] = masks
        return masks

    def lacks(self, needs) -> str | None:
        """Why this ground truth cannot serve a metric needing ``needs`` (``objects``: object masks;
        ``emulator``: saved emulator states to replay), or None when it can."""
        if self.detector() is None:
            return no_detector_message(self.env_id)
        if "emulator" in needs and self.states is None:
            return "the observations were saved without emulator states, so nothing can be replayed"
        return None

    def interventions(self) -> list[list[dict]]:
        """Per observation, every intervention the detector offers for its state, replayed:
        ``{"intervention": Intervention, "observation": (F, H, W) uint8, "changed_pixels": int,
        "ram": (F, 2, 128) uint8}`` (the RAM behind the changed frames, to see where objects went).
        Cached: every method and target is scored on the same intervened observations."""
        if "interventions" in self._cache:
            return self._cache["interventions"]
        from interpret_rl.atari_game import AtariGame

        detector = self.detector()
        if detector is None or self.states is None:
            raise LookupError(self.lacks({"objects", "emulator"}))
        game = AtariGame(self.env_id, self.settings)
        found = []
        for state, actions in zip(self.states, self.stack_actions):
            clean_rams: list[np.ndarray] = []
            clean = game.replay(state, actions, frame_rams=clean_rams)
            game.restore_state(state)
            changes = []
            for intervention in detector.interventions(game.ale.getRAM()):
                frame = itertools.count()

                def before_frame(ale, action, intervention=intervention, frame=frame, clean_rams=clean_rams):
                    index = next(frame)  # a changed game may outlast a clean one that ended: hold its last RAM
                    intervention.before_frame(ale, index, action, clean_rams[min(index, len(clean_rams) - 1)])

                changed = game.replay(state, actions, before_frame=before_frame)
                changes.append({"intervention": intervention, "observation": changed,
                                "changed_pixels": int((changed != clean).sum()), "ram": game.stacked_ram()[0]})
            found.append(changes)
        self._cache["interventions"] = found
        return found


def no_detector_message(env_id: str) -> str:
    return (f"no object detector for {env_id} (registered: {', '.join(registered_detectors()) or 'none'}); "
            "a plugin adds one through the register_object_detectors hook")


# -- saving beside the observations (npz, no pickle) ------------------------------------------------
NPZ_PREFIX = "ground_truth_"
MAX_STATE_BYTES = 1 << 16  # an ALE state is about 8 KB; anything far larger is not one


def ground_truth_arrays(truth: GroundTruth) -> dict[str, np.ndarray]:
    """The npz arrays for ``truth`` (names start with ``ground_truth_``)."""
    arrays = {"env_id": np.array(truth.env_id), "settings": np.array(json.dumps(truth.settings)),
              "ram": truth.ram.astype(np.uint8), "frame_valid": truth.frame_valid.astype(bool),
              "facts": np.array(json.dumps(truth.facts))}
    if truth.states is not None:
        arrays["states"] = truth.states.astype(np.uint8)
        arrays["stack_actions"] = truth.stack_actions.astype(np.int64)
    return {NPZ_PREFIX + k: v for k, v in arrays.items()}


def ground_truth_from_arrays(data, count: int, where: str) -> GroundTruth | None:
    """Rebuild ``GroundTruth`` from an open npz (``None`` when it holds none); ``ValueError`` naming
    the field when a field has the wrong shape or type, so a damaged file is refused, not guessed."""
    names = set(data.files)
    if NPZ_PREFIX + "ram" not in names:
        return None

    def get(name, dtype_kind, shape_check, what):
        key = NPZ_PREFIX + name
        if key not in names:
            raise ValueError(f"{where}: ground truth without {key!r}")
        array = data[key]
        if array.dtype.kind not in dtype_kind or not shape_check(array.shape):
            raise ValueError(f"{where}: {key} must be {what}, got {array.dtype} {array.shape}")
        return array

    ram = get("ram", "u", lambda s: len(s) == 4 and s[0] == count and s[2] == 2 and s[3] == 128,
              f"uint8 ({count}, F, 2, 128)")
    valid = get("frame_valid", "b", lambda s: s == ram.shape[:2], f"bool {ram.shape[:2]}")
    env_id = str(get("env_id", "U", lambda s: s == (), "a string"))
    try:
        settings = json.loads(str(get("settings", "U", lambda s: s == (), "a JSON string")))
        facts = json.loads(str(get("facts", "U", lambda s: s == (), "a JSON string")))
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: ground truth settings or facts are not JSON ({err})") from None
    if not isinstance(settings, dict) or not isinstance(facts, list):
        raise ValueError(f"{where}: ground truth settings must be a JSON object and facts a list")
    states = actions = None
    if NPZ_PREFIX + "states" in names:
        states = get("states", "u", lambda s: len(s) == 2 and s[0] == count and 16 < s[1] <= MAX_STATE_BYTES,
                     f"uint8 ({count}, L) with L <= {MAX_STATE_BYTES}")
        actions = get("stack_actions", "i", lambda s: s == ram.shape[:2], f"int {ram.shape[:2]}")
    return GroundTruth(env_id, settings, ram, valid, states, actions, facts)
