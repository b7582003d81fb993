"""Honest numbers: nearest-real distances against brute force, the realism scale, the real range and
the out-of-distribution flag on constructed cases; optim measures against a real pool."""

from __future__ import annotations

import pytest
import torch

from interpret_rl.honest_numbers import (
    RealReference,
    nearest_distances,
    scores_on_states,
    target_numbers,
)
from interpret_rl.methods import build_method
from interpret_rl.targets import parse_target, target_scores


def test_nearest_distances_match_brute_force():
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(40, 4, 6, 6, generator=generator) * 255
    x = torch.rand(7, 4, 6, 6, generator=generator) * 255
    brute = torch.cdist(x.flatten(1).double(), reference.flatten(1).double()).min(1).values
    torch.testing.assert_close(nearest_distances(x, reference, chunk=3), brute, rtol=1e-5, atol=1e-3)
    leave_one_out = torch.cdist(reference.flatten(1).double(), reference.flatten(1).double())
    leave_one_out.fill_diagonal_(float("inf"))
    torch.testing.assert_close(nearest_distances(reference, reference, skip_same_index=True, chunk=16),
                               leave_one_out.min(1).values, rtol=1e-5, atol=1e-3)


def test_realism_is_one_for_a_typical_neighbour_and_zero_for_a_pool_state():
    # points on a line, 2 apart: each one's nearest other point is 2 away, so the typical distance is 2
    states = torch.arange(0, 20, 2, dtype=torch.float32).view(-1, 1)
    reference = RealReference.build(states, "line", held_out=torch.tensor([[1.0], [5.0], [30.0]]))
    assert reference.typical_distance == pytest.approx(2.0)
    torch.testing.assert_close(reference.realism(torch.tensor([[4.0], [23.0]])),
                               torch.tensor([0.0, 2.5], dtype=torch.float64))
    summary = reference.held_out_summary()
    assert summary["count"] == 3 and summary["median"] == pytest.approx(0.5) and summary["max"] == pytest.approx(6.0)


def test_target_range_and_out_of_distribution_flag():
    real = torch.tensor([0.5, 1.0, 2.0, 4.0])
    numbers = target_numbers([8.0, 39.0, 41.0], real)
    assert numbers["max_real_activation"] == 4.0
    assert numbers["times_real_max"] == [2.0, 9.75, 10.25]
    assert numbers["out_of_distribution"] == [False, False, True]
    median = float(torch.quantile(real.double(), 0.5))  # 1.5
    assert numbers["times_real_spread"] == pytest.approx([(v - median) / (4.0 - median) for v in (8.0, 39.0, 41.0)])
    assert numbers["p99_real_activation"] == pytest.approx(float(torch.quantile(real.double(), 0.99)))
    # no positive real maximum: a multiple means nothing, the excess over the median counts instead
    negative = target_numbers([-0.5, 20.0], torch.tensor([-3.0, -2.0, -1.0]))
    assert negative["times_real_max"] == [None, None] and negative["out_of_distribution"] == [False, True]


def test_scores_on_states_match_one_target_at_a_time(cnn_agent, atari_observations):
    targets = [parse_target(spec, cnn_agent) for spec in ("action:FIRE", "value", "conv3:5", "conv2:1:3:4")]
    together = scores_on_states(cnn_agent, targets, atari_observations, chunk=2)
    for row, target in zip(together, targets):
        torch.testing.assert_close(row, target_scores(cnn_agent, target, atari_observations).detach())


def test_optim_measures_against_a_pool_of_real_states(mlp_agent):
    observations = torch.tensor([[0.1, -0.5, 0.05, 0.8], [-1.0, 0.3, -0.1, -0.2]])
    explanation = build_method("optim", {"steps": "8", "pool": "12"}).explain(
        mlp_agent, parse_target("value", mlp_agent), observations)
    extras = explanation.extras
    assert "pool of 12 real states" in extras["real_states"]
    assert extras["held_out_nearest_real_ratio"]["count"] == 2
    assert len(extras["dataset_examples"]) == 9 and max(extras["dataset_examples"]) < 12
    assert explanation.examples.shape == (9, 4)
    from interpret_rl.pool import real_state_pool

    pool = real_state_pool(mlp_agent, size=12, seed=0)
    real = target_scores(mlp_agent, parse_target("value", mlp_agent), pool).detach()
    assert extras["max_real_activation"] == pytest.approx(float(real.max()))
    assert extras["dataset_example_scores"] == pytest.approx(real.sort(descending=True).values[:9].tolist())
    assert torch.equal(explanation.examples, pool[extras["dataset_examples"]])


def test_pool_realism_scale_is_cached_beside_the_pool(mlp_agent):
    from interpret_rl.honest_numbers import real_reference
    from interpret_rl.pool import pool_path

    first = real_reference(mlp_agent, None, 10)
    cache = pool_path(mlp_agent, 10, 0, 0.0).with_name(pool_path(mlp_agent, 10, 0, 0.0).stem + ".held2.realism.json")
    assert cache.is_file()
    again = real_reference(mlp_agent, None, 10)
    assert again.typical_distance == first.typical_distance
    assert torch.equal(again.held_out_ratios, first.held_out_ratios)
    recomputed = RealReference.build(first.states, "", real_state_pool_of(mlp_agent, 2, 1))
    assert recomputed.typical_distance == pytest.approx(first.typical_distance)


def real_state_pool_of(agent, size, seed):
    from interpret_rl.pool import real_state_pool

    return real_state_pool(agent, size=size, seed=seed)


def test_report_lines_flag_out_of_distribution_and_unreal_images():
    from interpret_rl.report_synthesis import honest_lines

    extras = {"activation": [50.0, 6.0], "max_real_activation": 4.0, "p99_real_activation": 3.5,
              "times_real_max": [12.5, 1.5], "out_of_distribution": [True, False],
              "nearest_real_ratio": [15.0, 1.2], "held_out_nearest_real_ratio": {"median": 1.4, "p90": 2.0},
              "reconstruction_rmse": [90.0, 8.0], "prior_held_out_rmse": 7.8, "path": "pixels"}
    flagged = honest_lines(extras, 0)
    warnings = [text for text, warn in flagged if warn]
    assert any("OUT OF DISTRIBUTION" in w for w in warnings) and any("90% of held-out" in w for w in warnings)
    assert flagged[0][0].startswith("target 50 = 12.50× the best real state (4")
    fine = honest_lines(extras, 1)
    assert not any(warn for _, warn in fine)
    assert any("1.20× the typical real-to-real distance" in text for text, _ in fine)
    assert any("prior reconstruction RMSE 8.0 (held-out real states 7.8)" in text for text, _ in fine)


def test_report_lines_compare_rises_over_the_median_where_the_best_real_value_is_negative():
    from interpret_rl.report_synthesis import honest_lines

    numbers = target_numbers([-0.1], torch.tensor([-0.5, -0.4, -0.3, -0.2]))
    text = honest_lines({"activation": [-0.1], **numbers}, 0)[0][0]
    assert "(best real state -0.2" in text  # the real median is -0.35: (-0.1 + 0.35) / (-0.2 + 0.35) = 1.67
    assert "1.67× the best real state's rise above the real median" in text
