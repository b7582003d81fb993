"""README's library example runs as written: it trains, loads what it trained, compares and writes
the report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def library_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Library", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.slow
def test_the_library_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(library_example(), "README.md (Library)", "exec"), {})  # noqa: S102 - our own README
    assert (tmp_path / "runs" / "cartpole" / "meta.json").is_file()
    assert (tmp_path / "runs" / "cartpole" / "training_curve.csv").is_file()
    assert {p.name for p in (tmp_path / "compare-out").iterdir()} >= {"grid.png", "report.html", "results.json"}
