"""interpret-rl: train RL agents (A2C, PPO, PQN, DQN) and compare what explanation methods say they look at.

The public names below are imported on first use (PEP 562), so ``import interpret_rl`` and the
command line start without torch: ``interpret_rl.train`` imports the trainer when first read.
"""

import importlib
import sys
import types

__version__ = "0.1.0"

# Public name -> the module that defines it; one line per name.
_PUBLIC = {
    "A2CConfig": "interpret_rl.a2c",
    "PRESETS": "interpret_rl.a2c",
    "config_from_preset": "interpret_rl.a2c",
    "train": "interpret_rl.a2c",
    "Agent": "interpret_rl.agent",
    "compare": "interpret_rl.compare",
    "compare_agents": "interpret_rl.across_agents",
    "list_models": "interpret_rl.registry",
    "load_agent": "interpret_rl.registry",
    "save_agent": "interpret_rl.registry",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'interpret_rl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # the next read finds it without calling here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


class _Package(types.ModuleType):
    """Importing a submodule sets it as an attribute of its package: ``interpret_rl.compare`` the
    module would then hide ``interpret_rl.compare`` the function. Public names keep their meaning."""

    def __setattr__(self, name: str, value) -> None:
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
