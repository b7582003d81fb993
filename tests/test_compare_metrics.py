"""compare(..., metrics=...) and `interpret-rl compare --metrics`: metrics per cell in results.json,
per-method means and ranks, the metrics table in report.html, unknown metrics as user errors."""

from __future__ import annotations

import json

import pytest
from conftest import make_mlp_agent

from interpret_rl import registry
from interpret_rl.compare import compare, prepare_metrics
from interpret_rl.metrics import MetricResult, metric_plugins, registered_metrics
from interpret_rl.names import UnknownNameError
from interpret_rl.report import write_report

# The fixture network's logits are tiny, but the chosen action's logit is clearly lower on the
# blurred frames than on the real ones, so deletion is defined on them (not for the value, nor on zeros).
FAST = {"deletion": {"steps": "4", "baseline": "blur"}}


@pytest.mark.slow
def test_library_compare_scores_every_cell_and_ranks_methods(cnn_agent, atari_observations, tmp_path):
    obs = atari_observations[:1]
    result = compare(cnn_agent, ["saliency", "perturbation"], targets=["action"], observations=obs,
                     metrics=["deletion", "randomization"], metric_options=FAST)
    assert [m.name for m in result.metrics] == ["deletion", "randomization"]
    assert result.metrics[0].options["steps"] == 4 and result.metrics[0].higher_is_better is False
    for method in ("saliency", "perturbation"):
        cell = result.cell(method, "action")
        assert cell.ok, cell.error
        assert set(cell.metrics) == {"deletion", "randomization"}
        deletion = cell.metrics["deletion"]
        assert isinstance(deletion, MetricResult), deletion
        assert len(deletion.details["curve"]) == 5
    ranks = result.metric_ranks("deletion")
    assert sorted(ranks.values()) in ([1, 2], [1, 1])
    paths = write_report(result, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert [m["name"] for m in data["metrics"]] == ["deletion", "randomization"]
    assert [m["plugin"] for m in data["metrics"]] == [metric_plugins()["deletion"], metric_plugins()["randomization"]]
    for method in ("saliency", "perturbation"):
        scored = data["results"][method]["action"]["metrics"]
        assert scored["deletion"]["metric"] == "deletion" and isinstance(scored["deletion"]["value"], float)
        assert scored["deletion"]["higher_is_better"] is False
        randomization = scored["randomization"]
        assert "error" in randomization or isinstance(randomization["details"]["passed"], bool)
        summary = data["summary"][method]
        assert summary["metrics"]["deletion"] == pytest.approx(scored["deletion"]["value"])
        assert summary["metric_ranks"]["deletion"] == ranks[method]
    page = paths["html"].read_text()
    assert "<h2>Metrics</h2>" in page and "ranks methods per metric" in page and "#1" in page
    assert page.count("alt='curves of") == 2


def test_failed_cells_and_synthesis_methods_get_no_value_but_an_explanation(cnn_agent, atari_observations, tmp_path):
    result = compare(cnn_agent, ["saliency", "optim"], targets=["action"], observations=atari_observations[:1],
                     options={"optim": {"steps": "2", "pool": "0"}}, metrics=["deletion", "runtime"],
                     metric_options=FAST)
    optim = result.cell("optim", "action").metrics
    assert optim["deletion"].startswith("NotApplicableError")
    assert isinstance(optim["runtime"], MetricResult)
    assert result.metric_mean("optim", "deletion") is None
    assert result.metric_ranks("deletion") == {"saliency": 1}
    page = write_report(result, tmp_path)["html"].read_text()
    assert "title='NotApplicableError" in page and ">n/a</td>" in page


def test_metrics_are_checked_before_any_work(cnn_agent):
    with pytest.raises(UnknownNameError, match="did you mean deletion"):
        compare(cnn_agent, ["saliency"], metrics=["deletio"])
    with pytest.raises(ValueError, match="steps"):
        prepare_metrics(["deletion"], {"deletion": {"steps": "many"}})
    with pytest.raises(ValueError, match="not among the computed metrics"):
        prepare_metrics(["deletion"], {"insertion": {"steps": "3"}})
    assert [m.name for m in prepare_metrics("all")] == list(registered_metrics())


@pytest.fixture
def tiny():
    return registry.save_agent(make_mlp_agent(), registry.user_models_dir() / "tiny")


def test_cli_unknown_metric_exits_2_with_suggestions(run, tiny, tmp_path):
    result = run("compare", "--model", "tiny", "--methods", "saliency", "--metrics", "deletion,nope",
                 "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "unknown metric 'nope'" in result.output and "available: " in result.output
    assert "deletion" in result.output.split("available: ")[1]
    assert not (tmp_path / "out").exists()
    typo = run("compare", "--model", "tiny", "--methods", "saliency", "--metrics", "delition",
               "--out", str(tmp_path / "out"))
    assert typo.exit_code == 2 and "did you mean deletion" in typo.output


def test_cli_metrics_all_writes_the_table(run, tiny, tmp_path):
    out = tmp_path / "out"
    result = run("compare", "--model", "tiny", "--methods", "saliency,perturbation", "--targets", "action",
                 "--frames", "1", "--metrics", "all", "-o", "deletion.steps=2", "-o", "insertion.steps=2",
                 "-o", "infidelity.samples=2", "-o", "sensitivity.samples=2", "--out", str(out))
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "<table class='kv metrics'>" in page
    for name in registered_metrics():
        assert f">{name}" in page
    data = json.loads((out / "results.json").read_text())
    assert {m["name"] for m in data["metrics"]} == set(registered_metrics())
    assert next(m for m in data["metrics"] if m["name"] == "deletion")["options"]["steps"] == 2
    assert set(data["summary"]["saliency"]["metrics"]) == set(registered_metrics())
    assert "deletion" in result.output  # the per-method summary on stdout


def test_cli_metric_options_need_metrics(run, tiny, tmp_path):
    result = run("compare", "--model", "tiny", "--methods", "saliency", "-o", "deletion.steps=2",
                 "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "no --metrics" in result.output
