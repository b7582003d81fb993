"""The explanation-method contract and the registry plugins fill through ``register_methods``.

A method is a class with a ``name``, a one-line ``description``, a ``kind`` ("attribution": a map
shaped like the observation; "synthesis": an observation it creates), an ``Options`` dataclass
(every field has a default; set from the CLI as ``-o <method>.<field>=<value>``) and ``explain``.
See docs/methods-api.md for the full contract every method obeys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from interpret_rl.lazy import lazy_module
from interpret_rl.names import Registry
from interpret_rl.targets import Target

np = lazy_module("numpy")
torch = lazy_module("torch")

KINDS = ("attribution", "synthesis")


class NotApplicableError(ValueError):
    """The method cannot explain this agent (e.g. gradcam on a network without a conv layer)."""


@dataclass
class Explanation:
    """What ``Method.explain`` returns.

    :ivar values: attribution: ``(B, *obs_shape)`` float, one map per observation;
        synthesis: ``(S, *obs_shape)`` observations within the observation space's bounds.
    :ivar extras: JSON-able numbers and lists (e.g. optim's ``activation``, ``dataset_examples``).
    :ivar examples: synthesis only, optional: ``(E, *obs_shape)`` real observations that excite the
        target most (optim's dataset examples), shown beside the synthesis in the report.
    """

    method: str
    target: str
    kind: str
    values: torch.Tensor
    extras: dict = field(default_factory=dict)
    examples: torch.Tensor | None = None


class Method:
    """Base class of explanation methods: subclasses set the class attributes and ``explain``."""

    name: ClassVar[str]
    description: ClassVar[str]
    kind: ClassVar[str] = "attribution"

    @dataclass
    class Options:
        """No options."""

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def explain(self, agent, target: Target, observations: torch.Tensor) -> Explanation:
        """Explain ``target`` on ``observations`` ``(B, *obs_shape)``; must leave agent and input as found."""
        raise NotImplementedError

    def explain_many(self, agent, targets: Sequence[Target], observations: torch.Tensor) -> list[Explanation]:
        """One explanation per target, in order. The default calls ``explain`` per target; a method
        that explains several targets faster in one pass (optim: one batch) overrides it, and
        ``compare`` then calls it once for all targets."""
        return [self.explain(agent, target, observations) for target in targets]

    @classmethod
    def explains_many_at_once(cls) -> bool:
        """Whether the class overrides ``explain_many`` (else it is ``explain`` per target)."""
        return cls.explain_many is not Method.explain_many

    def explanation(self, target: Target, values: torch.Tensor, **extras) -> Explanation:
        """The ``Explanation`` of ``values`` for ``target`` by this method (``extras``: JSON-safe)."""
        return Explanation(method=self.name, target=target.spec, kind=self.kind,
                           values=values.detach(), extras=extras)


@contextmanager
def seeded_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Seed torch's and numpy's global RNGs inside the block and restore them after, for libraries
    that draw from them (captum's GradientShap uses both, lucent torch's): same seed, same result,
    and the caller's random streams untouched."""
    device = torch.device(device)
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)


def _check_method_class(method: Any, plugin: str) -> None:
    problems = [f"no {attr!r}" for attr in ("name", "description") if not isinstance(getattr(method, attr, None), str)]
    if getattr(method, "kind", None) not in KINDS:
        problems.append(f"kind must be one of {KINDS}")
    if not dataclasses.is_dataclass(getattr(method, "Options", None)):
        problems.append("Options must be a dataclass")
    if problems:
        raise TypeError(f"plugin {plugin!r} registered an invalid method {method!r}: {'; '.join(problems)}")


METHODS = Registry("method", "register_methods", _check_method_class)
registered_methods = METHODS.all  # name -> method class, sorted
method_plugins = METHODS.owners  # name -> the plugin that registered it
get_method = METHODS.get  # the class; UnknownNameError suggests close names
build_method = METHODS.build  # an instance, options given as text ({"steps": "256"}) or typed


def prepare_methods(methods: Sequence[str | Method], options: dict[str, dict[str, Any]] | None = None) -> list[Method]:
    """Names or instances -> instances, options applied (``{"optim": {"steps": "64"}}``); raises
    before any work (see ``Registry.build_many``)."""
    if not methods:
        raise ValueError("no method to compare")
    return METHODS.build_many(methods, options, "compared methods")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def convert_option(text: str, kind: Any) -> Any:
    """Convert CLI text to ``kind``: bool, int, float, str, ``Literal["a", "b"]`` (choices),
    ``tuple[int, ...]``, ``X | None``."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Literal:
        if text in args:
            return text
        raise ValueError(f"expected one of {', '.join(map(str, args))}, got {text!r}")
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() == "none" and type(None) in args:
            return None
        return convert_option(text, next(a for a in args if a is not type(None)))
    if origin is tuple:
        items = [item.strip() for item in text.strip().strip("()[]").split(",") if item.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert_option(item, args[0]) for item in items)
        if args and len(items) != len(args):
            raise ValueError(f"expected {len(args)} comma-separated values, got {text!r}")
        return tuple(convert_option(item, a) for item, a in zip(items, args or [str] * len(items)))
    if kind is bool:
        if text.strip().lower() in _TRUE | _FALSE:
            return text.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {text!r}")
    if kind is str:
        return text
    if kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            raise ValueError(f"expected {kind.__name__}, got {text!r}") from None
    raise ValueError(f"options of type {kind!r} cannot be set from text")


def build_options(what: str, name: str, options_class: type, options: dict[str, Any] | None) -> Any:
    """An ``options_class`` instance from values given as text (``{"steps": "256"}``) or typed.

    :param what: ``"method"`` or ``"metric"``; with ``name`` it names the owner in error messages.
    :raises ValueError: an unknown field (naming the valid ones) or text that does not convert.
    """
    hints = typing.get_type_hints(options_class)
    fields = [f.name for f in dataclasses.fields(options_class)]
    values = {}
    for key, raw in (options or {}).items():
        if key not in fields:
            raise ValueError(f"unknown option {key!r} for {what} {name}; options: {', '.join(fields) or 'none'}")
        if not isinstance(raw, str):
            values[key] = raw
            continue
        try:
            values[key] = convert_option(raw, hints[key])
        except ValueError as err:
            raise ValueError(f"option {name}.{key}: {err}") from None
    from interpret_rl.option_checks import check_option_value

    declared = {f.name: f for f in dataclasses.fields(options_class)}
    for key, value in values.items():  # the ranges its Options declare (option_checks.bounded)
        check_option_value(f"{name}.{key}", value, declared[key])
    return options_class(**values)


def parse_option_args(args: list[str]) -> dict[str, dict[str, str]]:
    """``["optim.steps=256", "saliency.samples=8"]`` -> ``{"optim": {"steps": "256"}, "saliency": {...}}``."""
    parsed: dict[str, dict[str, str]] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        method, dot, option = key.strip().partition(".")
        if not (sep and dot and method and option):
            raise ValueError(f"option {arg!r} must look like <method>.<option>=<value>")
        parsed.setdefault(method, {})[option] = value
    return parsed
