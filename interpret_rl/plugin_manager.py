"""Loads plugins from the ``interpret_rl`` entry-point group.

A plugin that fails to import costs one warning and nothing else (``--help`` and every other
method keep working); set ``INTERPRET_RL_STRICT_PLUGINS=1`` to make that failure fatal while
writing a plugin.
"""

from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points

import pluggy

from interpret_rl import hookspecs

GROUP = "interpret_rl"
STRICT_ENV = "INTERPRET_RL_STRICT_PLUGINS"

_manager: pluggy.PluginManager | None = None
# Plugins that failed to load: entry-point name -> one-line reason (shown by `interpret-rl plugins`).
load_errors: dict[str, str] = {}


class PluginLoadWarning(UserWarning):
    pass


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in entry_points(group=GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            with warnings.catch_warnings():
                # kornia (via torch-lucent) calls the deprecated torch.jit.script at import time
                warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
                module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as err:  # a broken third-party plugin must not break the tool
            if os.environ.get(STRICT_ENV):
                raise
            load_errors[ep.name] = f"{type(err).__name__}: {err}"
            warnings.warn(f"interpret-rl plugin {ep.name!r} ({ep.value}) failed to load: "
                          f"{type(err).__name__}: {err}", PluginLoadWarning, stacklevel=2)


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        pm = pluggy.PluginManager(GROUP)
        pm.add_hookspecs(hookspecs)
        _load_entry_points(pm)
        pm.check_pending()
        _manager = pm
    return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests use it after registering throwaway plugins)."""
    global _manager
    _manager = None
    load_errors.clear()


def plugin_name_of(plugin: object) -> str:
    return get_plugin_manager().get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


def registered_architectures() -> dict[str, type]:
    found: dict[str, type] = {}

    def register(name: str, network_class: type) -> None:
        if name in found:
            raise ValueError(f"architecture {name!r} registered twice")
        found[name] = network_class

    get_plugin_manager().hook.register_architectures(register=register)
    return found


def collect_registrations(hook_name: str, check, duplicate_error: type[Exception]):
    """Call every plugin's ``hook_name(register)`` one plugin at a time, so each registered class
    knows its owner. Returns ``(name -> class sorted by name, name -> plugin name)``.

    A second registration of a taken name is refused with one warning naming both plugins and the
    first one stays, so a clashing plugin cannot take the tool down; with
    ``INTERPRET_RL_STRICT_PLUGINS=1`` it raises ``duplicate_error`` instead.
    """
    found: dict[str, type] = {}
    owners: dict[str, str] = {}
    for impl in getattr(get_plugin_manager().hook, hook_name).get_hookimpls():
        if impl.hookwrapper or impl.wrapper:  # wrappers wrap other plugins' calls; they register nothing
            continue
        plugin = impl.plugin_name

        def register(cls: type, plugin: str = plugin) -> None:
            check(cls, plugin)
            if cls.name in found:
                message = (f"{cls.name!r} is registered by both plugin {owners[cls.name]!r} and plugin "
                           f"{plugin!r}; keeping {owners[cls.name]!r}'s")
                if os.environ.get(STRICT_ENV):
                    raise duplicate_error(message)
                warnings.warn(f"interpret-rl: {message}", PluginLoadWarning, stacklevel=2)
                return
            found[cls.name] = cls
            owners[cls.name] = plugin

        impl.function(**dict.fromkeys(impl.argnames, register))  # "register" is the only hook argument
    return dict(sorted(found.items())), owners


def unknown_name_message(kind: str, name: str, known) -> str:
    """``unknown method 'salincy'; did you mean saliency? (available: ...)`` for registry lookups."""
    import difflib

    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (available: {', '.join(known) or 'none'})"

