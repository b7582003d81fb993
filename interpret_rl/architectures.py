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
