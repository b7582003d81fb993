"""CleanRL's network layouts, as ``torch.save(agent.state_dict())`` writes them.

A state dict records no spaces, activations or algorithm: each layout states CleanRL's choices
(ppo_atari.py, dqn_atari.py, ppo.py, dqn.py) and is recognised by its key names and shapes.

* ``cleanrl-ppo-atari``: ``network`` = Nature CNN (Sequential indices 0, 2, 4 convs, 7 linear),
  ``actor``, ``critic``; input divided by 255.
* ``cleanrl-dqn-atari``: ``network`` = Nature CNN then the Q layer (index 9); input divided by 255.
* ``cleanrl-ppo``: ``actor`` and ``critic``, each an MLP with Tanh (0, 2 hidden, 4 output).
* ``cleanrl-dqn``: ``network`` = MLP with ReLU (0, 2 hidden, 4 output).
"""

from __future__ import annotations

from interpret_rl.importing.layouts import KeyMap, Layout, build, check_sequential_of_linears
from interpret_rl.importing.safe_read import ImportRefusedError

NATURE_CNN = ("network.0", "network.2", "network.4", "network.7")


def _ppo_atari(keys: KeyMap) -> Layout:
    args = keys.nature_cnn("trunk", NATURE_CNN)
    keys.linear("policy", "actor")
    keys.linear("value", "critic")
    return Layout("nature-cnn", {**args, "n_actions": keys.shape("actor.weight")[0]}, keys.state, "ppo")


def _dqn_atari(keys: KeyMap) -> Layout:
    args = keys.nature_cnn("trunk", NATURE_CNN)
    keys.linear("q", "network.9")
    return Layout("nature-cnn-q", {**args, "layer_norm": False, "n_actions": keys.shape("network.9.weight")[0]},
                  keys.state, "dqn")


def _mlp_head(keys: KeyMap, prefix: str) -> tuple[list[int], list[int]]:
    """(hidden layer indices, all indices) of a CleanRL MLP ``prefix`` (Linear, activation, ...)."""
    indices = keys.sequential_indices(prefix)
    check_sequential_of_linears(indices, prefix, keys.where)
    if not indices or len(keys.shape(f"{prefix}.0.weight")) != 2:
        raise ImportRefusedError(f"{keys.where}: {prefix} is not an MLP")
    return indices[:-1], indices


def _ppo(keys: KeyMap) -> Layout:
    actor_hidden, actor = _mlp_head(keys, "actor")
    critic_hidden, critic = _mlp_head(keys, "critic")
    hidden = keys.mlp("trunk", "actor", actor_hidden)
    critic_widths = keys.mlp("critic_trunk", "critic", critic_hidden)
    keys.linear("policy", f"actor.{actor[-1]}")
    keys.linear("value", f"critic.{critic[-1]}")
    args = {"observation_shape": [keys.shape("actor.0.weight")[1]],
            "n_actions": keys.shape(f"actor.{actor[-1]}.weight")[0],
            "hidden": hidden, "activation": "tanh", "shared_trunk": False}
    if critic_widths != hidden:
        args["critic_hidden"] = critic_widths
    return Layout("mlp", args, keys.state, "ppo")


def _dqn(keys: KeyMap) -> Layout:
    hidden_indices, indices = _mlp_head(keys, "network")
    hidden = keys.mlp("trunk", "network", hidden_indices)
    keys.linear("q", f"network.{indices[-1]}")
    args = {"observation_shape": [keys.shape("network.0.weight")[1]],
            "n_actions": keys.shape(f"network.{indices[-1]}.weight")[0],
            "hidden": hidden, "layer_norm": False, "activation": "relu"}
    return Layout("mlp-q", args, keys.state, "dqn")


LAYOUTS = {
    "cleanrl-ppo-atari": _ppo_atari,
    "cleanrl-dqn-atari": _dqn_atari,
    "cleanrl-ppo": _ppo,
    "cleanrl-dqn": _dqn,
}


def _try(name: str, state: dict, where: str) -> Layout:
    keys = KeyMap(state, where)
    found = LAYOUTS[name](keys)
    keys.check_all_used()
    build(found, where)  # the shapes fit too, not only the names
    return found


def layout(state: dict, architecture: str | None, where: str) -> tuple[str, Layout]:
    """(layout name, layout) for ``state``: the named one, or the one layout its keys fit."""
    if architecture is not None:
        if architecture not in LAYOUTS:
            raise ImportRefusedError(f"--architecture {architecture!r}: known state-dict layouts are "
                                     f"{', '.join(LAYOUTS)}")
        return architecture, _try(architecture, state, where)
    fits = {}
    for name in LAYOUTS:
        try:
            fits[name] = _try(name, state, where)
        except ImportRefusedError:
            continue
    if len(fits) != 1:
        sample = ", ".join(f"{k} {list(v.shape)}" for k, v in list(state.items())[:3])
        raise ImportRefusedError(f"{where}: its weights ({sample}{' ...' if len(state) > 3 else ''}) fit "
                                 f"{'no' if not fits else 'more than one'} known layout "
                                 f"({', '.join(fits or LAYOUTS)}); name one with --architecture")
    return next(iter(fits.items()))
