"""`interpret-rl import`: agents trained by stable-baselines3 and CleanRL-style state dicts become
registry models whose outputs equal the originals', and nothing pickled in a file is ever run.

The SB3 agents are trained here for a few hundred steps (so every layer has moved off its
initialisation, and a DQN's online and target networks differ); outputs are compared on real
observations of the environment, through the saved registry entry (safetensors + meta.json).
"""

from __future__ import annotations

import base64
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from interpret_rl import registry
from interpret_rl.cli import cli
from interpret_rl.envs import make_vector_env
from interpret_rl.importing.safe_read import ImportRefusedError, check_pickle_globals

sb3 = pytest.importorskip("stable_baselines3")
sb3_contrib = pytest.importorskip("sb3_contrib")

TOLERANCE = 1e-6


def run(*args: str):
    return CliRunner().invoke(cli, ["import", *args])


def env_observations(env_id: str, steps: int) -> np.ndarray:
    """Observations of our environment under random actions (uint8 frames for Atari)."""
    envs = make_vector_env(env_id, 2, for_training=False, num_threads=1)
    rng = np.random.default_rng(0)
    try:
        seen = [envs.reset(seed=0)]
        for _ in range(steps):
            seen.append(envs.step(rng.integers(0, envs.single_action_space.n, size=2)).obs)
    finally:
        envs.close()
    return np.concatenate(seen)


