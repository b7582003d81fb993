"""The method registry: plugins add methods through pluggy, clashes and typos give clear errors,
a broken plugin costs one warning, options convert from CLI text."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from typing import Literal

import pytest
import torch

from interpret_rl import plugin_manager
from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import (
    Method,
    build_method,
    get_method,
    method_plugins,
    parse_option_args,
    registered_methods,
)
from interpret_rl.names import DuplicateNameError, UnknownNameError
from interpret_rl.plugin_manager import PluginLoadWarning, get_plugin_manager, reset_plugin_manager
from interpret_rl.targets import parse_target

BUILTINS = {"saliency", "perturbation", "integrated-gradients", "gradcam", "occlusion", "deeplift",
            "gradient-shap", "optim"}


class Constant(Method):
    """Attributes the same value everywhere (a throwaway method for these tests)."""

    name = "constant"
    description = "the same number everywhere"
    kind = "attribution"

    @dataclass
    class Options:
        value: float = 1.0
        flag: bool = False
        count: int = 3
        label: str = "x"
        window: tuple[int, ...] = (1, 8, 8)
        pair: tuple[int, float] = (1, 0.5)
        limit: int | None = None
        mode: Literal["fast", "exact"] = "fast"

    def explain(self, agent, target, observations):
        return self.explanation(target, torch.full(observations.shape, self.options.value))


class ThrowawayPlugin:
    @staticmethod
    @hookimpl
    def register_methods(register):
        register(Constant)


class ClashingPlugin:
    @staticmethod
    @hookimpl
    def register_methods(register):
        register(type("FakeSaliency", (Constant,), {"name": "saliency"}))


def test_builtins_are_ordinary_entry_point_plugins():
    assert BUILTINS <= set(registered_methods())
    owners = method_plugins()
    assert owners["saliency"] == "saliency" and owners["gradcam"] == "captum_methods" and owners["optim"] == "optim"


def test_throwaway_plugin_adds_a_method(registered, mlp_agent):
    registered(ThrowawayPlugin, "throwaway")
    assert get_method("constant") is Constant and method_plugins()["constant"] == "throwaway"
    result = build_method("constant", {"value": "2.5"}).explain(mlp_agent, parse_target("value", mlp_agent),
                                                                torch.zeros(2, 4))
    assert result.method == "constant" and result.target == "value" and (result.values == 2.5).all()


def test_gone_after_unregister():
    get_plugin_manager().register(ThrowawayPlugin, name="throwaway")
    assert "constant" in registered_methods()
    get_plugin_manager().unregister(name="throwaway")
    assert "constant" not in registered_methods()


def test_duplicate_name_names_both_plugins_and_keeps_the_first(registered, monkeypatch):
    registered(ClashingPlugin, "clasher")
    with pytest.warns(PluginLoadWarning, match="'saliency' is registered by both plugin 'saliency' and "
                                               "plugin 'clasher'; keeping 'saliency'"):
        assert method_plugins()["saliency"] == "saliency"
    monkeypatch.setenv(plugin_manager.STRICT_ENV, "1")  # plugin authors can make it fatal
    with pytest.raises(DuplicateNameError, match="'clasher'"):
        registered_methods()


def test_invalid_method_class_is_refused(registered):
    class NoKind(Constant):
        kind = "picture"

    class BadPlugin:
        @staticmethod
        @hookimpl
        def register_methods(register):
            register(NoKind)

    registered(BadPlugin, "bad")
    with pytest.raises(TypeError, match="plugin 'bad' registered an invalid method .* kind must be one of"):
        registered_methods()


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownNameError) as error:
        get_method("salency")
    assert isinstance(error.value, KeyError)
    assert str(error.value).startswith("unknown method 'salency'; did you mean saliency?")
    with pytest.raises(UnknownNameError, match="unknown method 'xyzzy' \\(available: deeplift, edit, gradcam"):
        get_method("xyzzy")


def test_broken_entry_point_costs_one_warning(monkeypatch):
    real = list(plugin_manager.entry_points(group=plugin_manager.GROUP))
    broken = EntryPoint(name="broken", value="interpret_rl_no_such_module", group=plugin_manager.GROUP)
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [*real, broken])
    monkeypatch.delenv(plugin_manager.STRICT_ENV, raising=False)
    reset_plugin_manager()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            methods = registered_methods()
        load_warnings = [w for w in caught if issubclass(w.category, PluginLoadWarning)]
        assert len(load_warnings) == 1 and "'broken'" in str(load_warnings[0].message)
        assert BUILTINS <= set(methods)
        assert "ModuleNotFoundError" in plugin_manager.load_errors["broken"]
    finally:
        reset_plugin_manager()  # the next test loads the real entry points again


def test_option_text_converts_to_field_types(registered):
    registered(ThrowawayPlugin, "throwaway")
    opts = build_method("constant", {"value": "0.25", "flag": "yes", "count": "7", "label": "a=b",
                                     "window": "(2, 4, 4)", "pair": "3,1.5", "limit": "none"}).options
    assert (opts.value, opts.flag, opts.count, opts.label) == (0.25, True, 7, "a=b")
    assert opts.window == (2, 4, 4) and opts.pair == (3, 1.5) and opts.limit is None
    assert build_method("constant", {"limit": "5", "flag": "off", "window": "1"}).options.limit == 5
    assert build_method("constant", {"mode": "exact"}).options.mode == "exact"
    assert build_method("constant", {"count": 4}).options.count == 4  # typed values pass through
    assert build_method("saliency", {"samples": "8"}).options.samples == 8


@pytest.mark.parametrize("options, message", [
    ({"colour": "red"}, "unknown option 'colour' for method constant; options: value, flag, count, label"),
    ({"count": "many"}, "option constant.count: expected int, got 'many'"),
    ({"flag": "maybe"}, "option constant.flag: expected true or false, got 'maybe'"),
    ({"pair": "1,2,3"}, "option constant.pair: expected 2 comma-separated values"),
    ({"mode": "quick"}, "option constant.mode: expected one of fast, exact, got 'quick'"),
])
def test_bad_options_say_what_is_valid(registered, options, message):
    registered(ThrowawayPlugin, "throwaway")
    with pytest.raises(ValueError, match=message):
        build_method("constant", options)


def test_parse_option_args():
    parsed = parse_option_args(["optim.steps=256", "integrated-gradients.baseline=blur", "optim.lr=0.1",
                                "constant.label=a=b"])
    assert parsed == {"optim": {"steps": "256", "lr": "0.1"}, "integrated-gradients": {"baseline": "blur"},
                      "constant": {"label": "a=b"}}
    for bad in ["steps=256", "optim.steps", ".steps=1", "optim.=1"]:
        with pytest.raises(ValueError, match="must look like <method>.<option>=<value>"):
            parse_option_args([bad])


@pytest.mark.parametrize("value, strict", [("", False), ("0", False), ("false", False), ("off", False),
                                           ("1", True), ("yes", True)])
def test_strict_mode_is_off_for_0_and_false(monkeypatch, value, strict):
    monkeypatch.setenv(plugin_manager.STRICT_ENV, value)
    assert plugin_manager.strict_plugins() is strict


def test_a_misspelled_hook_name_costs_one_warning_and_strict_mode_makes_it_fatal(monkeypatch, tmp_path):
    (tmp_path / "misspelled_plugin.py").write_text(
        "from interpret_rl.hookspecs import hookimpl\n\n\n@hookimpl\ndef register_method(register):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = list(plugin_manager.entry_points(group=plugin_manager.GROUP))
    misspelled = EntryPoint(name="misspelled", value="misspelled_plugin", group=plugin_manager.GROUP)
    monkeypatch.setattr(plugin_manager, "entry_points", lambda group: [*real, misspelled])
    monkeypatch.setenv(plugin_manager.STRICT_ENV, "0")
    reset_plugin_manager()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert BUILTINS <= set(registered_methods())
        messages = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
        assert len(messages) == 1 and "'misspelled'" in messages[0] and "register_method" in messages[0]
        assert get_plugin_manager().get_plugin("misspelled") is None
        monkeypatch.setenv(plugin_manager.STRICT_ENV, "1")
        reset_plugin_manager()
        with pytest.raises(Exception, match="register_method"):
            registered_methods()
    finally:
        reset_plugin_manager()
