"""report.html opens in a real browser (headless Chromium) with every image showing.

Skipped where /usr/bin/chromium is absent; CI installs it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from interpret_rl import compare
from interpret_rl.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Appended to a copy of the page: after load, count the images that did not decode.
IMAGE_CHECK = """<script>window.addEventListener('load', function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var out = document.createElement('pre'); out.id = 'image-check';
  out.textContent = 'images=' + images.length + ' broken=' + broken.length;
  document.body.appendChild(out);
});</script>"""

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def report(cnn_agent, atari_observations, tmp_path) -> Path:
    """A report with attribution and synthesis cells and one failed method (gradcam on a missing layer)."""
    result = compare(cnn_agent, ["saliency", "optim", "gradcam"], targets=["action", "value"],
                     observations=atari_observations[:2],
                     options={"optim": {"steps": "4", "pool": "0"}, "gradcam": {"layer": "no_such_layer"}})
    assert result.method_errors("gradcam") and not result.method_errors("saliency")
    return write_report(result, tmp_path / "report")["html"]


def images_in_browser(page: str, tmp_path: Path) -> tuple[int, int]:
    """Open ``page`` (HTML text) in headless Chromium: ``(images, images that did not decode)``."""
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", IMAGE_CHECK + "</body>"))
    run = chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", checked.as_uri())
    found = re.search(r'id="image-check">images=(\d+) broken=(\d+)<', run.stdout)
    assert found, f"the check did not run; chromium said: {run.stderr[-2000:]}"
    images, broken = map(int, found.groups())
    return images, broken


@pytest.mark.slow
def test_every_image_decodes(report, tmp_path):
    page = report.read_text()
    images, broken = images_in_browser(page, tmp_path)
    assert images == page.count("<img ") and images >= 2 * 2 * 3  # rows x columns, plus colour bars
    assert broken == 0


@pytest.mark.slow
def test_screenshot_shows_the_report(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    run = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", report.as_uri())
    assert shot.is_file(), run.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1400, 2000)
    # a blank or error page has a handful of colours; the heat maps and frames give thousands
    assert len(image.getcolors(maxcolors=1 << 20)) > 1000
