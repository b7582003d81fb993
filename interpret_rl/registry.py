"""The model registry: trained agents saved safely, listed, and loaded by name.

A model is a folder holding ``model.safetensors`` (weights only) and ``meta.json`` (strings and
numbers only: env id and settings, spaces, architecture and its arguments, steps trained, seed,
scores, library versions, sha256 of every file). Nothing is ever unpickled. Bundled models ship
inside the package (``interpret_rl/bundled``); user models live in ``$INTERPRET_RL_HOME/models``
(default ``~/.interpret-rl/models``). A save is one commit (see ``atomic.commit_files``): the new
files are written complete under pending names, meta.json is replaced atomically, then the files
take their names; a crash or a full disk at any instant leaves the folder loadable as the previous
checkpoint or the new one. Folders written before this scheme (bundled ones) load unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interpret_rl.atomic import (
    BusyError,
    UnsafeFileError,
    atomic_write_bytes,
    atomic_write_text,
    commit_files,
    exclusive_lock,
    pending_path,
    read_regular_file,
    settle,
    sha256_bytes,
    sha256_file,
)
from interpret_rl.errors import first_line
from interpret_rl.lazy import lazy_module
from interpret_rl.names import UnknownNameError

if TYPE_CHECKING:
    from interpret_rl.agent import Agent

torch = lazy_module("torch")  # listing models (`interpret-rl models`) needs no torch

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
META = "meta.json"
BUNDLED_DIR = Path(__file__).parent / "bundled"
SNAPSHOT_NAME = "step_{step:012d}.safetensors"  # weight snapshots kept under checkpoints/
SNAPSHOT_PATTERN = re.compile(r"step_(\d+)\.safetensors")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Files a save writes; their leftover temporary files are removed by the next save.
MANAGED_FILES = (WEIGHTS, OPTIMIZER, META, "step_", "training_curve.png")
WRITER_LOCK = ".writer.lock"
# Read limits, checked before a byte is read: the largest bundled file is a few MB.
MAX_META_BYTES = 16 << 20
MAX_TENSOR_FILE_BYTES = 2 << 30

# meta.json keys a loader relies on, with their JSON types.
REQUIRED_META: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "env_id": str,
    "env_settings": dict,
    "architecture": str,
    "architecture_args": dict,
    "observation_space": dict,
    "action_space": dict,
    "action_meanings": list,
    "steps_trained": int,
    "files": dict,
}


class ModelNotFoundError(UnknownNameError):
    """No registered model has this name (it suggests the closest names), or no model is at this path."""


class InvalidNameError(ValueError):
    """A model name that could escape the registry folder or is otherwise unusable."""


class ModelLoadError(ValueError):
    """A model folder that cannot be trusted or used; the message names the path and the reason."""


class SpaceMismatchError(ModelLoadError):
    """The checkpoint's observation or action space does not match the environment."""


class HashMismatchError(ModelLoadError):
    """A file whose sha256 differs from meta.json's record (changed, corrupt, or just replaced)."""


class ReadOnlyModelError(ModelLoadError):
    """A write aimed at a bundled model (part of the installed package)."""


class ModelBusyError(ModelLoadError):
    """Another process is writing this model (training, resuming, saving an evaluation)."""


def home() -> Path:
    text = os.environ.get("INTERPRET_RL_HOME")
    if text is not None and not text.strip():  # "" would silently mean the working directory
        raise ModelLoadError("INTERPRET_RL_HOME is set but empty; unset it (default ~/.interpret-rl) or name a folder")
    return Path(text or Path.home() / ".interpret-rl").expanduser()


def user_models_dir() -> Path:
    return home() / "models"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):  # fullmatch: "$" allows a final newline
        raise InvalidNameError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (max 64)")
    return name


@dataclass
class ModelInfo:
    name: str
    path: Path
    bundled: bool
    meta: dict

    @property
    def score(self) -> dict | None:
        return self.meta.get("evaluation")


