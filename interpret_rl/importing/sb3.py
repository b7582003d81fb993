"""stable-baselines3 ``.zip`` models (A2C, PPO, DQN; QR-DQN from sb3-contrib), read as files only.

The zip holds ``policy.pth`` (a state dict, loaded by ``safe_read.load_state_dict``) and ``data``,
JSON in which objects SB3 could not write as JSON are cloudpickled (``":serialized:"``, base64).
Those are never decoded: beside each SB3 writes readable fields (``"n"``, ``"_shape"``,
``"dtype"``, the policy class's ``"__module__"`` and ``"__init__"``, ``policy_kwargs`` entries),
and that text is all this module reads.

SB3 saves some modules several times: a shared CNN as ``features_extractor``,
``pi_features_extractor`` and ``vf_features_extractor``; DQN and QR-DQN their target network
beside the online one. The agent acts with one copy each (the online network), imported once.
"""

from __future__ import annotations

import json
import re
import zipfile

from interpret_rl.importing.layouts import KeyMap, Layout, check_sequential_of_linears
from interpret_rl.importing.safe_read import (
    MAX_JSON_BYTES,
    MAX_MEMBER_BYTES,
    ImportRefusedError,
    load_state_dict,
    read_member,
)

POLICY_CLASSES = {
    ("stable_baselines3.common.policies", "ActorCriticPolicy"): "actor-critic",
    ("stable_baselines3.common.policies", "ActorCriticCnnPolicy"): "actor-critic",
    ("stable_baselines3.dqn.policies", "DQNPolicy"): "dqn",
    ("stable_baselines3.dqn.policies", "CnnPolicy"): "dqn",
    ("sb3_contrib.qrdqn.policies", "QRDQNPolicy"): "qrdqn",
    ("sb3_contrib.qrdqn.policies", "CnnPolicy"): "qrdqn",
}
ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu"}
NATURE_CNN = ("cnn.0", "cnn.2", "cnn.4", "linear.0")  # SB3's NatureCNN: conv, ReLU, conv, ReLU, conv, ReLU, Flatten


def is_sb3_zip(archive: zipfile.ZipFile) -> bool:
    return "policy.pth" in archive.namelist() or "data" in archive.namelist()