def sb3_outputs(model, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(action outputs, value) as SB3 computes them: raw logits and V for actor-critics, Q and
    max Q for DQN, the mean over quantiles and its max for QR-DQN."""
    policy, x = model.policy, torch.as_tensor(obs)
    with torch.no_grad():
        if isinstance(model, sb3.DQN):
            q = policy.q_net(x)
            return q, q.max(-1).values
        if isinstance(model, sb3_contrib.QRDQN):
            q = policy.quantile_net(x).mean(1)
            return q, q.max(-1).values
        features = policy.extract_features(x)  # (actor's, critic's) when the extractor is not shared
        latent_pi = policy.mlp_extractor.forward_actor(features[0] if isinstance(features, tuple) else features)
        return policy.action_net(latent_pi), policy.predict_values(x)[:, 0]


def assert_same_outputs(name: str, reference: tuple[torch.Tensor, torch.Tensor], obs: np.ndarray,
                        tolerance: float = TOLERANCE) -> None:
    agent = registry.load_agent(name)
    with torch.no_grad():
        outputs, value = agent.network(torch.as_tensor(obs))
    assert outputs.shape == reference[0].shape and value.shape == reference[1].shape
    assert float((outputs - reference[0]).abs().max()) <= tolerance
    assert float((value - reference[1]).abs().max()) <= tolerance


CARTPOLE_AGENTS = {
    "a2c": lambda: sb3.A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0),
    "ppo": lambda: sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0),
    "ppo-relu-uneven": lambda: sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0,
                                       policy_kwargs={"activation_fn": nn.ReLU,
                                                      "net_arch": {"pi": [32], "vf": [16, 8]}}),
    "dqn": lambda: sb3.DQN("MlpPolicy", "CartPole-v1", learning_starts=50, train_freq=1, seed=0),
    "qrdqn": lambda: sb3_contrib.QRDQN("MlpPolicy", "CartPole-v1", learning_starts=50, train_freq=1, seed=0,
                                       policy_kwargs={"n_quantiles": 25}),
}


@pytest.mark.parametrize("kind", list(CARTPOLE_AGENTS))
def test_sb3_cartpole_agent_imports_with_equal_outputs(kind, tmp_path):
    model = CARTPOLE_AGENTS[kind]()
    model.learn(256)
    model.save(tmp_path / "agent.zip")
    result = run(str(tmp_path / "agent.zip"), "--name", "imported")
    assert result.exit_code == 0, result.output
    obs = env_observations("CartPole-v1", 60)
    assert_same_outputs("imported", sb3_outputs(model, obs), obs)
    meta = registry.read_meta(registry.resolve("imported"))
    source = meta["imported_from"]
    assert source["format"] == "stable-baselines3" and source["sb3_version"] == sb3.__version__
    assert meta["algo"] == kind.split("-")[0] and meta["steps_trained"] == model.num_timesteps
    assert source["sha256"] == __import__("hashlib").sha256((tmp_path / "agent.zip").read_bytes()).hexdigest()


def test_dqn_imports_the_online_network_not_the_target(tmp_path):
    model = CARTPOLE_AGENTS["dqn"]()
    model.learn(256)  # the target refreshes every 10,000 steps: still at its initial weights
    model.save(tmp_path / "dqn.zip")
    assert run(str(tmp_path / "dqn.zip"), "--name", "dqn").exit_code == 0
    obs = env_observations("CartPole-v1", 20)
    with torch.no_grad():
        online, target = model.policy.q_net(torch.as_tensor(obs)), model.policy.q_net_target(torch.as_tensor(obs))
        ours = registry.load_agent("dqn").network(torch.as_tensor(obs))[0]
    assert float((online - target).abs().max()) > 1e-3  # the two differ, so the check below means something
    assert float((ours - online).abs().max()) <= TOLERANCE


def sb3_breakout_env():
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    return VecFrameStack(make_atari_env("BreakoutNoFrameskip-v4", n_envs=1, seed=0), n_stack=4)


# Our CNNs convolve in channels-last memory order (1.6x faster on CPU): the same sums in another
# order. On 0..1 inputs the outputs stay within 1e-6 of SB3's; on raw 0..255 inputs
# (normalize_images=False) activations are 255x larger and so is float32 rounding: measured
# 3.8e-6 on logits of magnitude 17 (0.0 in contiguous order), so that case is held to 1e-6 relative.
BREAKOUT_AGENTS = {
    "ppo-cnn": lambda env: sb3.PPO("CnnPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0),
    "ppo-cnn-separate-unscaled": lambda env: sb3.PPO(
        "CnnPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0,
        policy_kwargs={"share_features_extractor": False, "normalize_images": False}),
    "qrdqn-cnn": lambda env: sb3_contrib.QRDQN("CnnPolicy", env, buffer_size=200, learning_starts=16, seed=0,
                                               policy_kwargs={"n_quantiles": 8}),
}


@pytest.mark.slow  # about 15 s each on a loaded 2-core machine (a CNN trained 64 steps)
@pytest.mark.parametrize("kind", list(BREAKOUT_AGENTS))
def test_sb3_breakout_cnn_agent_imports_with_equal_outputs(kind, tmp_path):
    model = BREAKOUT_AGENTS[kind](sb3_breakout_env())
    model.learn(64)
    model.save(tmp_path / "breakout.zip")
    result = run(str(tmp_path / "breakout.zip"), "--name", "breakout", "--env", "ALE/Breakout-v5")
    assert result.exit_code == 0, result.output
    obs = env_observations("ALE/Breakout-v5", 30)  # our uint8 (B, 4, 84, 84) frames, as SB3's policy takes them
    assert obs.dtype == np.uint8
    reference = sb3_outputs(model, obs)
    scale = max(1.0, float(reference[0].abs().max()), float(reference[1].abs().max())) if "unscaled" in kind else 1.0
    assert_same_outputs("breakout", reference, obs, tolerance=TOLERANCE * scale)


# CleanRL's networks, as its single-file scripts build them (ppo_atari.py, dqn_atari.py, ppo.py, dqn.py).
def nature_cnn_layers() -> list[nn.Module]:
    return [nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU()]


class CleanRLPPOAtari(nn.Module):
    def __init__(self, n_actions: int):
        super().__init__()
        self.network = nn.Sequential(*nature_cnn_layers())
        self.actor, self.critic = nn.Linear(512, n_actions), nn.Linear(512, 1)

    def forward(self, x):
        hidden = self.network(x / 255.0)
        return self.actor(hidden), self.critic(hidden)[:, 0]


class CleanRLDQNAtari(nn.Module):
    def __init__(self, n_actions: int):
        super().__init__()
        self.network = nn.Sequential(*nature_cnn_layers(), nn.Linear(512, n_actions))

    def forward(self, x):
        q = self.network(x / 255.0)
        return q, q.max(-1).values


class CleanRLPPO(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))
        self.actor = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                   nn.Linear(64, n_actions))

    def forward(self, x):
        return self.actor(x), self.critic(x)[:, 0]


class CleanRLDQN(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(obs_dim, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                     nn.Linear(84, n_actions))

    def forward(self, x):
        q = self.network(x)
        return q, q.max(-1).values


CLEANRL = {
    "cleanrl-ppo-atari": ("ALE/Breakout-v5", lambda: CleanRLPPOAtari(4)),
    "cleanrl-dqn-atari": ("ALE/Breakout-v5", lambda: CleanRLDQNAtari(4)),
    "cleanrl-ppo": ("CartPole-v1", lambda: CleanRLPPO(4, 2)),
    "cleanrl-dqn": ("CartPole-v1", lambda: CleanRLDQN(4, 2)),
}


@pytest.mark.parametrize("layout", [pytest.param(k, marks=pytest.mark.slow) if k.endswith("-atari") else k
                                    for k in CLEANRL])  # the Atari ones: 3 s of CPU each
def test_cleanrl_state_dict_imports_with_equal_outputs(layout, tmp_path):
    env_id, make = CLEANRL[layout]
    torch.manual_seed(0)
    network = make()
    torch.save(network.state_dict(), tmp_path / "agent.cleanrl_model")
    result = run(str(tmp_path / "agent.cleanrl_model"), "--name", "named", "--architecture", layout, "--env", env_id)
    assert result.exit_code == 0, result.output
    unnamed = run(str(tmp_path / "agent.cleanrl_model"), "--name", "found")  # layout and env from the weights alone
    assert unnamed.exit_code == 0, unnamed.output
    assert registry.read_meta(registry.resolve("found"))["imported_from"]["layout"] == layout
    obs = env_observations(env_id, 20)
    with torch.no_grad():
        reference = network(torch.as_tensor(obs).float())
    for name in ("named", "found"):
        assert_same_outputs(name, reference, obs)


def test_state_dict_under_the_wrong_layout_is_refused(tmp_path):
    torch.save(CleanRLPPOAtari(4).state_dict(), tmp_path / "ppo.pt")
    result = run(str(tmp_path / "ppo.pt"), "--name", "x", "--architecture", "cleanrl-dqn-atari")
    assert result.exit_code == 2 and "network.9" in result.output
    assert not (registry.user_models_dir() / "x").exists()


class WritesAFile:
    """Unpickling this object creates ``path``: what a malicious model file would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def tiny_sb3_zip(tmp_path) -> bytes:
    model = sb3.A2C("MlpPolicy", "CartPole-v1", n_steps=8, seed=0)
    model.save(tmp_path / "tiny.zip")
    return (tmp_path / "tiny.zip").read_bytes()


def rezip(original: bytes, replace: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, replace.get(name, src.read(name)))
    return out.getvalue()


def test_pickle_payload_in_policy_pth_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "payload-ran"
    buffer = io.BytesIO()
    torch.save({"action_net.weight": torch.zeros(2, 64), "hook": WritesAFile(marker)}, buffer)
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)  # the payload is live: loading it runs it
    assert marker.exists()
    marker.unlink()
    (tmp_path / "evil.zip").write_bytes(rezip(tiny_sb3_zip(tmp_path), {"policy.pth": buffer.getvalue()}))
    result = run(str(tmp_path / "evil.zip"), "--name", "evil")
    assert result.exit_code == 2 and "refused" in result.output and len(result.output.strip().splitlines()) == 1
    assert not marker.exists()
    assert not (registry.user_models_dir() / "evil").exists()


