"""The hooks a plugin can implement. Built-in methods use exactly these, like any other plugin.

A plugin is a module registered under the ``interpret_rl`` entry-point group, e.g. in setup.cfg::

    [options.entry_points]
    interpret_rl =
        my_method = my_package.my_module
"""

import pluggy

hookspec = pluggy.HookspecMarker("interpret_rl")
hookimpl = pluggy.HookimplMarker("interpret_rl")


@hookspec
def register_methods(register):
    """Register explanation methods: call ``register(MethodClass)`` once per method."""


@hookspec
def register_architectures(register):
    """Register network classes: call ``register(name, NetworkClass)``; they build from meta.json."""


@hookspec
def register_metrics(register):
    """Register explanation metrics: call ``register(MetricClass)`` once per metric."""


@hookspec
def register_commands(cli):
    """Add subcommands to the ``interpret-rl`` click group ``cli``."""


@hookspec
def register_object_detectors(register):
    """Register game knowledge: call ``register(key, DetectorClass)`` with an env id or ALE game name
    (``"breakout"``) and an ``interpret_rl.objects.ObjectDetector`` subclass (objects from RAM)."""
