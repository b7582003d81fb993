"""What the report draws: absolute maps on a sequential scale and signed ones on a diverging scale,
a map per stacked frame where the method gives one (Grad-CAM labelled as one map for all frames),
cells big enough for a 2-pixel ball, and the metrics table with intervals, chance levels and the
randomization cascade beside the verdict."""

from __future__ import annotations

import re

import numpy as np
import pytest

from interpret_rl.compare import compare
from interpret_rl.report import CMAP, GAP, HTML_ZOOM, SEQUENTIAL_CMAP, CellRenderer, write_report


@pytest.fixture
def result(cnn_agent, atari_observations):
    return compare(cnn_agent, ["saliency", "perturbation", "gradcam", "guided-backprop"], targets=["action"],
                   observations=atari_observations[:2], options={"perturbation": {"stride": "14"}},
                   metrics=["deletion", "randomization"], metric_options={"deletion": {"steps": "4"}})


@pytest.mark.slow
def test_absolute_maps_are_sequential_and_signed_maps_diverging(result):
    renderer = CellRenderer(result)
    black = np.zeros((4, 84, 84), dtype=np.float32)  # grey level 0: the overlay colour shows plainly
    peak = np.zeros((4, 84, 84), dtype=np.float32)
    peak[:, 10, 20] = 1.0
    absolute = renderer.attribution(black, peak, 1.0)
    signed = renderer.attribution(black, -peak, 1.0)
    expected_top = (0.85 * np.array(SEQUENTIAL_CMAP(1.0)[:3]) * 255).round()
    expected_blue = (0.85 * np.array(CMAP(0.0)[:3]) * 255).round()
    np.testing.assert_allclose(absolute[10, 20], expected_top, atol=1)  # the top of 0 … max, not dark red
    np.testing.assert_allclose(signed[10, 20], expected_blue, atol=1)
    assert absolute[0, 0].tolist() == [0, 0, 0]  # zero attribution leaves the frame as it is


@pytest.mark.slow
def test_maps_per_frame_and_gradcam_says_it_has_one(result):
    rows = CellRenderer(result).rows()
    names = ["observation"] + [m.name for m in result.methods]
    cells = dict(zip(names, rows[0][2]))
    width = (cells["observation"].image.shape[1] - 3 * GAP) // 4
    frames = {name: [cells[name].image[:, k * (width + GAP):k * (width + GAP) + width] for k in range(4)]
              for name in ("perturbation", "gradcam")}
    assert not np.array_equal(frames["perturbation"][0], frames["perturbation"][3])  # each frame its own map
    assert "same map for all frames" in cells["gradcam"].caption
    assert "same map for all frames" not in cells["perturbation"].caption
    assert cells["saliency"].caption.startswith("absolute, 0 … max")
    assert cells["guided-backprop"].caption.startswith("signed, −max … max")


@pytest.mark.slow
def test_html_cells_are_big_enough_and_the_metrics_show_intervals_and_the_cascade(result, tmp_path):
    page = write_report(result, tmp_path / "out")["html"].read_text()
    strip_width = 4 * 84 + 3 * GAP
    sizes = [int(w) for w in re.findall(r'<img src="data:image/png;base64,[^"]+" width="(\d+)"[^>]*zoomable', page)]
    assert sizes and set(sizes) == {HTML_ZOOM * strip_width} and HTML_ZOOM >= 2  # a 2-px ball: >= 4 screen px
    assert "onclick=\"this.classList.toggle('enlarged')\"" in page
    assert page.count("alt='cascade of") == 4 and page.count("alt='curves of") == 4
    for method in ("saliency", "gradcam"):
        interval = result.metric_interval(method, "deletion")
        assert interval is not None and f"[{interval[0]:.3g}, {interval[1]:.3g}]" in page
        verdict = result.metric_verdict(method, "randomization")
        shown = " · ".join(f"{name} {value:.3g}" for name, value in verdict["statistics"].items())
        assert shown in page  # the verdict's own numbers sit next to its badge
        assert verdict["statistics"]["area"] == pytest.approx(result.metric_mean(method, "randomization"))
    assert "chance " in page