def test_pickle_payload_in_data_json_is_never_decoded(tmp_path):
    marker = tmp_path / "payload-ran"
    payload = base64.b64encode(pickle.dumps(WritesAFile(marker))).decode()
    pickle.loads(base64.b64decode(payload))  # live, as SB3's own load would find it
    assert marker.exists()
    marker.unlink()
    original = tiny_sb3_zip(tmp_path)
    data = json.loads(zipfile.ZipFile(io.BytesIO(original)).read("data"))
    for field in ("policy_class", "observation_space", "action_space", "policy_kwargs"):
        if isinstance(data[field], dict):
            data[field][":serialized:"] = payload
    (tmp_path / "evil.zip").write_bytes(rezip(original, {"data": json.dumps(data).encode()}))
    result = run(str(tmp_path / "evil.zip"), "--name", "read-only-the-text")
    assert result.exit_code == 0, result.output  # the readable fields suffice; the pickles are ignored
    assert not marker.exists()


def test_allowlist_refuses_a_pickle_naming_anything_but_tensors():
    check_pickle_globals(pickle.dumps({"w": 1}, protocol=2), "ok")
    with pytest.raises(ImportRefusedError, match="open"):
        check_pickle_globals(pickle.dumps(WritesAFile("/nonexistent/x"), protocol=2), "evil")


