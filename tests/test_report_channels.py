"""MinAtar's observation channels are object layers (Breakout: paddle, ball, trail, brick), not a
stack of frames: the report's legend names them instead of calling them frames oldest to newest."""

from __future__ import annotations

import pytest

from interpret_rl.compare import compare
from interpret_rl.report import strip_legend, write_report


def test_minatar_report_names_its_channels_and_atari_keeps_frames(tmp_path):
    pytest.importorskip("minatar")
    from interpret_rl import a2c

    agent = a2c.train(a2c.config_from_preset("minatar", total_steps=80, num_envs=4, log_every_steps=10**9)).agent
    result = compare(agent, ["saliency"], targets=["action"], frames=2)
    page = write_report(result, tmp_path / "out")["html"].read_text()
    assert "object layers, not frames; left to right: paddle, ball, trail, brick" in page
    assert "oldest to newest" not in page
    assert "oldest to newest" in strip_legend("ALE/Breakout-v5")
