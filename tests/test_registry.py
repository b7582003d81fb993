"""Registry: safe round trips, and refusal (one line, path and reason) of anything untrustworthy."""

from __future__ import annotations

import errno
import json
import os
import pickle

import pytest
import torch
from conftest import make_cnn_agent, make_mlp_agent

from interpret_rl import registry
from interpret_rl.registry import ModelLoadError, ModelNotFoundError, SpaceMismatchError


def _saved(agent, name="m"):
    return registry.save_agent(agent, registry.user_models_dir() / name)


def test_round_trip_keeps_weights_bit_identical_and_records_hashes():
    agent = make_cnn_agent(seed=5)
    path = _saved(agent, "cnn")
    loaded = registry.load_agent("cnn")
    original = agent.network.state_dict()
    assert all(torch.equal(original[k], v) for k, v in loaded.network.state_dict().items())
    meta = json.loads((path / "meta.json").read_text())
    assert meta["files"]["model.safetensors"] == registry.sha256_file(path / "model.safetensors")
    assert meta["observation_space"]["shape"] == [4, 84, 84] and meta["architecture"] == "nature-cnn"
    assert "torch" in meta["versions"]
    assert [m.name for m in registry.list_models() if not m.bundled] == ["cnn"]


def test_unknown_name_suggests_close_ones():
    _saved(make_mlp_agent(), "cartpole-mine")
    with pytest.raises(ModelNotFoundError, match="did you mean cartpole-mine"):
        registry.load_agent("cartpole-mien")


def _corrupt(path, how):
    weights = path / "model.safetensors"
    if how == "pickle":
        weights.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "empty":
        weights.write_bytes(b"")
    elif how == "flipped":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))


@pytest.mark.parametrize("how, reason", [
    ("pickle", "sha256"), ("truncated", "sha256"), ("empty", "sha256"), ("flipped", "sha256")])
def test_tampered_weights_are_refused_by_their_hash(how, reason):
    path = _saved(make_mlp_agent())
    _corrupt(path, how)
    with pytest.raises(ModelLoadError, match=reason) as err:
        registry.load_agent("m")
    assert str(path / "model.safetensors") in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("how, reason", [
    ("pickle", "not a valid safetensors"), ("truncated", "not a valid safetensors"), ("empty", "empty file")])
def test_bad_weights_with_a_matching_hash_are_refused_without_unpickling(how, reason, monkeypatch):
    path = _saved(make_mlp_agent())
    _corrupt(path, how)
    registry.update_meta(path, files={"model.safetensors": registry.sha256_file(path / "model.safetensors")})
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("something unpickled"))
    with pytest.raises(ModelLoadError, match=reason):
        registry.load_agent("m")


@pytest.mark.parametrize("field, value, reason", [
    ("steps_trained", "many", "must be int"), ("architecture_args", [1], "must be dict"),
    ("env_id", None, "must be str"), ("format_version", 99, "newer than")])
def test_meta_with_wrong_types_is_refused(field, value, reason):
    path = _saved(make_mlp_agent())
    meta = json.loads((path / "meta.json").read_text())
    meta[field] = value
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match=reason):
        registry.load_agent("m")


def test_meta_that_is_not_json_is_refused():
    path = _saved(make_mlp_agent())
    (path / "meta.json").write_bytes(b"\x80\x04not json")
    with pytest.raises(ModelLoadError, match="unreadable meta.json"):
        registry.load_agent("m")


def test_space_mismatch_is_refused_with_expected_and_actual():
    meta = registry.read_meta(_saved(make_mlp_agent()))
    with pytest.raises(SpaceMismatchError, match=r"observation space of the checkpoint .*\[4\].* does not match"):
        registry.check_spaces(meta, {"type": "Box", "shape": [6], "dtype": "float32"}, {"type": "Discrete", "n": 2})
    with pytest.raises(SpaceMismatchError, match="action space"):
        registry.check_spaces(meta, meta["observation_space"], {"type": "Discrete", "n": 3})


def test_failed_write_leaves_the_previous_checkpoint_loadable_and_no_temp_files(monkeypatch):
    agent = make_mlp_agent()
    path = _saved(agent)
    before = (path / "model.safetensors").read_bytes()
    with torch.no_grad():
        agent.network.policy.weight.add_(1.0)

    real_fdopen = os.fdopen

    class HalfWrittenFile:
        """Writes half the bytes, then fails as a full disk does."""

        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr("interpret_rl.atomic.os.fdopen", HalfWrittenFile)
        registry.save_agent(agent, path)
    assert (path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors"]
    registry.load_agent("m")


def test_invalid_model_names_are_refused():
    for bad in ("", "../escape", "a/b", "-dash-first", "x" * 65):
        with pytest.raises(ValueError, match="invalid model name"):
            registry.check_name(bad)


def test_model_whose_env_has_other_spaces_is_refused_before_weights_are_read(monkeypatch):
    path = _saved(make_cnn_agent(), "bo")
    registry.update_meta(path, env_id="ALE/Pong-v5")  # Pong has 6 actions, the network 4
    monkeypatch.setattr(registry, "_load_tensors", lambda *a: pytest.fail("weights were read"))
    with pytest.raises(SpaceMismatchError, match=r"action space of the checkpoint \{'type': 'Discrete', 'n': 4\} "
                                                 r"does not match the environment's \{'type': 'Discrete', 'n': 6\}"):
        registry.load_agent("bo")



@pytest.mark.parametrize("make, legacy", [
    (make_mlp_agent, {"obs_dim": 4, "n_actions": 2}),
    (make_cnn_agent, {"in_channels": 4, "n_actions": 4}),
])
def test_a_model_saved_before_the_one_constructor_contract_still_loads(make, legacy):
    """meta.json written by interpret-rl 0.1.0 records obs_dim / in_channels (the bundled agents too);
    loading maps them to observation_shape and the same weights give the same outputs."""
    agent = make(seed=3)
    path = _saved(agent, "old")
    meta = json.loads((path / "meta.json").read_text())
    meta["architecture_args"] = legacy
    (path / "meta.json").write_text(json.dumps(meta))
    loaded = registry.load_agent("old", check_env=False)
    assert loaded.architecture_args == {"observation_shape": agent.observation_space["shape"],
                                        "n_actions": legacy["n_actions"]}
    obs = torch.rand(2, *agent.observation_space["shape"]) * 255
    torch.testing.assert_close(loaded.network(obs)[0], agent.network.eval()(obs)[0])
    resaved = json.loads((_saved(loaded, "resaved") / "meta.json").read_text())
    assert "observation_shape" in resaved["architecture_args"] and "obs_dim" not in resaved["architecture_args"]
