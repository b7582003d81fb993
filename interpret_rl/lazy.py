"""Heavy libraries imported on first use, so that loading plugins stays cheap.

``interpret-rl methods`` and a misspelled method name need every plugin's classes (their names,
kinds, options) but none of torch, captum or lucent, which take seconds to import. A module that
uses torch only inside functions writes ``torch = lazy_module("torch")`` instead of ``import
torch``: the name works as the module everywhere, and torch is imported on the first attribute
read (``torch.zeros``), by which time the work needs it anyway. Nothing is put in ``sys.modules``,
so every other ``import torch`` behaves as usual. Module-level code (a base class like
``nn.Module``, a decorator) would import at once: keep such code inside functions.
"""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """Stands for the module ``name``; imports it when an attribute is first read."""

    def __getattr__(self, attribute: str):
        module = self.__dict__.get("_module")
        if module is None:
            module = self.__dict__["_module"] = importlib.import_module(self.__name__)
        return getattr(module, attribute)


def lazy_module(name: str) -> types.ModuleType:
    """``name`` (``"torch"``, ``"torch.nn.functional"``), imported when first used."""
    return LazyModule(name)
