"""The learned prior: trains, round-trips bit for bit, refuses damaged or foreign files, and optim
climbs its latent space (the `prior` commands: test_cli_prior.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpret_rl import registry
from interpret_rl.methods import build_method
from interpret_rl.prior import META, WEIGHTS, PriorConfig, fit_prior, load_prior, prior_folder, save_prior
from interpret_rl.targets import parse_target

TINY = PriorConfig(latent_dim=4, width=4, steps=6, batch=4)


def moving_square_frames(n: int = 8) -> torch.Tensor:
    """``n`` 4-frame stacks of a bright square moving right over a dim noisy background."""
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 30, size=(n, 4, 84, 84)).astype(np.float32)
    for i in range(n):
        for f in range(4):
            x = 8 + 4 * f + 6 * i
            frames[i, f, 30:38, x:x + 8] = 220.0
    return torch.tensor(frames)


@pytest.fixture
def tiny_prior():
    frames = moving_square_frames()
    prior, record = fit_prior(frames, frames[:2], 255.0, TINY)
    return prior, record


def test_decode_and_encode_shapes_and_range(tiny_prior):
    prior, _ = tiny_prior
    z = torch.randn(3, prior.latent_dim) * 3
    frames = prior.decode(z)
    assert frames.shape == (3, 4, 84, 84) and frames.min() >= 0 and frames.max() <= 255
    assert prior.encode(frames).shape == (3, 4)


def test_same_data_and_seed_give_the_same_weights(tiny_prior):
    prior, _ = tiny_prior
    again, _ = fit_prior(moving_square_frames(), moving_square_frames()[:2], 255.0, TINY)
    assert all(torch.equal(a, b) for a, b in zip(prior.state_dict().values(), again.state_dict().values()))


@pytest.mark.slow
def test_training_lowers_its_loss_and_records_its_reconstruction_error():
    frames = moving_square_frames()
    untrained, _ = fit_prior(frames, frames[:2], 255.0, PriorConfig(latent_dim=4, width=4, steps=0))
    trained, record = fit_prior(frames, frames[:2], 255.0, PriorConfig(latent_dim=4, width=4, steps=150, batch=8))

    def loss(prior):  # the same noise draw for both
        with torch.no_grad():
            return float(prior.loss(frames, 1.0, torch.Generator().manual_seed(0))[0])

    assert loss(trained) < 0.7 * loss(untrained)
    assert record["reconstruction_rmse_pool"] == pytest.approx(float(trained.reconstruction_rmse(frames).mean()))
    held_out = float(trained.reconstruction_rmse(frames[:2]).mean())
    assert record["reconstruction_rmse_held_out"] == pytest.approx(held_out)


def test_save_load_round_trip_is_bit_identical(tiny_prior, cnn_agent, isolated_home):
    prior, record = tiny_prior
    assert load_prior(cnn_agent) is None
    folder = save_prior(prior, cnn_agent, record)
    assert folder.is_relative_to(isolated_home) and prior_folder(cnn_agent) == folder
    loaded = load_prior(cnn_agent)
    saved, back = prior.state_dict(), loaded.state_dict()
    assert saved.keys() == back.keys() and all(torch.equal(saved[k], back[k]) for k in saved)
    z = torch.randn(2, prior.latent_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(prior.decode(z), loaded.decode(z))
    save_prior(loaded, cnn_agent, record)  # saving what was loaded writes the same bytes
    assert json.loads((folder / META).read_text())["files"][WEIGHTS] == loaded.meta["files"][WEIGHTS]


def test_prior_path_starts_at_the_real_state_exciting_the_target_most(tiny_prior, cnn_agent):
    prior, record = tiny_prior
    save_prior(prior, cnn_agent, record)
    observations = moving_square_frames(4)
    target = parse_target("conv3:5", cnn_agent)
    # one step far below float32 resolution (steps=0 is refused): the path stays at its start
    explanation = build_method("optim", {"steps": "1", "lr": "1e-12", "pool": "0"}).explain(
        cnn_agent, target, observations)
    best = explanation.extras["dataset_examples"][0]
    assert explanation.extras["path"] == "prior"
    assert torch.equal(explanation.values[0], observations[best])  # the decoder's error added back: exact
    assert explanation.extras["activation"][0] == pytest.approx(explanation.extras["max_real_activation"], rel=1e-5)


def test_damaged_or_foreign_prior_is_refused(tiny_prior, cnn_agent):
    prior, record = tiny_prior
    folder = save_prior(prior, cnn_agent, record)
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[:-8] + b"\0" * 8)
    with pytest.raises(registry.ModelLoadError, match="sha256 does not match"):
        load_prior(cnn_agent)
    (folder / WEIGHTS).write_bytes(data)
    meta = json.loads((folder / META).read_text())
    (folder / META).write_text(json.dumps({**meta, "agent_sha256": "0" * 64}))
    with pytest.raises(registry.ModelLoadError, match="trained for other weights"):
        load_prior(cnn_agent)


def test_optim_climbs_the_latent_space_and_reports_honest_numbers(tiny_prior, cnn_agent):
    prior, record = tiny_prior
    save_prior(prior, cnn_agent, record)
    observations = moving_square_frames(4)
    targets = [parse_target(spec, cnn_agent) for spec in ("value", "conv3:5")]
    found = {}
    for mode in ("auto", "none"):  # without the real state's detail: the decoder's own frames
        method = build_method("optim", {"steps": "16", "pool": "0", "prior": mode, "keep_detail": "false"})
        found[mode] = method.explain_many(cnn_agent, targets, observations)
    for explanation in found["auto"]:
        extras = explanation.extras
        assert extras["path"] == "prior"
        values = explanation.values
        assert values.min() >= 0 and values.max() <= 255 and torch.equal(values, values.round())
        # the decoder made it: the prior reconstructs its own output far better than it does real frames
        assert extras["reconstruction_rmse"][0] < 0.5 * extras["prior_held_out_rmse"]
        assert len(extras["nearest_real_ratio"]) == 1 and extras["nearest_real_ratio"][0] > 0
        assert explanation.examples.shape == (4, 4, 84, 84)
    for explanation in found["none"]:
        assert explanation.extras["path"] == "pixels" and "reconstruction_rmse" in explanation.extras


def test_bundled_breakout_agent_ships_its_prior_and_pools(monkeypatch):
    from interpret_rl import pool

    agent = registry.load_agent("breakout-a2c")
    prior = load_prior(agent)
    assert prior is not None and prior_folder(agent).is_relative_to(registry.BUNDLED_DIR)
    assert prior.meta["training"]["seconds_training"] < 15 * 60

    def no_playing(*args, **kwargs):
        raise AssertionError("the bundled pools should be read, not collected")

    monkeypatch.setattr(pool, "collect_observations", no_playing)
    states = pool.real_state_pool(agent, size=1000, seed=0)
    assert states.shape == (1000, 4, 84, 84) and 0 <= states.min() and states.max() <= 255
    # the prior reconstructs real states far better than their mean frame does
    held_out = pool.real_state_pool(agent, size=200, seed=1)
    mean_frame_rmse = (held_out - states.mean(0)).pow(2).flatten(1).mean(1).sqrt().mean()
    assert prior.reconstruction_rmse(held_out[:50]).mean() < 0.6 * mean_frame_rmse


def test_prior_path_keeps_the_method_contract(tiny_prior, cnn_agent):
    """compare's guard checks weights bit for bit, no torch hook left, input untouched."""
    from interpret_rl.compare import compare

    prior, record = tiny_prior
    save_prior(prior, cnn_agent, record)
    observations = moving_square_frames(3)
    result = compare(cnn_agent, ["optim"], targets=["value", "conv3:5"], observations=observations,
                     options={"optim": {"steps": "4", "pool": "0"}})
    for target in ("value", "trunk.conv3:5"):
        cell = result.cell("optim", target)
        assert cell.ok, cell.error
        assert cell.explanation.extras["path"] == "prior"
