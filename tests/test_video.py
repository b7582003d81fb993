"""``interpret-rl video``: explanation videos that play back with the right frames, and bad requests
refused before any work."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from conftest import make_cnn_agent

from interpret_rl import registry
from interpret_rl.methods import Method
from interpret_rl.video import ExplanationFailed, explanation_video, image_panel


def read_frames(path) -> list[np.ndarray]:
    if str(path).endswith(".gif"):
        return [np.asarray(f)[..., :3] for f in imageio.mimread(path)]
    with imageio.get_reader(path) as reader:
        return [np.asarray(f) for f in reader]


def reported_size(output: str) -> tuple[int, int]:
    """``wrote N frames of WxH at ...`` -> (width, height)."""
    width, height = output.split(" frames of ")[1].split()[0].split("x")
    return int(width), int(height)


def test_cartpole_mp4_plays_back_with_one_frame_per_step(run, tmp_path):
    out = tmp_path / "sub" / "cartpole.mp4"
    result = run("video", "--model", "cartpole-a2c", "--methods", "saliency,perturbation", "--steps", "6",
                 "--out", str(out), "--seed", "3")
    assert result.exit_code == 0, result.output
    frames = read_frames(out)
    width, height = reported_size(result.output)
    assert len(frames) == 6 and frames[0].shape == (height, width, 3)
    assert width > 2 * 300  # two panels side by side
    assert any(not np.array_equal(frames[0], f) for f in frames[1:])  # the game moves
    assert not list(out.parent.glob(".*partial*"))  # the temporary file was renamed


@pytest.mark.slow
def test_breakout_gif_from_a_saved_cnn_agent(run, tmp_path):
    registry.save_agent(make_cnn_agent(), registry.user_models_dir() / "bo")
    out = tmp_path / "bo.gif"
    result = run("video", "--model", "bo", "--methods", "perturbation,saliency", "--steps", "3", "--out", str(out),
                 "-o", "perturbation.stride=7")
    assert result.exit_code == 0, result.output
    frames = read_frames(out)
    width, height = reported_size(result.output)
    assert len(frames) == 3 and frames[0].shape == (height, width, 3)
    assert width > 2 * 84 * 3  # two upscaled 84x84 frames side by side


def test_actor_map_is_blue_and_critic_map_red():
    observation = np.full((4, 84, 84), 50.0, dtype=np.float32)
    actor, critic = np.zeros_like(observation), np.zeros_like(observation)
    actor[:, 10:14, 10:14] = 1.0  # top left
    critic[:, 70:74, 70:74] = -3.0  # bottom right; the sign does not matter, the magnitude does
    panel, maxima = image_panel(observation, actor, critic)
    assert panel.shape == (252, 252, 3) and maxima == (4.0, 12.0)
    top_left, bottom_right, elsewhere = panel[36, 36], panel[216, 216], panel[126, 126]
    assert top_left[2] == 255 and top_left[0] == elsewhere[0]
    assert bottom_right[0] == 255 and bottom_right[2] == elsewhere[2]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command started working on a request it should have refused")

    monkeypatch.setattr(registry, "load_agent", refuse)


@pytest.mark.parametrize("args, message", [
    (["--methods", "saliencyy"], "saliency"),
    (["--steps", "0"], "--steps 0"),
    (["--out", "video.avi"], "must end in .mp4 or .gif"),
    (["--methods", "optim"], "attribution methods only"),
    (["-o", "saliency.nope=1"], "nope"),
])
def test_bad_requests_fail_in_one_line_before_any_work(run, no_work, tmp_path, args, message):
    result = run("video", "--out", str(tmp_path / "v.mp4"), *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


class FailsLater(Method):
    """Explains the first two observations, then raises."""

    name = "fails-later"
    description = "test method"
    kind = "attribution"
    calls = 0

    def explain(self, agent, target, observations):
        FailsLater.calls += 1
        if FailsLater.calls > 4:
            raise RuntimeError("out of luck\nsecond line")
        return self.explanation(target, torch.zeros_like(observations))


def test_a_failing_method_names_the_step_and_leaves_no_file(tmp_path):
    agent = registry.load_agent("cartpole-a2c")
    out = tmp_path / "v.mp4"
    expected = r"fails-later failed on target action at step 2: RuntimeError: out of luck$"
    with pytest.raises(ExplanationFailed, match=expected):
        explanation_video(agent, [FailsLater()], 5, out)
    assert list(tmp_path.iterdir()) == []


def test_a_method_that_does_not_apply_to_the_agent_exits_2_without_a_file(run, tmp_path):
    result = run("video", "--model", "cartpole-a2c", "--methods", "gradcam", "--steps", "3",
                 "--out", str(tmp_path / "v.mp4"))
    assert result.exit_code == 2 and "gradcam needs a convolutional layer" in result.output
    assert list(tmp_path.iterdir()) == []


def test_evaluate_records_into_a_folder_it_creates(run, tmp_path):
    """As `video --out`, `evaluate --record` makes a missing folder instead of refusing it."""
    video = tmp_path / "new" / "deeper" / "episode.gif"
    result = run("evaluate", "cartpole-a2c", "--episodes", "1", "--record", str(video))
    assert result.exit_code == 0, result.output
    assert video.is_file() and video.read_bytes()[:6] in (b"GIF87a", b"GIF89a")