def bad_files(tmp_path) -> dict[str, tuple[bytes, str]]:
    original = tiny_sb3_zip(tmp_path)
    data = json.loads(zipfile.ZipFile(io.BytesIO(original)).read("data"))
    data["policy_class"]["__init__"] = "<function MultiInputActorCriticPolicy.__init__ at 0x7f0>"
    no_policy = io.BytesIO()
    with zipfile.ZipFile(no_policy, "w") as archive:
        archive.writestr("data", "{}")
    unknown = io.BytesIO()
    torch.save({"encoder.weight": torch.zeros(3, 3)}, unknown)
    return {
        "empty file": (b"", "an empty file"),
        "not a zip": (b"hello, not a model\n", "neither a zip"),
        "zip without policy.pth": (no_policy.getvalue(), "no policy.pth"),
        "unknown policy class": (rezip(original, {"data": json.dumps(data).encode()}),
                                 "unknown policy class stable_baselines3.common.policies.MultiInputActorCriticPolicy"),
        "state dict of no known layout": (unknown.getvalue(), "fit no known layout"),
    }


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(tmp_path):
    for label, (content, message) in bad_files(tmp_path).items():
        path = tmp_path / "bad-file"
        path.write_bytes(content)
        result = run(str(path), "--name", "bad")
        assert result.exit_code == 2, (label, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, (label, result.output)
        assert "Traceback" not in result.output
        assert not (registry.user_models_dir() / "bad").exists(), label
    missing = run(str(tmp_path / "missing.zip"), "--name", "bad")
    assert missing.exit_code == 2 and "no such file" in missing.output
    directory = run(str(tmp_path), "--name", "bad")
    assert directory.exit_code == 2 and "a directory; give the model file" in directory.output


def deflated(original: bytes) -> bytes:
    """The same zip with every member deflated (torch reads those too)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    return out.getvalue()


def test_torch_file_that_torch_would_read_otherwise_than_checked_is_refused(tmp_path):
    checked, legacy = io.BytesIO(), io.BytesIO()
    zeros = {k: torch.zeros_like(v) for k, v in CleanRLDQN(4, 2).state_dict().items()}  # zeros: they compress
    torch.save(zeros, checked)
    torch.save(zeros, legacy, _use_new_zipfile_serialization=False)
    # torch unpickles the legacy bytes in front; Python's zipfile finds the zip behind them
    unchecked = legacy.getvalue() + checked.getvalue()
    assert zipfile.is_zipfile(io.BytesIO(unchecked)) and torch.load(io.BytesIO(unchecked), weights_only=True)
    # torch inflates compressed members: a few kB could claim gigabytes of tensor
    inflating = deflated(checked.getvalue())
    assert len(inflating) < len(checked.getvalue()) / 2 and torch.load(io.BytesIO(inflating), weights_only=True)
    for label, content, message in [("legacy pickle in front", unchecked, "bytes precede the zip"),
                                    ("deflated members", inflating, "is compressed")]:
        (tmp_path / "model.pt").write_bytes(content)
        result = run(str(tmp_path / "model.pt"), "--name", "bad")
        assert result.exit_code == 2 and message in result.output, (label, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not (registry.user_models_dir() / "bad").exists()


def test_member_inflating_past_the_limit_is_refused_on_the_bytes_read(tmp_path, monkeypatch):
    monkeypatch.setattr("interpret_rl.importing.sb3.MAX_MEMBER_BYTES", 1 << 20)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(tiny_sb3_zip(tmp_path))) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            if name != "policy.pth":
                dst.writestr(name, src.read(name))
        dst.writestr("policy.pth", bytes(2 << 20), compress_type=zipfile.ZIP_DEFLATED)  # 2 MiB in about 2 kB
    (tmp_path / "bomb.zip").write_bytes(out.getvalue())
    assert (tmp_path / "bomb.zip").stat().st_size < 1 << 16
    result = run(str(tmp_path / "bomb.zip"), "--name", "bomb")
    assert result.exit_code == 2 and "policy.pth is larger than 1,048,576 bytes" in result.output, result.output


def test_existing_name_needs_force_and_force_replaces_the_whole_model(tmp_path):
    (tmp_path / "a.zip").write_bytes(tiny_sb3_zip(tmp_path))
    assert run(str(tmp_path / "a.zip"), "--name", "taken").exit_code == 0
    path = registry.resolve("taken")
    registry.update_meta(path, evaluation={"mean": 9.0, "std": 1.0, "episodes": 1, "scores": [9.0]})
    again = run(str(tmp_path / "a.zip"), "--name", "taken")
    assert again.exit_code == 2 and "--force" in again.output
    torch.manual_seed(1)
    torch.save(CleanRLDQN(4, 2).state_dict(), tmp_path / "dqn.pt")
    assert run(str(tmp_path / "dqn.pt"), "--name", "taken", "--force").exit_code == 0
    meta = registry.read_meta(path)
    assert meta["algo"] == "dqn" and meta["imported_from"]["layout"] == "cleanrl-dqn"
    assert "evaluation" not in meta  # the replaced model's score is not the new one's


def test_import_under_a_bundled_name_says_it_hides_the_bundled_model(tmp_path):
    (tmp_path / "a.zip").write_bytes(tiny_sb3_zip(tmp_path))
    result = run(str(tmp_path / "a.zip"), "--name", "cartpole-a2c")
    assert result.exit_code == 0, result.output
    assert "the bundled cartpole-a2c is hidden" in result.output
    assert registry.resolve("cartpole-a2c") == registry.user_models_dir() / "cartpole-a2c"
    assert "hidden" not in run(str(tmp_path / "a.zip"), "--name", "mine").output


def test_imported_agent_works_with_evaluate(tmp_path):
    model = CARTPOLE_AGENTS["ppo"]()
    model.save(tmp_path / "ppo.zip")
    assert run(str(tmp_path / "ppo.zip"), "--name", "sb3-ppo").exit_code == 0
    result = CliRunner().invoke(cli, ["evaluate", "sb3-ppo", "--episodes", "2"])
    assert result.exit_code == 0, result.output
    assert "sb3-ppo: CartPole-v1, 2 episodes" in result.output


def test_import_into_a_model_another_process_is_writing_is_refused(tmp_path):
    (tmp_path / "a.zip").write_bytes(tiny_sb3_zip(tmp_path))
    with registry.writer_lock(registry.user_models_dir() / "busy"):  # as a training run holds it
        result = run(str(tmp_path / "a.zip"), "--name", "busy")
    assert result.exit_code == 2 and "another interpret-rl process" in result.output
    assert not (registry.user_models_dir() / "busy" / registry.META).exists()
