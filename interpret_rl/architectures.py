"""The registry of networks, and the built-in ones registered through ``register_architectures``
like a plugin's.

This module is a default plugin (``plugin_manager.DEFAULT_PLUGINS``), registered before any entry
point, so a plugin network of a built-in's name is refused with a warning instead of replacing
it. The networks module (torch) is imported when architectures are asked for, not when plugins
load. Every network class follows one constructor contract: see docs/methods-api.md.
"""

from __future__ import annotations

import inspect
from typing import Any

from interpret_rl.hookspecs import hookimpl
from interpret_rl.names import Registry


def _check_network_class(network_class, plugin: str) -> None:
    if not callable(network_class):
        raise TypeError(f"plugin {plugin!r} registered an invalid architecture {network_class!r}: "
                        f"not a class (or callable) building an nn.Module")


ARCHITECTURES = Registry("architecture", "register_architectures", _check_network_class, keyed=True)


class ArchitectureArgsError(ValueError):
    """Arguments a network's constructor does not take (``train --architecture-arg``)."""


class ObservationShapeError(ValueError):
    """Raised by a network's constructor for an ``observation_shape`` it cannot take (training
    turns it into one line naming the env and the shape)."""


# Argument names the built-in networks took before every network was built from ``observation_shape``
# (models saved by interpret-rl up to 0.1.0 record them): each maps to the shape it stood for.
# The Nature CNN took only 84x84 frames then.
LEGACY_SHAPE_ARGS = {
    "obs_dim": lambda length: [length],
    "in_channels": lambda channels: [channels, 84, 84],
}


def current_args(args: dict[str, Any]) -> dict[str, Any]:
    """``architecture_args`` as today's constructor contract has them: a meta.json written before it
    holds ``obs_dim`` (mlp, mlp-q) or ``in_channels`` (nature-cnn, nature-cnn-q) instead of
    ``observation_shape``. Arguments that already hold ``observation_shape`` are returned unchanged
    (a plugin network always got it, so its own ``in_channels`` argument, if any, is its own)."""
    legacy = [key for key in LEGACY_SHAPE_ARGS if key in args]
    if "observation_shape" in args or len(legacy) != 1:
        return args
    upgraded = {k: v for k, v in args.items() if k != legacy[0]}
    return {"observation_shape": LEGACY_SHAPE_ARGS[legacy[0]](args[legacy[0]]), **upgraded}


def build_network(name: str, args: dict[str, Any]):
    """The network ``name`` built from ``args`` (meta.json's ``architecture_args``). An unknown
    name raises ``UnknownNameError``; arguments its constructor does not take, ``ArchitectureArgsError``."""
    network_class = ARCHITECTURES.get(name)
    try:
        inspect.signature(network_class).bind(**args)
    except TypeError as err:
        raise ArchitectureArgsError(f"architecture {name!r} cannot take the arguments {sorted(args)}: {err}") from None
    return network_class(**args)


@hookimpl
def register_architectures(register):
    from interpret_rl.networks import BUILTIN_ARCHITECTURES

    for name, network_class in BUILTIN_ARCHITECTURES.items():
        register(name, network_class)
