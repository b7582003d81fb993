"""The atlas: per unit the right real states, receptive fields from the architecture, and a page
that opens in a real browser (headless Chromium) with every image decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_cnn_agent
from test_report_browser import CHROMIUM, images_in_browser

from interpret_rl.atlas import build_atlas, receptive_field, write_atlas


@pytest.fixture(scope="module")
def states() -> torch.Tensor:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 30, size=(12, 4, 84, 84)).astype(np.float32)
    for i in range(12):  # a bright ball at a different place in each state, moving right
        for f in range(4):
            y, x = 10 + 6 * i, 8 + 5 * i + 2 * f
            frames[i, f, y:y + 4, x:x + 2] = 220.0
    return torch.tensor(frames)


@pytest.fixture(scope="module")
def atlas(states):
    return build_atlas(make_cnn_agent(), "conv3", states=states, steps=3, prior="none")


def test_receptive_fields_follow_the_architecture():
    agent = make_cnn_agent()
    assert receptive_field(agent, "trunk.conv1") == (8, 4, 0)
    assert receptive_field(agent, "trunk.conv2") == (8 + 3 * 4, 8, 0)
    assert receptive_field(agent, "trunk.conv3") == (20 + 2 * 8, 8, 0)  # conv3: 36 pixels, one every 8


@pytest.mark.slow
def test_units_hold_the_states_that_excite_them_most(atlas, states):
    agent = make_cnn_agent()
    net = agent.network.trunk
    with torch.no_grad():
        conv3 = net.conv3(net.relu2(net.conv2(net.relu1(net.conv1(states / 255)))))
    assert [u.name for u in atlas.units] == [str(c) for c in range(64)]
    for c in (0, 17, 63):
        unit, peaks = atlas.units[c], conv3[:, c].flatten(1).max(1)
        assert [s for s, *_ in unit.top] == peaks.values.topk(9).indices.tolist()
        state, y, x, value = unit.top[0]
        assert value == pytest.approx(float(conv3[state, c, y, x]), rel=1e-5)
        assert unit.heat.shape == (7, 7)
        np.testing.assert_allclose(unit.heat, conv3[:, c].clamp_min(0).mean(0).numpy(), rtol=1e-5, atol=1e-6)
        assert set(unit.feeds) == {"NOOP", "FIRE", "RIGHT", "LEFT", "value"}
        assert unit.images.shape == (1, 4, 84, 84)


def test_nmf_groups(states):
    atlas = build_atlas(make_cnn_agent(), "conv3", nmf=3, states=states, steps=2, prior="none")
    assert [u.name for u in atlas.units] == ["nmf0/3", "nmf1/3", "nmf2/3"]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_page_renders_with_every_image(atlas, tmp_path):
    page = write_atlas(atlas, tmp_path / "atlas").read_text()
    images, broken = images_in_browser(page, tmp_path)
    assert images == page.count("<img ") == 3 * 64  # optimised, crops and heat map per channel
    assert broken == 0


def test_cli_refuses_a_layer_without_positions(run):
    result = run("atlas", "breakout-a2c", "--layer", "fc")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: the atlas needs a layer with positions; trunk.fc outputs [512]; layers with positions: "
        "trunk.conv1, trunk.relu1, trunk.conv2, trunk.relu2, trunk.conv3, trunk.relu3"]
