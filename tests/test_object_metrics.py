"""Object metrics on constructed maps over real Breakout ground truth (oracle, uniform, random,
reversed), interventions that really move the object, and the skip when there is no ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpret_rl.methods import Explanation, build_method
from interpret_rl.metrics import MetricResult, build_metric, evaluate_metrics
from interpret_rl.objects import GroundTruth, box_to_mask
from interpret_rl.observations import collect_with_ground_truth
from interpret_rl.targets import parse_target
from interpret_rl_plugins.object_metrics import kendall, spearman


@pytest.fixture(scope="module")
def breakout():
    """(agent, observations, ground truth): 4 real observations of a random-weight agent's game."""
    from conftest import make_cnn_agent

    agent = make_cnn_agent()
    observations, truth = collect_with_ground_truth(agent, 4, seed=1, sample="start", warmup=40, stride=12)
    return agent, observations, truth


def score(name, breakout, values, target="value", **options):
    agent, observations, truth = breakout
    explanation = Explanation(method="constructed", target=target, kind="attribution",
                              values=torch.as_tensor(values, dtype=torch.float32))
    return build_metric(name, options).evaluate(agent, build_method("saliency"), parse_target(target, agent),
                                                observations, explanation, ground_truth=truth)


def test_objects_oracle_uniform_random(breakout):
    _, observations, truth = breakout
    masks = truth.masks()
    oracle = (masks["ball"] | masks["paddle"]).astype(np.float32)
    assert score("objects", breakout, oracle).value == pytest.approx(1.0)
    uniform = score("objects", breakout, np.ones(observations.shape))
    for name, entry in uniform.details["objects"].items():  # an even map puts exactly chance on every object
        assert entry["share"] == pytest.approx(entry["chance"]), name
    noise = np.random.default_rng(0).random(observations.shape)
    random = score("objects", breakout, noise).details["objects"]
    for name in ("paddle", "bricks", "hud"):
        assert random[name]["share"] == pytest.approx(random[name]["chance"], rel=0.15), name
    text = score("objects", breakout, oracle).details["text"]
    assert any(line.startswith("paddle: ") and "of the mass on" in line and "chance" in line for line in text)


def test_pointing_hits_and_misses(breakout):
    _, observations, truth = breakout
    paddle = truth.masks()["paddle"]
    on_paddle = np.zeros(observations.shape, np.float32)
    far = np.zeros(observations.shape, np.float32)
    for i in range(len(observations)):
        y, x = np.argwhere(paddle[i, -1])[0]
        on_paddle[i, -1, y, x] = 1.0
        far[i, -1, 2, 2 if x > 40 else 80] = 1.0  # the top corner: far from paddle and ball
    hit = score("pointing", breakout, on_paddle)
    assert hit.details["objects"]["paddle"]["hit_rate"] == 1.0
    missed = score("pointing", breakout, far)
    assert missed.value == 0.0 and missed.details["objects"]["paddle"]["hit_rate"] == 0.0
    assert 0 < hit.details["objects"]["paddle"]["chance"] < 0.1


def test_pointing_says_where_a_missing_peak_lands(breakout):
    """A peak on the side wall, on the paddle and in the empty field are told apart: ``peak_on``
    names the object each peak is near, per observation and as shares that sum to one."""
    _, observations, truth = breakout
    paddle = truth.masks()["paddle"]
    maps = np.zeros(observations.shape, np.float32)
    expected = []
    for i in range(len(observations)):
        if i % 3 == 0:
            maps[i, -1, 60, 1] = 1.0  # on the left wall (x 0-7 of 160 raw, 0-3 of 84)
            expected.append("walls")
        elif i % 3 == 1:
            y, x = np.argwhere(paddle[i, -1])[0]
            maps[i, -1, y, x] = 1.0
            expected.append("paddle")
        else:
            maps[i, -1, 45, 42] = 1.0  # mid-field, below the bricks, above the paddle
            expected.append("elsewhere")
    result = score("pointing", breakout, maps, tolerance=0.0)
    landed = result.details["peak_on_per_observation"]
    assert landed == expected
    shares = result.details["peak_on"]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["walls"] == pytest.approx(expected.count("walls") / len(expected))
    assert any(line.startswith("peak lands on: ") and "walls" in line for line in result.details["text"])


