"""Options of methods and metrics (``-o NAME.FIELD=VALUE``) that make no sense stop the command with
one line and exit 2 before a model is loaded, instead of running and reporting "ok" or filling the
report with failures. Each option declares its range (``option_checks.bounded``); every float option
must be finite and every int fit 32 bits, declared or not."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from interpret_rl.methods import build_method, registered_methods
from interpret_rl.metrics import build_metric, registered_metrics


@pytest.mark.parametrize("method, option, message", [
    ("optim", "optim.steps=0", "option optim.steps=0: must be at least 1"),
    ("perturbation", "perturbation.stride=0", "option perturbation.stride=0: must be at least 1"),
    ("integrated-gradients", "integrated-gradients.n_steps=0",
     "option integrated-gradients.n_steps=0: must be at least 1"),
    ("saliency", "saliency.noise=nan", "option saliency.noise=nan: must be a finite number"),
    ("saliency", "saliency.noise=-0.1", "option saliency.noise=-0.1: must be at least 0"),
    ("saliency", "saliency.seed=-1", "option saliency.seed=-1: must be at least 0"),
    ("occlusion", "occlusion.stride=1,0,4", "option occlusion.stride=0: must be at least 1"),
    ("optim", "optim.lr=inf", "option optim.lr=inf: must be a finite number"),
])
def test_a_senseless_method_option_is_one_line_and_exit_2_before_any_work(run, tmp_path, isolated_home, monkeypatch,
                                                                         method, option, message):
    from interpret_rl import registry

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(registry, "load_agent", no_loading)
    out = tmp_path / "out"
    for command in (["compare", "--model", "cartpole-a2c", "--out", str(out)],
                    ["video", "--model", "cartpole-a2c", "--out", str(tmp_path / "v.gif")]):
        if command[0] == "video" and method not in ("saliency", "perturbation", "integrated-gradients", "occlusion"):
            continue  # the video takes attribution methods only
        result = run(*command, "--methods", method, "-o", option)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"Error: {message}"), result.output
    assert not out.exists()


def test_a_senseless_metric_option_is_refused_the_same_way(run, tmp_path, isolated_home):
    result = run("compare", "--model", "cartpole-a2c", "--metrics", "deletion", "-o", "deletion.steps=0",
                 "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and result.output.startswith("Error: option deletion.steps=0: must be at least 1")


def _numeric_fields(options_class):
    hints = typing.get_type_hints(options_class)
    for field in dataclasses.fields(options_class):
        kind = hints[field.name]
        if kind in (int, float):
            yield field.name, kind


def _every_numeric_option():
    for build, registered in ((build_method, registered_methods()), (build_metric, registered_metrics())):
        for name, entry in registered.items():
            for field, kind in _numeric_fields(entry.Options):
                yield pytest.param(build, name, field, kind, id=f"{name}.{field}")


@pytest.mark.parametrize("build, name, field, kind", list(_every_numeric_option()))
def test_every_numeric_option_of_every_method_and_metric_refuses_nan_and_overflow(build, name, field, kind):
    for bad in (["nan", "inf", "-inf"] if kind is float else [str(2**40), str(-(2**40))]):
        with pytest.raises(ValueError, match=f"option {name}.{field}="):
            build(name, {field: bad})
    default = getattr(build(name, {}).options, field)
    assert getattr(build(name, {field: str(default)}).options, field) == default  # the default is in range
