"""`interpret-rl models` with broken folders in the registry: the good models are listed, each broken
one is named in one line on stderr, and nothing hangs or raises."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import make_mlp_agent

from interpret_rl import registry
from interpret_rl.cli import cli


def _broken_folders(models):
    good = json.loads((models / "good" / "meta.json").read_text())

    def write(name, text):
        (models / name).mkdir()
        (models / name / "meta.json").write_text(text)

    write("score-is-text", json.dumps({**good, "evaluation": "great"}))
    write("score-lacks-std", json.dumps({**good, "evaluation": {"mean": 3.0}}))
    write("deep", "[" * 200_000 + "]" * 200_000)
    write("not-json", "{'env_id': 'CartPole-v1'")
    write("no-env", json.dumps({k: v for k, v in good.items() if k != "env_id"}))
    write("a-list", "[]")
    write("huge", " " * (registry.MAX_META_BYTES + 1))
    write("bad-utf8", "")
    (models / "bad-utf8" / "meta.json").write_bytes(b"\xff\xfe{")
    return {"score-is-text": "evaluation", "score-lacks-std": "evaluation", "deep": "nested too deeply",
            "not-json": "unreadable", "no-env": "lacks 'env_id'", "a-list": "must hold an object",
            "huge": "more than the limit", "bad-utf8": "unreadable"}


def test_models_lists_the_good_entries_and_names_each_broken_one_in_one_line(isolated_home):
    models = isolated_home / "models"
    registry.save_agent(make_mlp_agent(), models / "good")
    expected = _broken_folders(models)
    result = CliRunner().invoke(cli, ["models"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    bundled = sorted(p.name for p in registry.BUNDLED_DIR.iterdir() if (p / "meta.json").is_file())
    assert listed == [*bundled, "good"] and "cartpole-a2c" in bundled
    broken = {line.split()[1]: line for line in result.stderr.splitlines()}
    assert set(broken) == set(expected)
    for name, reason in expected.items():
        assert broken[name].startswith(f"broken: {name} (") and reason in broken[name], broken[name]
    assert len(result.stderr.splitlines()) == len(expected)  # one line each


def test_the_library_listing_skips_what_the_command_names(isolated_home):
    models = isolated_home / "models"
    registry.save_agent(make_mlp_agent(), models / "good")
    _broken_folders(models)
    found, broken = registry.scan_models()
    assert [m.name for m in registry.list_models()] == [m.name for m in found]
    assert "good" in [m.name for m in found] and len(broken) == 8