def is_bundled(path: str | os.PathLike) -> bool:
    """Whether ``path`` is (or lies inside) a bundled model, however it is spelled: through a
    symlink, ``./cartpole-a2c`` from inside the package, ``..`` components."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(BUNDLED_DIR))


def refuse_bundled(path: str | os.PathLike) -> None:
    if is_bundled(path):
        raise ReadOnlyModelError(f"{path} is a bundled model, part of the installed package, and is never "
                                 f"written; export or train your own copy")


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike):
    """Be the only process writing the model folder ``path`` for the block (train, resume,
    ``evaluate --save``): a second writer gets ``ModelBusyError`` at once, before doing any work.
    The lock file is ``.writer.lock`` inside the folder (created with it): nothing is left beside a
    model given as a path. No code removes a model folder while it is locked."""
    path = Path(path)
    refuse_bundled(path)
    try:
        with exclusive_lock(path / WRITER_LOCK, f"model {path.name!r} ({path})"):
            yield path
    except BusyError as err:
        raise ModelBusyError(str(err)) from None


def _model_dirs() -> list[tuple[Path, bool]]:
    found = []
    for root, bundled in ((BUNDLED_DIR, True), (user_models_dir(), False)):
        try:
            found += [(p, bundled) for p in sorted(root.iterdir()) if (p / META).is_file()]
        except OSError:  # no such folder, or one we may not read: no models there
            pass
    return found


def _check_listing_fields(meta: dict) -> None:
    """The optional fields a listing shows must have the shape it expects."""
    evaluation = meta.get("evaluation")
    if evaluation is not None and not (isinstance(evaluation, dict) and all(
            isinstance(evaluation.get(k), (int, float)) and not isinstance(evaluation.get(k), bool)
            for k in ("mean", "std"))):
        raise ModelLoadError("meta.json field 'evaluation' must be an object with numbers 'mean' and 'std'")


def scan_models() -> tuple[list[ModelInfo], list[tuple[str, Path, str]]]:
    """(models, broken): every registered model whose meta.json reads (bundled first, then the
    user's), and (name, path, reason in one line) for each folder that does not."""
    models, broken = [], []
    for path, bundled in _model_dirs():
        try:
            meta = read_meta(path)
            _check_listing_fields(meta)
        except ModelLoadError as err:
            broken.append((path.name, path, str(err).removeprefix(f"{path / META}: ")))
            continue
        models.append(ModelInfo(name=path.name, path=path, bundled=bundled, meta=meta))
    return models, broken


def list_models() -> list[ModelInfo]:
    """Bundled models first, then the user's; broken folders are left out (see ``scan_models``)."""
    return scan_models()[0]


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A registered name (user models shadow bundled ones) or a folder path -> model folder."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if os.sep in text or text.startswith("."):
        if (candidate / META).is_file():
            return candidate
        raise ModelNotFoundError("model folder", text, [], note=f"a model folder holds {META} and {WEIGHTS}")
    for root in (user_models_dir(), BUNDLED_DIR):
        if (root / text / META).is_file():
            return root / text
    raise ModelNotFoundError("model", text, sorted({p.name for p, _ in _model_dirs()}))


def read_meta(path: str | os.PathLike) -> dict:
    """meta.json of a model folder, with its keys and types checked."""
    meta_path = Path(path) / META
    try:
        meta = json.loads(read_regular_file(meta_path, MAX_META_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, UnsafeFileError) as err:
        raise ModelLoadError(f"{meta_path}: unreadable meta.json ({err})") from None
    except RecursionError:
        raise ModelLoadError(f"{meta_path}: unreadable meta.json (nested too deeply)") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(f"{meta_path}: meta.json must hold an object, not {type(meta).__name__}")
    for key, kind in REQUIRED_META.items():
        if key not in meta:
            raise ModelLoadError(f"{meta_path}: meta.json lacks {key!r}")
        if not isinstance(meta[key], kind) or (kind is int and isinstance(meta[key], bool)):
            raise ModelLoadError(f"{meta_path}: meta.json field {key!r} must be {kind.__name__}, "
                                 f"not {type(meta[key]).__name__}")
    if meta["format_version"] > FORMAT_VERSION:
        raise ModelLoadError(f"{meta_path}: format_version {meta['format_version']} is newer than this "
                             f"interpret-rl understands ({FORMAT_VERSION}); upgrade interpret-rl")
    from interpret_rl.architectures import current_args

    meta["architecture_args"] = current_args(meta["architecture_args"])  # older models: obs_dim, in_channels
    return meta


def _read_verified(path: Path, filename: str, meta: dict) -> bytes:
    file_path = path / filename
    expected = meta["files"].get(filename)
    if not isinstance(expected, str):
        raise ModelLoadError(f"{file_path}: meta.json records no sha256 for {filename}")
    # The committed pending file (see atomic.commit_files), then the file again in case a writer
    # has just moved the pending file to its name.
    for candidate in (file_path, pending_path(path, filename, expected), file_path):
        try:
            data = read_regular_file(candidate, MAX_TENSOR_FILE_BYTES)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise ModelLoadError(f"{candidate}: cannot read ({err.strerror})") from None
        except UnsafeFileError as err:
            raise ModelLoadError(str(err)) from None
        if sha256_bytes(data) == expected:
            return data
    if not file_path.exists():
        raise ModelLoadError(f"{file_path}: cannot read (No such file or directory)")
    raise HashMismatchError(f"{file_path}: sha256 does not match meta.json (file changed or corrupt)")


def _read_committed(path: Path, filename: str, meta: dict) -> tuple[dict, bytes]:
    """(meta, file bytes) of one commit. A writer that commits between our reading meta.json and
    the file (a training run checkpointing while we load) replaced what meta.json described: then
    meta.json is read again; an unchanged meta.json means the file itself is bad."""
    for _ in range(3):
        try:
            return meta, _read_verified(path, filename, meta)
        except HashMismatchError:
            fresh = read_meta(path)
            if fresh == meta:
                raise
            meta = fresh
    return meta, _read_verified(path, filename, meta)


def _load_tensors(file_path: Path, data: bytes) -> dict[str, torch.Tensor]:
    if not data:
        raise ModelLoadError(f"{file_path}: empty file, not safetensors")
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors_bytes

    try:
        return load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ModelLoadError(f"{file_path}: not a valid safetensors file ({reason})") from None


def check_spaces(meta: dict, observation_space: dict, action_space: dict, where: str = "") -> None:
    """Refuse a checkpoint whose spaces differ from the environment's, before any weights load."""
    for label, recorded, actual in (("observation", meta["observation_space"], observation_space),
                                    ("action", meta["action_space"], action_space)):
        if label == "observation":
            keys = ("type", "shape", "dtype")
        else:  # a Discrete space is its count of actions, a Box (continuous actions) its shape
            keys = ("type", "n") if recorded.get("type") == "Discrete" else ("type", "shape")
        want = {k: recorded.get(k) for k in keys}
        got = {k: actual.get(k) for k in keys}
        if want != got:
            raise SpaceMismatchError(f"{where}: {label} space of the checkpoint {want} does not match "
                                     f"the environment's {got}")


def check_env_matches(meta: dict, where: str = "") -> None:
    """Build the model's environment once and refuse the model if its spaces differ from the
    recorded ones (e.g. meta.json edited to another game), before any weights are read."""
    from interpret_rl.agent import space_to_dict
    from interpret_rl.envs import UnknownEnvError, make_vector_env

    settings = meta["env_settings"]
    if "render_mode" in settings:  # rendering is the library's choice ("human" would open windows)
        raise ModelLoadError(f"{where}: env_settings may not set render_mode")
    try:
        envs = make_vector_env(meta["env_id"], 1, for_training=False, settings=settings, num_threads=1)
    except UnknownEnvError:
        raise
    except (TypeError, KeyError, ValueError) as err:
        raise ModelLoadError(f"{where}: env_settings {sorted(settings)} do not fit {meta['env_id']} "
                             f"({first_line(err)})") from None
    try:
        check_spaces(meta, space_to_dict(envs.single_observation_space), space_to_dict(envs.single_action_space),
                     where=where)
    finally:
        envs.close()


def load_agent(name_or_path: str | os.PathLike, device: str | torch.device = "cpu",
               snapshot: str | None = None, check_env: bool = True) -> Agent:
    """Load a registered model by name or folder. Never unpickles; verifies every sha256.

    :param snapshot: file name of a training snapshot under ``checkpoints/`` instead of the final weights.
    :param check_env: refuse a model whose recorded spaces differ from its environment's (before
        any weights are read).
    """
    path = resolve(name_or_path)
    meta = read_meta(path)
    if check_env:
        check_env_matches(meta, where=str(path))
    filename = f"checkpoints/{snapshot}" if snapshot else WEIGHTS
    meta, data = _read_committed(path, filename, meta)
    steps_trained = snapshot_step(snapshot) if snapshot else meta["steps_trained"]
    state = _load_tensors(path / filename, data)
    _check_network_size(path, meta, state)
    _check_agent_fields(path, meta, state, filename)
    network = _build(path, meta)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ModelLoadError(f"{path / filename}: weights do not fit {meta['architecture']!r} ({first})") from None
    network.to(device).eval()
    from interpret_rl.agent import Agent

    return Agent(network=network, env_id=meta["env_id"], env_settings=meta["env_settings"],
                 architecture=meta["architecture"], architecture_args=meta["architecture_args"],
                 observation_space=meta["observation_space"], action_space=meta["action_space"],
                 action_meanings=meta["action_meanings"], steps_trained=steps_trained,
                 name=path.name, meta=meta)


def _check_agent_fields(path: Path, meta: dict, state: dict[str, torch.Tensor], filename: str) -> None:
    """What an agent's users rely on: one printable name per discrete action, finite weights."""
    names, space = meta["action_meanings"], meta["action_space"]
    if not all(isinstance(n, str) and n.strip() for n in names) or (
            space.get("type") == "Discrete" and len(names) != space.get("n")):
        raise ModelLoadError(f"{path / META}: action_meanings must be {space.get('n', 'one')} non-empty strings, "
                             f"one per action")
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelLoadError(f"{path / filename}: weights {', '.join(bad[:3])} hold NaN or infinite values")


def _build(path: Path, meta: dict) -> torch.nn.Module:
    from interpret_rl.architectures import build_network

    try:
        return build_network(meta["architecture"], meta["architecture_args"])
    except (TypeError, KeyError, ValueError, RuntimeError, OverflowError) as err:
        raise ModelLoadError(f"{path / META}: cannot build {meta['architecture']!r} ({first_line(err)})") from None


def _check_network_size(path: Path, meta: dict, state: dict[str, torch.Tensor]) -> None:
    """Refuse architecture arguments that describe more weights than the (size-checked) weights
    file holds, before allocating them: a 2 KB meta.json must not ask for 53 GB. The network is
    first built on torch's "meta" device, which records shapes and allocates nothing."""
    from interpret_rl.agent import architectures

    architectures()  # plugins imported outside the meta-device block: their import-time tensors stay real
    with torch.device("meta"):
        shapes = _build(path, meta)
    needed = sum(t.numel() * t.element_size() for t in shapes.state_dict().values())
    held = sum(t.numel() * t.element_size() for t in state.values())
    if needed > held:
        raise ModelLoadError(f"{path / META}: architecture_args describe {needed:,} bytes of weights but "
                             f"{WEIGHTS} holds {held:,}")


def load_optimizer_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    """Restore optimizer tensors written by ``save_checkpoint`` (for ``train --resume``)."""
    path = Path(path)
    meta = read_meta(path)
    tensors = _load_tensors(path / OPTIMIZER, _read_verified(path, OPTIMIZER, meta))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        # Checked here, or a tampered file fails deep inside the first optimizer step.
        index, _, name = key.partition(".")
        if not (index.isdigit() and int(index) < len(params) and name):
            raise ModelLoadError(f"{path / OPTIMIZER}: entry {key!r} does not fit an optimizer of "
                                 f"{len(params)} parameters")
        if tensor.dim() > 0 and tensor.shape != params[int(index)].shape:
            raise ModelLoadError(f"{path / OPTIMIZER}: {key} has shape {list(tensor.shape)}, its parameter "
                                 f"{list(params[int(index)].shape)}")
        state.setdefault(int(index), {})[name] = tensor
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})