@pytest.mark.slow
def test_interventions_move_their_object(breakout):
    """Each intervention changes the frames where its object is, and the RAM behind the changed
    frames puts the object where the intervention said."""
    _, observations, truth = breakout
    detector = truth.detector()
    seen = set()
    for i, changes in enumerate(truth.interventions()):
        clean = observations[i].numpy()
        clean_masks = truth.masks()
        for change in changes:
            obj, changed = change["intervention"].obj, change["observation"]
            moved = GroundTruth(truth.env_id, truth.settings, change["ram"][None], truth.frame_valid[i:i + 1])
            new_mask = moved.masks()[obj][0]
            assert change["changed_pixels"] > 0, obj
            differs = changed != clean
            if obj in ("ball", "paddle"):
                dx = change["intervention"].dx
                old_box = detector.boxes(truth.ram[i, 0, -1])[obj][0]
                new_box = detector.boxes(change["ram"][0, -1])[obj][0]
                assert abs(new_box[1] - old_box[1] - dx) <= (0 if obj == "paddle" else 8), (obj, old_box, new_box)
                # the object's new place and its old place both changed in the first stacked frame
                assert differs[0][new_mask[0]].any() and differs[0][clean_masks[obj][i, 0]].any(), obj
            elif obj.startswith("bricks row"):
                assert not new_mask.any() and clean_masks[obj][i].any()
                row = clean_masks[obj][i, -1]  # edge pixels mix in the next row: darker or equal
                assert (changed[-1][row] <= clean[-1][row]).all()
                others = np.logical_or.reduce([clean_masks[n][i, -1] for n in clean_masks
                                               if n not in (obj, "bricks", "hud")])
                own = row & ~others  # pixels that only this row lights go dark (the kernel leaves slivers)
                assert own.any() and changed[-1][own].sum() < 0.5 * clean[-1][own].sum()
            elif obj == "hud":
                hud = box_to_mask((5, 36, 15, 140), (210, 160), (84, 84))
                assert differs[:, hud].any() and not differs[:, ~hud].any()
            seen.add(obj.split(" row")[0])
    assert {"ball", "paddle", "bricks", "hud"} <= seen


def test_interventions_metric_oracle_beats_reversed(breakout):
    """A map whose density on each object follows the measured effects ranks perfectly (rho = 1,
    up to ties among the effects); the reversed ranking scores -1; a random map sits in between."""
    agent, observations, truth = breakout
    noise = score("interventions", breakout, np.random.default_rng(1).random(observations.shape))
    first = noise  # the effects do not depend on the map
    masks = truth.masks()
    oracle = np.zeros(observations.shape, np.float32)
    reversed_ = np.zeros(observations.shape, np.float32)
    for i, effects in enumerate(first.details["effects"]):
        order = np.argsort([e["effect"] for e in effects])
        objects = [e["object"] for e in effects]
        for rank, k in enumerate(order):  # mass on the pixels no other scored object shares (rows touch)
            mask = masks[objects[k]][i] & ~np.logical_or.reduce([masks[o][i] for o in objects if o != objects[k]])
            oracle[i][mask] = rank + 1
            reversed_[i][mask] = len(order) - rank
    best = score("interventions", breakout, oracle)
    worst = score("interventions", breakout, reversed_)
    assert best.value == pytest.approx(1.0, abs=0.02) and worst.value == pytest.approx(-1.0, abs=0.02)
    assert worst.value < noise.value < best.value
    effect = first.details["effects"][0][0]
    assert {"object", "intervention", "effect", "mass_share", "density_vs_chance", "value_change", "logit_change",
            "changed_pixels"} <= set(effect)


def test_rank_correlations_on_known_cases():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(0.9486833)  # scipy's value
    assert kendall(np.array([1, 2, 3]), np.array([1, 3, 2])) == pytest.approx(1 / 3)
    assert spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) is None


def test_skipped_with_a_reason_without_ground_truth(breakout, mlp_agent):
    agent, observations, truth = breakout
    method = build_method("saliency")
    explanation = method.explain(agent, parse_target("value", agent), observations)
    names = ["objects", "pointing", "interventions"]
    without = evaluate_metrics(agent, method, "value", observations, explanation, names)
    assert all(r.startswith("NotApplicableError: metric") and "without ground truth" in r for r in without.values())
    with_truth = evaluate_metrics(agent, method, "value", observations, explanation, names, ground_truth=truth)
    assert all(isinstance(r, MetricResult) for r in with_truth.values()), with_truth
    no_states = GroundTruth(truth.env_id, truth.settings, truth.ram, truth.frame_valid)
    skipped = evaluate_metrics(agent, method, "value", observations, explanation, ["interventions"],
                               ground_truth=no_states)["interventions"]
    assert "without emulator states" in skipped
    cartpole = GroundTruth("CartPole-v1", {}, truth.ram, truth.frame_valid)
    assert "no object detector for CartPole-v1" in evaluate_metrics(
        agent, method, "value", observations, explanation, ["objects"], ground_truth=cartpole)["objects"]