def read_sb3(archive: zipfile.ZipFile, where: str) -> tuple[dict, dict, str | None]:
    """(data JSON, policy state dict, SB3 version or None) of an SB3 zip."""
    names = archive.namelist()
    for required in ("policy.pth", "data"):
        if required not in names:
            raise ImportRefusedError(f"{where}: a stable-baselines3 zip holds policy.pth and data; this one has no "
                                     f"{required}")
    try:
        data = json.loads(read_member(archive, "data", MAX_JSON_BYTES, where).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ImportRefusedError(f"{where}: its data member is not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ImportRefusedError(f"{where}: its data member holds {type(data).__name__}, not a JSON object")
    state = load_state_dict(read_member(archive, "policy.pth", MAX_MEMBER_BYTES, where), f"{where}: policy.pth")
    version = None
    if "_stable_baselines3_version" in names:
        version = read_member(archive, "_stable_baselines3_version", 64, where).decode("ascii", "replace").strip()
    return data, state, version


def policy_class(data: dict, where: str) -> tuple[str, str]:
    """(module, class name) from the readable fields of the cloudpickled ``policy_class``."""
    entry = data.get("policy_class")
    entry = entry if isinstance(entry, dict) else {}
    module = str(entry.get("__module__", "?"))
    found = re.match(r"<function (\w+)\.__init__ ", str(entry.get("__init__", "")))
    name = found.group(1) if found else "?"
    if (module, name) not in POLICY_CLASSES:
        known = ", ".join(sorted({n for _, n in POLICY_CLASSES}))
        raise ImportRefusedError(f"{where}: unknown policy class {module}.{name}; importable: {known} "
                                 f"(MlpPolicy and CnnPolicy of A2C, PPO, DQN and QR-DQN)")
    return module, name


def algo_name(kind: str, data: dict) -> str:
    """The algorithm, from the settings only it saves (the zip does not name it)."""
    if kind != "actor-critic":
        return kind
    if "cg_max_steps" in data:
        return "trpo"
    return "ppo" if "clip_range" in data else "a2c"


def spaces(data: dict, where: str) -> tuple[dict, dict]:
    """(observation space, action space) as ``agent.space_to_dict`` describes them (no bounds)."""
    return (_space(data.get("observation_space"), "observation", where),
            _space(data.get("action_space"), "action", where))


def _space(entry, label: str, where: str) -> dict:
    entry = entry if isinstance(entry, dict) else {}
    kind = re.search(r"spaces\.\w+\.(\w+)'", str(entry.get(":type:", "")))
    kind = kind.group(1) if kind else "unknown"
    try:
        if kind == "Discrete" and label == "action":
            if int(entry.get("start", 0)) != 0:
                raise ValueError("actions start at a value other than 0")
            return {"type": "Discrete", "n": int(entry["n"])}
        if kind == "Box" and label == "observation":
            shape = entry["_shape"]
            shape = json.loads(shape) if isinstance(shape, str) else shape
            return {"type": "Box", "shape": [int(s) for s in shape], "dtype": str(entry["dtype"])}
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as err:
        raise ImportRefusedError(f"{where}: its {label} space is not readable ({err})") from None
    wanted = "Discrete" if label == "action" else "Box"
    raise ImportRefusedError(f"{where}: {label} space {kind}: only {wanted} {label}s can be imported")


def _kwargs(data: dict) -> dict:
    kwargs = data.get("policy_kwargs")
    return kwargs if isinstance(kwargs, dict) else {}


def _activation(data: dict, default: str, where: str) -> str:
    text = _kwargs(data).get("activation_fn")
    if text is None:
        return default
    found = re.search(r"torch\.nn\.modules\.activation\.(\w+)'", str(text))
    if not found or found.group(1) not in ACTIVATIONS:
        raise ImportRefusedError(f"{where}: activation_fn {text}: importable activations are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[found.group(1)]


def _normalize_images(data: dict) -> bool:
    return str(_kwargs(data).get("normalize_images", True)).lower() != "false"


def layout(data: dict, state: dict, where: str) -> Layout:
    """Our architecture, its arguments and the renamed weights for an SB3 policy."""
    _, name = module_and_name = policy_class(data, where)
    kind = POLICY_CLASSES[module_and_name]
    observation, action = spaces(data, where)
    keys = KeyMap(state, where)
    n_actions = action["n"]
    if kind == "actor-critic":
        architecture, args = _actor_critic(keys, data, observation, where)
    else:
        architecture, args = _q_network(keys, data, kind, n_actions, where)
    keys.check_all_used()
    ignored = {"dqn": ["q_net_target (target network)"],
               "qrdqn": ["quantile_net_target (target network)"]}.get(kind, [])
    if kind == "actor-critic" and keys.has("features_extractor.cnn.0.weight"):
        shared = "shared_trunk" not in args
        ignored.append("features_extractor (a copy of pi_features_extractor)"
                       + (", vf_features_extractor (the same weights)" if shared else ""))
    return Layout(architecture=architecture, args={**args, "n_actions": n_actions}, state=keys.state,
                  algo=algo_name(kind, data), ignored=ignored)


def _actor_critic(keys: KeyMap, data: dict, observation: dict, where: str) -> tuple[str, dict]:
    pi_cnn = "pi_features_extractor" if keys.has("pi_features_extractor.cnn.0.weight") else "features_extractor"
    keys.linear("policy", "action_net")
    keys.linear("value", "value_net")
    if keys.has(f"{pi_cnn}.cnn.0.weight"):
        if keys.sequential_indices("mlp_extractor.policy_net") or keys.sequential_indices("mlp_extractor.value_net"):
            raise ImportRefusedError(f"{where}: a CnnPolicy with hidden layers after the CNN (net_arch) is not "
                                     f"importable; only the default net_arch=[]")
        vf_cnn = "vf_features_extractor" if keys.has("vf_features_extractor.cnn.0.weight") else pi_cnn
        args = keys.nature_cnn("trunk", tuple(f"{pi_cnn}.{k}" for k in NATURE_CNN))
        shared = keys.same(f"{pi_cnn}.", f"{vf_cnn}.")
        if not shared:
            keys.nature_cnn("critic_trunk", tuple(f"{vf_cnn}.{k}" for k in NATURE_CNN))
            args["shared_trunk"] = False
        keys.ignore("features_extractor.")  # SB3's third copy (of the actor's extractor)
        keys.ignore("pi_features_extractor.")
        keys.ignore("vf_features_extractor.")
        if not _normalize_images(data):
            args["normalize_images"] = False
        return "nature-cnn", args
    if len(observation["shape"]) != 1:
        raise ImportRefusedError(f"{where}: an MlpPolicy on observations of shape {observation['shape']}: only "
                                 f"vector observations import into an MLP")
    pi = keys.sequential_indices("mlp_extractor.policy_net")
    vf = keys.sequential_indices("mlp_extractor.value_net")
    check_sequential_of_linears(pi, "mlp_extractor.policy_net", where)
    check_sequential_of_linears(vf, "mlp_extractor.value_net", where)
    hidden = keys.mlp("trunk", "mlp_extractor.policy_net", pi)
    critic_hidden = keys.mlp("critic_trunk", "mlp_extractor.value_net", vf)
    args = {"observation_shape": [observation["shape"][0]], "hidden": hidden,
            "activation": _activation(data, "tanh", where), "shared_trunk": False}
    if critic_hidden != hidden:
        args["critic_hidden"] = critic_hidden
    return "mlp", args


def _q_network(keys: KeyMap, data: dict, kind: str, n_actions: int, where: str) -> tuple[str, dict]:
    net = "q_net" if kind == "dqn" else "quantile_net"
    keys.ignore(f"{net}_target.")
    head = keys.sequential_indices(f"{net}.{net}")
    check_sequential_of_linears(head, f"{net}.{net}", where)
    args: dict = {"layer_norm": False}
    if kind == "qrdqn":
        args["n_quantiles"] = n_quantiles = int(data.get("n_quantiles", 0))
        out = keys.shape(f"{net}.{net}.{head[-1]}.weight")[0] if head else 0
        if n_quantiles < 1 or out != n_quantiles * n_actions:
            raise ImportRefusedError(f"{where}: QR-DQN output layer of {out} units does not hold n_quantiles="
                                     f"{n_quantiles} x {n_actions} actions")
    if keys.has(f"{net}.features_extractor.cnn.0.weight"):
        if len(head) != 1:
            raise ImportRefusedError(f"{where}: a CnnPolicy with hidden layers after the CNN (net_arch) is not "
                                     f"importable; only the default net_arch=[]")
        args.update(keys.nature_cnn("trunk", tuple(f"{net}.features_extractor.{k}" for k in NATURE_CNN)))
        keys.linear("q", f"{net}.{net}.{head[0]}")
        if not _normalize_images(data):
            args["normalize_images"] = False
        return "nature-cnn-q", args
    if not head:
        raise ImportRefusedError(f"{where}: no {net}.{net} layers; not a layout this importer knows")
    args["hidden"] = keys.mlp("trunk", f"{net}.{net}", head[:-1])
    keys.linear("q", f"{net}.{net}.{head[-1]}")
    args["observation_shape"] = [keys.shape(f"{net}.{net}.0.weight")[1]]
    args["activation"] = _activation(data, "relu", where)
    return "mlp-q", args
