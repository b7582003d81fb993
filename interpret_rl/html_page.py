"""The one builder of HTML pages: every report (``compare``, ``compare --checkpoints``, ``compare
--models``, ``atlas``, ``tune``) is a list of sections that ``page`` puts into one self-contained
document, with its pictures embedded as PNG data URIs (``image_html``, ``data_uri``). A report that
adds to another passes more sections; nobody edits a finished page.

Light on purpose (no numpy or matplotlib; Pillow only when a picture is encoded): the tune report and the
atlas import it from their command's code path.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def page(title: str, sections: Iterable[str], css: str) -> str:
    """A whole HTML document: ``title`` (escaped here), ``css`` in its head and ``sections`` (HTML,
    in order) as its body, one per line."""
    head = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{css}</style></head><body>")
    return "\n".join([head, *sections, "</body></html>"])


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 ``(H, W)`` or ``(H, W, 3)`` -> PNG file bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_html(image: np.ndarray, zoom: int, enlarge: bool = False) -> str:
    """An ``<img>`` at ``zoom`` times the image's size (pixelated); ``enlarge``: a click toggles it to
    the window's width and back (the PNG keeps one pixel per frame pixel; the browser scales it)."""
    size = f'width="{image.shape[1] * zoom}" height="{image.shape[0] * zoom}"'
    click = ' class="zoomable" onclick="this.classList.toggle(\'enlarged\')" title="click to enlarge"'
    click = click if enlarge else ""
    return f'<img src="{data_uri(png_bytes(image))}" {size}{click} alt="">'


def json_safe(value):
    """NaN and infinity -> None (JSON has neither), recursively; for the results.json beside a page."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
