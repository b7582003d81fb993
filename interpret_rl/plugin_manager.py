"""Loads plugins from the ``interpret_rl`` entry-point group, on first use.

Built-in pieces register through the same hooks as third-party plugins: the bundled methods and
metrics are ordinary entry points, the built-in networks a default plugin registered first
(``DEFAULT_PLUGINS``). A plugin that fails to load (an import error, a misspelled hook name)
costs one warning and nothing else (``--help`` and every other method keep working);
``INTERPRET_RL_STRICT_PLUGINS=1`` makes that failure fatal while writing a plugin (``0``, ``false``
or unset: off). ``interpret-rl plugins`` lists what loaded and what did not.
"""

from __future__ import annotations

import importlib
import os
import warnings
from importlib.metadata import entry_points

import pluggy

from interpret_rl import hookspecs

GROUP = "interpret_rl"
STRICT_ENV = "INTERPRET_RL_STRICT_PLUGINS"

DEFAULT_PLUGINS = ("interpret_rl.architectures",)

_manager: pluggy.PluginManager | None = None
# Plugins that failed to load: entry-point name -> one-line reason (shown by `interpret-rl plugins`).
load_errors: dict[str, str] = {}


class PluginLoadWarning(UserWarning):
    pass


def strict_plugins() -> bool:
    """Whether a broken plugin is fatal: ``INTERPRET_RL_STRICT_PLUGINS`` set to anything but
    empty, ``0``, ``false``, ``no`` or ``off``."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


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
            try:
                pm.check_pending()  # a hook name no spec knows (``register_method``) is this plugin's
            except pluggy.PluginValidationError:
                pm.unregister(name=ep.name)
                raise
        except Exception as err:  # a broken third-party plugin must not break the tool
            if strict_plugins():
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
        for name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(name), name=name)
        _load_entry_points(pm)
        _manager = pm
    return _manager


def reset_plugin_manager() -> None:
    """Forget loaded plugins (tests use it after registering throwaway plugins)."""
    global _manager
    _manager = None
    load_errors.clear()


def plugin_name_of(plugin: object) -> str:
    return get_plugin_manager().get_name(plugin) or getattr(plugin, "__name__", repr(plugin))


def unknown_name_message(kind: str, name: str, known) -> str:
    """``unknown method 'salincy'; did you mean saliency? (available: ...)``: the message of
    ``names.UnknownNameError``, for lookups that raise their own error class."""
    from interpret_rl.names import UnknownNameError

    return str(UnknownNameError(kind, name, known))


def describe_plugins() -> list[dict]:
    """One row per plugin, loaded or not: ``name``, ``source`` (distribution and version, or how it
    was registered), ``hooks`` it implements, ``error`` (why it did not load, else None)."""
    pm = get_plugin_manager()
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}

    def source(name: str) -> str:
        ep = eps.get(name)
        if ep is not None and ep.dist is not None:
            return f"{ep.dist.name} {ep.dist.version}"
        return "interpret-rl (default plugin)" if name in DEFAULT_PLUGINS else "registered in code"

    rows = [{"name": name, "source": source(name), "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
             "error": None} for name, plugin in pm.list_name_plugin() if plugin is not None]
    rows += [{"name": name, "source": source(name), "hooks": [], "error": reason}
             for name, reason in load_errors.items()]
    return rows
