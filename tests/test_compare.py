"""compare(): every method on the same targets and observations; a failing or misbehaving method is
recorded in its own cells and the others still complete; the report files and observation files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np
import pytest
import torch

from interpret_rl import compare
from interpret_rl.compare import prepare_methods
from interpret_rl.hookspecs import hookimpl
from interpret_rl.methods import Method, build_method
from interpret_rl.names import UnknownNameError
from interpret_rl.observations import collect_observations, load_observations, save_observations
from interpret_rl.plugin_manager import get_plugin_manager
from interpret_rl.report import check_output_dir, write_report
from interpret_rl.targets import TargetError, parse_target

FAST_OPTIM = {"optim": {"steps": "4", "pool": "0"}}


class Failing(Method):
    name = "failing"
    description = "always raises (test method)"
    kind = "attribution"

    def explain(self, agent, target, observations):
        raise RuntimeError("deliberate failure\nwith a second line that the cell does not keep")


class HookLeaker(Method):
    name = "hook-leaker"
    description = "leaves a forward hook on conv1 (test method)"

    def explain(self, agent, target, observations):
        agent.network.get_submodule("trunk.conv1").register_forward_hook(lambda *args: None)
        return self.explanation(target, torch.zeros_like(observations))


class WeightChanger(Method):
    name = "weight-changer"
    description = "adds 1 to the policy bias (test method)"

    def explain(self, agent, target, observations):
        with torch.no_grad():
            agent.network.get_submodule("policy").bias += 1.0
        return self.explanation(target, torch.zeros_like(observations))


class InputMutator(Method):
    name = "input-mutator"
    description = "zeroes its input in place (test method)"

    def explain(self, agent, target, observations):
        observations.zero_()
        return self.explanation(target, torch.zeros_like(observations))


class NanExtras(Method):
    name = "nan-extras"
    description = "a valid map with a NaN in its extras (test method)"

    @dataclass
    class Options:
        seed: int = 0

    def explain(self, agent, target, observations):
        return self.explanation(target, torch.ones_like(observations), note=float("nan"))


class ThrowawayPlugin:
    @staticmethod
    @hookimpl
    def register_methods(register):
        register(Failing)
        register(NanExtras)


@pytest.fixture
def throwaway_plugin():
    pm = get_plugin_manager()
    pm.register(ThrowawayPlugin, name="throwaway-compare")
    yield
    pm.unregister(name="throwaway-compare")


def test_failing_method_is_recorded_and_the_others_complete(cnn_agent, atari_observations, throwaway_plugin):
    result = compare(cnn_agent, ["saliency", "failing", "optim"], targets=["action", "value", "conv3:5"],
                     observations=atari_observations, options=FAST_OPTIM)
    assert [t.spec for t in result.targets] == ["action", "value", "trunk.conv3:5"]
    assert torch.equal(result.observations, atari_observations)
    for target in result.targets:
        failed = result.cell("failing", target.spec)
        assert failed.error == "RuntimeError: deliberate failure" and failed.explanation is None
        saliency = result.cell("saliency", target.spec)
        assert saliency.ok and saliency.explanation.values.shape == atari_observations.shape
        # the very observations and target every method got: saliency run directly agrees bit for bit
        direct = build_method("saliency").explain(cnn_agent, target, atari_observations)
        assert torch.equal(saliency.explanation.values, direct.values)
        optim = result.cell("optim", target.spec)
        assert optim.ok and optim.batched and optim.explanation.values.shape == (1, 4, 84, 84)
        assert len(optim.explanation.extras["dataset_examples"]) == 3
    assert {m.name: m.plugin for m in result.methods} == {
        "saliency": "saliency", "failing": "throwaway-compare", "optim": "optim"}
    assert result.method_errors("failing") and not result.method_errors("saliency")


def test_contract_breaches_become_cell_errors_and_are_undone(cnn_agent, atari_observations):
    before = {k: v.clone() for k, v in cnn_agent.network.state_dict().items()}
    reference = build_method("saliency").explain(cnn_agent, parse_target("value", cnn_agent), atari_observations)
    result = compare(cnn_agent, [HookLeaker(), WeightChanger(), InputMutator(), "saliency"], targets=["value"],
                     observations=atari_observations)
    assert "forward hook on trunk.conv1" in result.cell("hook-leaker", "value").error
    assert "changed weights policy.bias" in result.cell("weight-changer", "value").error
    assert "modified its input" in result.cell("input-mutator", "value").error
    # undone: the method after them explains the model and observations as they were found
    assert torch.equal(result.cell("saliency", "value").explanation.values, reference.values)
    assert all(not m._forward_hooks for m in cnn_agent.network.modules())
    after = cnn_agent.network.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert result.methods[0].plugin.endswith("(not registered)")


@pytest.mark.slow
def test_report_files_and_results_json(cnn_agent, atari_observations, throwaway_plugin, tmp_path):
    result = compare(cnn_agent, ["saliency", "optim", "failing", "nan-extras"], targets=["action:FIRE", "value"],
                     observations=atari_observations[:2], options=FAST_OPTIM, seed=7)
    paths = write_report(result, tmp_path / "new" / "report")
    assert set(paths) == {"grid", "html", "json", "observations"}
    assert paths["grid"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def no_nan(text):
        raise AssertionError(f"{text} in results.json")

    data = json.loads(paths["json"].read_text(), parse_constant=no_nan)
    assert data["seed"] == 7 and data["observations"]["count"] == 2
    for method in ("saliency", "optim", "failing", "nan-extras"):
        for target in ("action:FIRE", "value"):
            cell = data["results"][method][target]
            assert cell["seconds"] >= 0
            if method == "failing":
                assert not cell["ok"] and cell["error"].startswith("RuntimeError") and cell["stats"] == {}
            else:
                assert cell["ok"] and {"min", "max", "mean", "abs_mean"} <= set(cell["stats"])
                assert len(cell["stats"]["abs_mean_per_frame"]) == 4
    assert data["results"]["nan-extras"]["value"]["extras"]["note"] is None  # NaN -> null
    assert "max_real_activation" in data["results"]["optim"]["value"]["extras"]
    assert data["versions"]["torch"] == version("torch") and data["versions"]["captum"] == version("captum")
    assert data["model_sha256"] is None  # a fresh agent, never saved
    page = paths["html"].read_text()
    assert "RuntimeError: deliberate failure" in page and "seed" in page
    assert page.count("<img ") == page.count('src="data:image/png;base64,') + page.count("src='data:image/png;base64,")
    assert "http://" not in page and "https://" not in page  # self-contained
    assert torch.equal(load_observations(paths["observations"], (4, 84, 84)), atari_observations[:2])


@pytest.mark.slow
def test_vector_observations_report(mlp_agent, tmp_path):
    result = compare(mlp_agent, ["saliency", "optim", "gradcam"], frames=2, options=FAST_OPTIM)
    assert result.cell("gradcam", "value").error.startswith("NotApplicableError")
    assert result.cell("saliency", "value").explanation.values.shape == (2, 4)
    paths = write_report(result, tmp_path)
    assert paths["grid"].stat().st_size > 1000 and "NotApplicableError" in paths["html"].read_text()


def test_same_seed_same_observations(mlp_agent, cnn_agent):
    first, again = collect_observations(mlp_agent, 3, seed=5), collect_observations(mlp_agent, 3, seed=5)
    assert first.shape == (3, 4) and first.dtype == torch.float32 and torch.equal(first, again)
    assert not torch.equal(first, collect_observations(mlp_agent, 3, seed=6))
    assert len({tuple(row.tolist()) for row in first}) == 3  # spread out, not one state repeated
    frames = collect_observations(cnn_agent, 2, seed=1, warmup=4, stride=3)
    assert frames.shape == (2, 4, 84, 84) and 0 <= frames.min() and frames.max() <= 255
    assert torch.equal(frames, collect_observations(cnn_agent, 2, seed=1, warmup=4, stride=3))
    one = compare(mlp_agent, ["saliency"], frames=2, seed=3)
    two = compare(mlp_agent, ["saliency"], frames=2, seed=3)
    assert torch.equal(one.observations, two.observations)


def test_bad_requests_raise_before_any_work(mlp_agent, monkeypatch):
    import importlib

    def no_collecting(*args, **kwargs):
        raise AssertionError("observations were collected for a request that cannot work")

    monkeypatch.setattr(importlib.import_module("interpret_rl.compare"), "collect_with_ground_truth", no_collecting)
    with pytest.raises(UnknownNameError, match="did you mean saliency"):
        compare(mlp_agent, ["salency"])
    with pytest.raises(TargetError, match="unknown layer"):
        compare(mlp_agent, ["saliency"], targets=["conv9:1"])
    with pytest.raises(ValueError, match="not among the compared methods"):
        compare(mlp_agent, ["saliency"], options={"optim": {"steps": "4"}})
    with pytest.raises(ValueError, match="unknown option"):
        compare(mlp_agent, ["optim"], options={"optim": {"stepz": "4"}})
    with pytest.raises(ValueError, match="more than once"):
        prepare_methods(["saliency", "saliency"])
    with pytest.raises(ValueError, match="frames must be at least 1"):
        compare(mlp_agent, ["saliency"], frames=0)
    with pytest.raises(ValueError, match=r"expected shape \(N, 4\) for this agent, got \(2, 3\)"):
        compare(mlp_agent, ["saliency"], observations=torch.zeros(2, 3))


def test_observation_files(tmp_path):
    path = save_observations(tmp_path / "obs.npz", torch.arange(8.0).view(2, 4))
    assert torch.equal(load_observations(path, (4,)), torch.arange(8.0).view(2, 4))
    with pytest.raises(ValueError, match=r"expected shape \(N, 4, 84, 84\) for this agent, got \(2, 4\)"):
        load_observations(path, (4, 84, 84))
    np.savez(tmp_path / "other.npz", frames=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no array 'observations'.*found: frames"):
        load_observations(tmp_path / "other.npz")
    np.savez(tmp_path / "objects.npz", observations=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz"):  # an object array would need unpickling
        load_observations(tmp_path / "objects.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match="text.npz"):
        load_observations(tmp_path / "text.npz")


def test_check_output_dir(tmp_path):
    missing = tmp_path / "a" / "b"
    assert check_output_dir(missing) == missing and not missing.exists()  # checked, not created
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="lies under the file"):
        check_output_dir(tmp_path / "file" / "sub")