@pytest.mark.slow
def test_compare_cli_scores_objects_and_reruns_from_its_file(run, tmp_path):
    """A Breakout-shaped agent through the CLI: the metrics run on collected observations, the
    report folder keeps the ground truth in observations.npz, and a rerun from that file scores
    the same numbers; with --metrics the default is 8 observations sampled over a whole game."""
    from conftest import make_cnn_agent

    from interpret_rl import registry

    registry.save_agent(make_cnn_agent(), registry.user_models_dir() / "tiny-cnn")
    out, again = tmp_path / "out", tmp_path / "again"
    common = ("--model", "tiny-cnn", "--methods", "saliency", "--targets", "value",
              "--metrics", "objects,pointing,interventions")
    result = run("compare", *common, "--frames", "3", "--sample", "start", "--out", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    metrics = data["results"]["saliency"]["value"]["metrics"]
    assert {"objects", "pointing", "interventions"} <= set(metrics) and "error" not in metrics["objects"]
    effects = [e["object"] for obs in metrics["interventions"]["details"]["effects"] for e in obs]
    assert {"paddle", "bricks row 1", "hud"} <= set(effects)
    assert [f["step"] for f in data["observations"]["facts"]] == [16, 24, 32]
    html = (out / "report.html").read_text()
    assert "Ground truth from the emulator" in html and "paddle: " in html and "of the pixels (chance" in html
    assert "mass, oldest to newest" in html
    rerun = run("compare", *common, "--observations", str(out / "observations.npz"), "--out", str(again))
    assert rerun.exit_code == 0, rerun.output
    rerun_metrics = json.loads((again / "results.json").read_text())["results"]["saliency"]["value"]["metrics"]
    assert rerun_metrics["objects"]["value"] == metrics["objects"]["value"]
    assert rerun_metrics["interventions"]["value"] == metrics["interventions"]["value"]
    clash = run("compare", *common, "--observations", str(out / "observations.npz"), "--sample", "game")
    assert clash.exit_code == 2 and "--sample and --observations exclude each other" in clash.output
    whole = run("compare", *common, "--out", str(tmp_path / "whole"))
    facts = json.loads((tmp_path / "whole" / "results.json").read_text())["observations"]["facts"]
    assert whole.exit_code == 0 and len(facts) == 8 and facts[0]["game_steps"] == facts[-1]["game_steps"]


def test_a_plugin_adds_a_game_through_register_object_detectors(registered, breakout):
    """A throwaway plugin's detector, keyed by env id, is found for that env and feeds the metrics:
    its one object covering the whole frame holds all of an even map's mass."""
    from interpret_rl.hookspecs import hookimpl
    from interpret_rl.objects import ObjectDetector, detector_for

    class Everything(ObjectDetector):
        objects = main_objects = pointing_objects = ("screen",)

        def boxes(self, ram):
            return {"screen": [(0, 0, 210, 160)]}

    class Plugin:
        @hookimpl
        def register_object_detectors(self, register):
            register("ALE/Pong-v5", Everything)

    registered(Plugin(), "pong-objects")
    assert isinstance(detector_for("ALE/Pong-v5"), Everything) and detector_for("ALE/Tennis-v5") is None
    agent, observations, truth = breakout
    pong = GroundTruth("ALE/Pong-v5", {}, truth.ram, truth.frame_valid)
    explanation = Explanation(method="constructed", target="value", kind="attribution",
                              values=torch.ones(observations.shape))
    result = build_metric("objects").evaluate(agent, build_method("saliency"), parse_target("value", agent),
                                              observations, explanation, ground_truth=pong)
    assert result.value == pytest.approx(1.0) and result.details["objects"]["screen"]["chance"] == 1.0


@pytest.mark.slow
def test_random_control_sits_at_chance_and_saliency_above_it_on_breakout_a2c():
    """The bundled agent, 8 real states: the seeded-noise control puts the ball's and paddle's pixel
    share of its mass on them (chance), its peak rarely near them and its density on objects does not
    rank them by intervention effect (interval around 0); gradient saliency beats it on the first two."""
    from interpret_rl import registry
    from interpret_rl.compare import compare

    agent = registry.load_agent("breakout-a2c")
    observations, truth = collect_with_ground_truth(agent, 8, seed=0, sample="start", warmup=100, stride=60)
    result = compare(agent, ["random", "saliency"], targets=["action", "value"], observations=observations,
                     ground_truth=truth, metrics=["objects", "pointing", "interventions"])
    for target in ("action", "value"):
        noise = result.cell("random", target).metrics["objects"].details["objects"]
        for name in ("ball", "paddle", "bricks", "hud"):
            assert noise[name]["share"] == pytest.approx(noise[name]["chance"], rel=0.25), (target, name)
        salient = result.cell("saliency", target).metrics["objects"].details["objects"]
        assert salient["ball"]["share"] > 2 * salient["ball"]["chance"], target
    assert result.metric_mean("random", "pointing") < result.metric_mean("saliency", "pointing")
    assert result.metric_mean("random", "objects") < result.metric_mean("saliency", "objects")
    for target in ("action", "value"):  # noise covers every object equally densely: no rank agreement
        low, high = result.cell("random", target).metrics["interventions"].interval
        assert low < 0 < high, (target, low, high)
