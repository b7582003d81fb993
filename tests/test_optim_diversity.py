"""optim.diversity=K: K images per target, kept apart by the Gram-matrix diversity term."""

from __future__ import annotations

import itertools

import pytest
import torch

from interpret_rl.diversity import gram_similarity
from interpret_rl.methods import build_method
from interpret_rl.targets import forward_to, parse_target


def test_gram_similarity_oracle():
    same = torch.rand(1, 3, 5, 5).expand(4, -1, -1, -1)
    assert float(gram_similarity(same)) == pytest.approx(3.0)  # K - 1: all alike
    apart = torch.zeros(2, 2, 3, 3)
    apart[0, 0], apart[1, 1] = 1.0, 1.0  # different channels fire: orthogonal Gram matrices
    assert float(gram_similarity(apart)) == pytest.approx(0.0)


def optimise(agent, observations, weight: float | None):
    options = {"steps": "24", "diversity": "3", "pool": "0", "prior": "none", "lr": "0.2"}
    method = build_method("optim", options if weight is None else {**options, "diversity_weight": str(weight)})
    return method.explain_many(agent, [parse_target("conv2:3", agent), parse_target("value", agent)], observations)


def min_pair_distance(images: torch.Tensor) -> float:
    return min(float((a - b).abs().mean()) for a, b in itertools.combinations(images, 2))


def similarity(agent, images: torch.Tensor, layer: str) -> float:
    with torch.no_grad():
        return float(gram_similarity(forward_to(agent, images, [layer], heads=False)[0][layer]))


@pytest.mark.slow
def test_k_distinct_images_per_target(cnn_agent, atari_observations):
    diverse = optimise(cnn_agent, atari_observations, None)  # the default weight
    alike = optimise(cnn_agent, atari_observations, 0.0)
    # conv2:3 is compared at its own layer; the value has no positions: at the deepest spatial layer
    for explanation, plain, layer in zip(diverse, alike, ["trunk.conv2", "trunk.relu3"]):
        assert explanation.values.shape == (3, 4, 84, 84) and len(explanation.extras["activation"]) == 3
        assert min_pair_distance(explanation.values) > 2.0  # every pair differs by grey levels on average
        # the term does its job: the K images look less alike to the network than without it
        assert similarity(cnn_agent, explanation.values, layer) < similarity(cnn_agent, plain.values, layer) - 0.2


def test_diversity_must_be_positive():
    with pytest.raises(ValueError, match="optim.diversity=0: must be at least 1"):
        build_method("optim", {"diversity": "0"})