MODEL_PACKAGES = ("interpret-rl", "torch", "gymnasium", "ale-py", "numpy", "safetensors")


def package_versions(packages) -> dict[str, str]:
    """Installed version of each package, ``"not installed"`` for one that is not (meta.json and
    reports record what made them)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _state_bytes(network: torch.nn.Module) -> bytes:
    from safetensors.torch import save as save_safetensors_bytes

    state = {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()}
    return save_safetensors_bytes(state)


def _optimizer_bytes(optimizer: torch.optim.Optimizer) -> bytes:
    from safetensors.torch import save as save_safetensors_bytes

    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = tensor.detach().to("cpu").contiguous()
    return save_safetensors_bytes(tensors)


def build_meta(agent: Agent, files: dict[str, str], **extra: Any) -> dict:
    meta = dict(agent.meta)
    meta.update({
        "format_version": FORMAT_VERSION,
        "env_id": agent.env_id,
        "env_settings": agent.env_settings,
        "architecture": agent.architecture,
        "architecture_args": agent.architecture_args,
        "observation_space": agent.observation_space,
        "action_space": agent.action_space,
        "action_meanings": agent.action_meanings,
        "steps_trained": int(agent.steps_trained),
        "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": package_versions(MODEL_PACKAGES),
        "files": files,
    })
    meta.update({k: v for k, v in extra.items() if v is not None})
    return meta


def save_agent(agent: Agent, out_dir: str | os.PathLike, optimizer: torch.optim.Optimizer | None = None,
               keep_snapshot: bool = False, fresh: bool = False, **extra: Any) -> Path:
    """Write ``agent`` into ``out_dir`` as one commit (weights, optional optimizer state and
    snapshot, meta.json; see the module docstring): after a crash or a full disk at any instant
    the folder loads as the previous save or as this one.

    ``extra`` fields (``config``, ``training``, ``evaluation``...) are merged into meta.json.

    :param fresh: this save replaces the folder's model by another one (``import --force``):
        nothing of the previous save is carried over (evaluation, snapshots, optimizer state,
        training curve), and the files only it recorded are removed after the commit.
    """
    out_dir = Path(out_dir)
    refuse_bundled(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = read_meta(out_dir) if (out_dir / META).is_file() else {}
    settle(out_dir, previous.get("files", {}), MANAGED_FILES)  # finish or clean an interrupted save
    carried = {} if fresh else previous
    # Keep the records of files this save does not rewrite (snapshots; the optimizer state when
    # only the weights are saved), or a later --resume would refuse an unrecorded optimizer file.
    files = {k: v for k, v in carried.get("files", {}).items()
             if k.startswith("checkpoints/") or (k == OPTIMIZER and optimizer is None)}
    contents = {WEIGHTS: _state_bytes(agent.network)}
    if keep_snapshot:
        contents[f"checkpoints/{SNAPSHOT_NAME.format(step=agent.steps_trained)}"] = contents[WEIGHTS]
    if optimizer is not None:
        contents[OPTIMIZER] = _optimizer_bytes(optimizer)
    files.update({name: sha256_bytes(data) for name, data in contents.items()})
    for extra_file in ("training_curve.csv", "training_curve.png"):
        if (out_dir / extra_file).is_file() and not fresh:
            files[extra_file] = sha256_file(out_dir / extra_file)
    meta = build_meta(agent, files, **{**{k: carried.get(k) for k in ("evaluation",)}, **extra})
    commit_files(out_dir, contents, META, json.dumps(meta, indent=2, sort_keys=True, allow_nan=False))
    agent.meta = meta
    if fresh:
        _remove_unrecorded(out_dir, set(previous.get("files", {})) - set(files))
    return out_dir


def _remove_unrecorded(out_dir: Path, names: set[str]) -> None:
    """Remove files of a replaced model that the new meta.json does not record (only regular
    files inside ``out_dir``: a tampered record naming ``../x`` removes nothing)."""
    root = out_dir.resolve()
    for name in names:
        path = out_dir / name
        if path.resolve().is_relative_to(root) and path.is_file() and not path.is_symlink():
            path.unlink()


def save_checkpoint(agent: Agent, out_dir, config, optimizer, summary: dict, keep_snapshot: bool,
                    resume_state: dict | None = None) -> Path:
    """Called by the trainer: weights + optimizer state + config + training summary, and the
    environments' and sampler's state where they can be snapshot (for a bit-exact resume)."""
    import dataclasses

    agent.meta.pop("resume_state", None)  # never carry a stale snapshot into a new checkpoint
    return save_agent(agent, out_dir, optimizer=optimizer, keep_snapshot=keep_snapshot,
                      config=dataclasses.asdict(config), seed=config.seed, training=summary,
                      resume_state=resume_state)


def update_meta(path: str | os.PathLike, **fields: Any) -> dict:
    """Add or replace top-level meta.json fields (e.g. ``evaluation``) atomically."""
    path = Path(path)
    refuse_bundled(path)
    meta = read_meta(path)
    meta.update(fields)
    atomic_write_text(path / META, json.dumps(meta, indent=2, sort_keys=True, allow_nan=False))
    return meta


def snapshots(name_or_path: str | os.PathLike) -> list[tuple[int, str]]:
    """(step, file name) of the training snapshots a model keeps, oldest first."""
    meta = read_meta(resolve(name_or_path))
    found = []
    for key in meta["files"]:
        folder, _, file = key.partition("/")
        if folder == "checkpoints" and SNAPSHOT_PATTERN.fullmatch(file):
            found.append((snapshot_step(file), file))
    return sorted(found)


def snapshot_step(file: str) -> int:
    """The training step a snapshot file holds the weights of (``step_000000400000.safetensors`` -> 400000)."""
    match = SNAPSHOT_PATTERN.fullmatch(file)
    if match is None:
        raise ModelLoadError(f"{file}: not a snapshot file name (expected like {SNAPSHOT_NAME.format(step=400)})")
    return int(match.group(1))


def export_model(name_or_path: str | os.PathLike, dest: str | os.PathLike, with_optimizer: bool = False) -> Path:
    """Copy a model to ``dest`` (a new folder): weights, meta.json and training curve, without the
    optimizer state and weight snapshots unless asked. Used to bundle models and to share them."""
    src = resolve(name_or_path)
    meta = read_meta(src)
    dest = Path(dest)
    if (dest / META).exists():
        raise FileExistsError(f"{dest} already holds a model; remove it first")
    keep = [WEIGHTS, "training_curve.csv", "training_curve.png"] + ([OPTIMIZER] if with_optimizer else [])
    files = {}
    for filename in keep:
        if (src / filename).is_file():
            data = _read_verified(src, filename, meta) if filename in meta["files"] else (src / filename).read_bytes()
            atomic_write_bytes(dest / filename, data)
            files[filename] = sha256_bytes(data)
    exported = {**meta, "files": files}
    if not with_optimizer:  # the run state only matters for resuming, which needs the optimizer too
        exported.pop("resume_state", None)
    atomic_write_text(dest / META, json.dumps(exported, indent=2, sort_keys=True, allow_nan=False))
    return dest
