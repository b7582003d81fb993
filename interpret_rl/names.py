"""One registry for everything plugins name: methods, metrics, architectures, object detectors.

Each kind is a ``Registry`` filled through its hook (``register_methods``...). Built-in and
third-party plugins fill it the same way, one plugin at a time, so every entry knows the plugin
that registered it. One policy for a name registered twice: a warning naming both plugins, and
the first stays (built-ins are registered first, so a plugin cannot silently replace ``mlp``);
with ``INTERPRET_RL_STRICT_PLUGINS=1`` it raises ``DuplicateNameError``. A name nobody
registered raises ``UnknownNameError``, which carries the close names it suggests.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable
from typing import Any

SUGGESTION_CUTOFF = 0.5
"""How similar (``difflib`` ratio) a known name must be to a typed one to be suggested."""


def close_names(name: str, known: Iterable[str]) -> list[str]:
    """Up to three known names close to ``name``, closest first."""
    return difflib.get_close_matches(name, list(known), n=3, cutoff=SUGGESTION_CUTOFF)


class UnknownNameError(KeyError):
    """No registered ``kind`` is called ``name``.

    :ivar suggestions: the known names close to ``name`` (``close_names``), maybe none.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], note: str | None = None):
        """:param note: said in brackets instead of the list of known names."""
        self.kind, self.name, self.known, self.note = kind, name, list(known), note
        self.suggestions = close_names(name, self.known)
        super().__init__(str(self))

    def __str__(self) -> str:  # KeyError would show the message quoted
        hint = f"; did you mean {' or '.join(self.suggestions)}?" if self.suggestions else ""
        note = self.note or f"available: {', '.join(self.known) or 'none'}"
        return f"unknown {self.kind} {self.name!r}{hint} ({note})"


class DuplicateNameError(ValueError):
    """Two plugins registered the same name (raised with ``INTERPRET_RL_STRICT_PLUGINS=1``;
    otherwise the second is refused with a warning and the first stays)."""


class Registry:
    """The entries of one kind that plugins register through ``hook``.

    :param kind: what an entry is, in messages: ``"method"``.
    :param hook: the hook name, ``"register_methods"``.
    :param check: ``check(entry, plugin_name)`` raises ``TypeError`` for an entry breaking the
        contract of its kind.
    :param keyed: the hook calls ``register(name, entry)`` (architectures, detectors) instead of
        ``register(entry)`` with the name in ``entry.name`` (methods, metrics).
    """

    def __init__(self, kind: str, hook: str, check: Callable[[Any, str], None] | None = None, keyed: bool = False):
        self.kind, self.hook, self.check, self.keyed = kind, hook, check, keyed

    def collect(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(name -> entry, name -> plugin name), both sorted by name. Calls every plugin's hook,
        one plugin at a time, so that each entry knows its owner."""
        from interpret_rl.plugin_manager import PluginLoadWarning, get_plugin_manager, strict_plugins

        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        for impl in getattr(get_plugin_manager().hook, self.hook).get_hookimpls():
            if impl.hookwrapper or impl.wrapper:  # wrappers wrap other plugins' calls; they register nothing
                continue

            def register(*args, plugin: str = impl.plugin_name) -> None:
                name, entry = args if self.keyed else (getattr(args[0], "name", None), args[0])
                if not isinstance(name, str):
                    raise TypeError(f"plugin {plugin!r} registered a {self.kind} without a name: {entry!r}")
                if self.check is not None:
                    self.check(entry, plugin)
                if name in found:
                    message = (f"{self.kind} {name!r} is registered by both plugin {owners[name]!r} and plugin "
                               f"{plugin!r}; keeping {owners[name]!r}'s")
                    if strict_plugins():
                        raise DuplicateNameError(message)
                    warnings.warn(f"interpret-rl: {message}", PluginLoadWarning, stacklevel=2)
                    return
                found[name], owners[name] = entry, plugin

            impl.function(**dict.fromkeys(impl.argnames, register))  # "register" is the only hook argument
        return dict(sorted(found.items())), dict(sorted(owners.items()))

    def all(self) -> dict[str, Any]:
        """Every registered entry by name (sorted)."""
        return self.collect()[0]

    def owners(self) -> dict[str, str]:
        """Name -> name of the plugin that registered it."""
        return self.collect()[1]

    def get(self, name: str) -> Any:
        """The entry called ``name``; ``UnknownNameError`` suggests close names."""
        entries = self.all()
        if name in entries:
            return entries[name]
        raise UnknownNameError(self.kind, name, entries)

    def build_many(self, given: Iterable[Any], options: dict[str, dict[str, Any]] | None, role: str) -> list:
        """Names or instances -> instances, options applied (``{"optim": {"steps": "64"}}``). Raises
        before any work: ``UnknownNameError`` for a name, ``ValueError`` for a bad option, a name
        given twice, or options for one not in ``given`` (``role`` names them: "compared methods")."""
        given, options = list(given), dict(options or {})
        instances = [self.build(m, options.get(m)) if isinstance(m, str) else m for m in given]
        names = [m.name for m in instances]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{self.kind} {', '.join(repeated)} given more than once")
        for name in options:
            if any(not isinstance(m, str) and m.name == name for m in given):
                raise ValueError(f"options given for {name}, which was passed as an instance: set them on its Options")
            if name not in names:
                self.get(name)  # a typo'd name gets the "did you mean" error
                raise ValueError(f"options given for {self.kind} {name}, which is not among the {role} "
                                 f"({', '.join(names) or 'none'})")
        return instances

    def build(self, name: str, options: dict[str, Any] | None = None) -> Any:
        """An instance of the class called ``name`` with its ``Options`` set from ``options``
        (values as text, ``{"steps": "256"}``, or typed); ``ValueError`` for a bad option."""
        from interpret_rl.methods import build_options

        entry = self.get(name)
        return entry(build_options(self.kind, name, entry.Options, options))
