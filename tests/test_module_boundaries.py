"""How the package's modules lean on each other: no module reaches into another's private names,
HTML pages are put together in one place (html_page.page), and the command modules never import
``interpret_rl.cli`` (it imports them; shared pieces live in cli_base)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "interpret_rl").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")])


def imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``from interpret_rl... import name`` in ``path`` (also inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("interpret_rl")
            for alias in node.names]


def test_the_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"report.py", "across_training.py", "html_page.py", "cli.py", "cli_explain.py"} <= names


def test_no_module_imports_another_modules_private_names():
    private = [f"{path.relative_to(ROOT)}: {module}.{name}" for path in SOURCES for module, name in imports(path)
               if name.startswith("_") and not name.startswith("__")]
    assert not private, f"private names imported from other modules (make them public where defined): {private}"


def test_only_html_page_writes_the_frame_of_a_page():
    writers = [p.relative_to(ROOT) for p in SOURCES
               if p.name != "html_page.py" and any(tag in p.read_text() for tag in ("</html>", "</body>", "<!DOCTYPE",
                                                                                      "<!doctype"))]
    assert not writers, f"{writers} write a page's <html> frame themselves; build it with html_page.page"


def test_command_modules_do_not_import_the_cli_module():
    commands = [p for p in SOURCES if p.parent.name == "interpret_rl" and p.name.startswith("cli_")]
    assert commands
    for path in commands:
        assert "interpret_rl.cli" not in {module for module, _ in imports(path)}, path.name
        assert ("interpret_rl", "cli") not in imports(path), path.name
