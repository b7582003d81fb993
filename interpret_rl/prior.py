"""A learned prior of an agent's observations: a small convolutional VAE over whole frame stacks.

Activation maximisation in pixel space finds "featureless clouds" far outside anything the agent
sees (Hilton et al. 2020). Rupprecht, Ibrahim and Pal (ICLR 2020) instead optimise the latent code
of a generative model trained on the agent's own states, so the image stays one the game could
show. This is that model, kept small enough to train on two CPU cores in minutes.

Design, and why:
* It models the whole ``(C, H, W)`` stack at once (the 4 frames are channels), so a decoded stack
  is four frames of one moment, not four unrelated images.
* Encoder: four stride-2 convolutions (84 -> 42 -> 21 -> 11 -> 6) and a linear layer to the mean
  and log-variance of a ``latent_dim`` Gaussian; decoder: the mirror image with transposed
  convolutions (told the encoder's sizes, so any frame size works) and a sigmoid to ``[0, 1]``.
* The decoder paints changes to the typical frame (the per-pixel median of the training pool): its
  output is added to the typical frame's logits. Walls, score board and the usual bricks come for
  free from the first step, so the little training two busy cores allow goes into what moves.
* The reconstruction loss weighs each pixel by ``1 + OBJECT_WEIGHT * |x - typical frame|`` (the
  per-pixel median of the training pool): the ball is 2 pixels of 7,056 per frame, and a plain
  loss learns to erase it. Pixels that differ from the usual frame (ball, paddle, broken bricks)
  count ``OBJECT_WEIGHT`` times more.
* The KL term at full weight (``beta`` 1): a smooth latent space, where the codes between and
  around real states still decode to game-like frames. optim starts from the code of a real state
  and keeps only frames as close to the real states as held-out real states are (plugins/optim.py);
  pulling codes towards 0 (``|z|^2 / 2``) was measured to hurt: the mean code decodes to a blurred
  average frame (benchmarks/README.md).

Stored beside its agent (``artefacts.artefact_dirs``): ``prior/prior.safetensors`` + ``prior/meta.json``
(architecture, training settings, sha256 of the agent's weights and of the file), meta.json last.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PRIOR_DIR = "prior"
WEIGHTS = "prior.safetensors"
META = "meta.json"
FORMAT_VERSION = 1
OBJECT_WEIGHT = 20.0
TYPICAL_MARGIN = 0.01  # the typical frame's logits stay finite where it is pure black or white


@dataclass
class PriorConfig:
    """How ``train_prior`` trains a prior."""

    latent_dim: int = 32
    """Size of the latent code optim searches over."""
    width: int = 16
    """Channels of the first convolution (doubled once, then kept)."""
    pool_size: int = 1000
    """Real states of the agent's own play to train on (``interpret_rl.pool.real_state_pool``, seed
    ``seed``: the same pool optim measures against, so it is collected once), plus as many again
    from other games played with exploration (seed ``seed + 2``, ``epsilon``)."""
    epsilon: float = 0.1
    """Share of random actions in the exploring games, so rare states appear."""
    held_out: int | None = None
    """Real states from games outside the training pool (seed ``seed + 1``), for an honest
    reconstruction error (default ``pool_size // 5``: the held-out pool optim measures against)."""
    steps: int = 3000
    """Adam updates."""
    batch: int = 16
    """States per update (small: on 2 CPU cores more updates beat bigger batches)."""
    lr: float = 2e-3
    beta: float = 1.0
    """Weight of the KL term (per latent dimension, against the summed pixel loss)."""
    seed: int = 0
    max_seconds: float = 0.0
    """Stop after this many seconds of training (0: no limit), whatever ``steps`` says."""


class Prior(nn.Module):
    """A convolutional VAE over ``(C, H, W)`` observations in ``[0, scale]`` (Atari: 255).

    ``encode(obs) -> z`` (the posterior mean, ``(B, latent_dim)``), ``decode(z) -> obs``
    (``(B, C, H, W)`` in ``[0, scale]``, differentiable), ``latent_dim``.
    """

    def __init__(self, shape: tuple[int, int, int], latent_dim: int = 32, width: int = 32, scale: float = 255.0):
        super().__init__()
        self.meta: dict = {}  # the meta.json it was loaded with (load_prior)
        channels, height, width_px = shape
        self.shape, self.latent_dim, self.width, self.scale = tuple(shape), latent_dim, width, scale
        wide = 2 * width
        self.encoder = nn.ModuleList([
            nn.Conv2d(channels, width, 4, 2, 1), nn.Conv2d(width, wide, 4, 2, 1),
            nn.Conv2d(wide, wide, 3, 2, 1), nn.Conv2d(wide, wide, 3, 2, 1)])
        self.sizes = [(height, width_px)]
        for conv in self.encoder:  # spatial size after each convolution, for the decoder's output_size
            h, w = self.sizes[-1]
            k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
            self.sizes.append(((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1))
        flat = wide * self.sizes[-1][0] * self.sizes[-1][1]
        self.to_latent = nn.Linear(flat, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        self.decoder = nn.ModuleList([
            nn.ConvTranspose2d(wide, wide, 3, 2, 1), nn.ConvTranspose2d(wide, wide, 3, 2, 1),
            nn.ConvTranspose2d(wide, width, 4, 2, 1), nn.ConvTranspose2d(width, channels, 4, 2, 1)])
        self.register_buffer("typical", torch.zeros(shape))  # per-pixel median of the training pool, [0, 1]

    def posterior(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | obs), each ``(B, latent_dim)``."""
        x = obs / self.scale
        for conv in self.encoder:
            x = F.relu(conv(x))
        mean, log_var = self.to_latent(x.flatten(1)).chunk(2, dim=1)
        return mean, log_var.clamp(-12, 6)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.posterior(obs)[0]

    def decode_unit(self, z: torch.Tensor) -> torch.Tensor:
        """``decode`` in ``[0, 1]``: the decoder's output is a change of the typical frame's logits."""
        x = self.from_latent(z).view(len(z), -1, *self.sizes[-1])
        for i, deconv in enumerate(self.decoder):
            x = deconv(x, output_size=self.sizes[-2 - i])
            x = F.relu(x) if i < len(self.decoder) - 1 else x
        return torch.sigmoid(x + torch.logit(self.typical.clamp(TYPICAL_MARGIN, 1 - TYPICAL_MARGIN)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * self.decode_unit(z)

    def loss(self, obs: torch.Tensor, beta: float, generator: torch.Generator | None = None) -> tuple:
        """(total, reconstruction, KL), each a mean over the batch."""
        mean, log_var = self.posterior(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        recon = self.decode_unit(mean + noise * (0.5 * log_var).exp())
        x = obs / self.scale
        weight = 1.0 + OBJECT_WEIGHT * (x - self.typical).abs()
        reconstruction = (weight * (recon - x) ** 2).flatten(1).sum(1).mean()
        kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum(1).mean()
        return reconstruction + beta * kl, reconstruction, kl

    def reconstruction_rmse(self, obs: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Per observation, the root mean square error of ``decode(encode(obs))``, in the observation's
        own units (Atari: 0..255)."""
        errors = []
        with torch.no_grad():
            for chunk in obs.split(batch):
                errors.append((self.decode(self.encode(chunk)) - chunk).pow(2).flatten(1).mean(1).sqrt())
        return torch.cat(errors)

    def architecture(self) -> dict:
        return {"shape": list(self.shape), "latent_dim": self.latent_dim, "width": self.width, "scale": self.scale}


def observation_scale(agent) -> float:
    """The upper bound of ``agent``'s image observations (Atari: 255); ``ValueError`` for any other space."""
    high = agent.observation_space.get("high") or [None]
    if len(agent.observation_shape) != 3 or len(set(high)) != 1 or high[0] is None:
        raise ValueError(f"a prior needs image observations (C, H, W) with one finite upper bound; "
                         f"{agent.name or 'this agent'} has shape {agent.observation_shape} and high {high[:3]}")
    return float(high[0])


def train_prior(agent, config: PriorConfig | None = None, progress=None) -> tuple[Prior, dict]:
    """Train a prior on ``agent``'s real states (collected and cached by ``real_state_pool``).

    :param progress: called as ``progress(step, steps, loss)`` every 100 steps (e.g. a log line).
    :returns: the trained prior (eval mode, CPU) and its training record (for meta.json).
    """
    from interpret_rl.pool import real_state_pool

    config = config or PriorConfig()
    scale = observation_scale(agent)  # refuses a non-image agent before any state is collected
    started = time.perf_counter()
    pool = torch.cat([real_state_pool(agent, size=config.pool_size, seed=config.seed),
                      real_state_pool(agent, size=config.pool_size, seed=config.seed + 2, epsilon=config.epsilon)])
    held_out = real_state_pool(agent, size=config.held_out or max(1, config.pool_size // 5), seed=config.seed + 1)
    collected = time.perf_counter() - started
    prior, record = fit_prior(pool, held_out, scale, config, progress)
    return prior, {**record, "seconds_collecting": round(collected, 1)}


def fit_prior(pool: torch.Tensor, held_out: torch.Tensor, scale: float, config: PriorConfig,
              progress=None) -> tuple[Prior, dict]:
    """Train a prior on the real states ``pool`` ``(N, C, H, W)`` in ``[0, scale]``; ``held_out``
    (other real states) measures its reconstruction error. Same inputs and config, same weights."""
    from interpret_rl.methods import seeded_rng

    with seeded_rng(config.seed):
        prior = Prior(tuple(pool.shape[1:]), config.latent_dim, config.width, scale)
    prior.typical.copy_((pool / scale).median(dim=0).values)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(prior.parameters(), lr=config.lr)
    prior.train()
    losses, step, train_start = [], 0, time.perf_counter()
    with torch.enable_grad():
        for step in range(1, config.steps + 1):
            batch = pool[torch.randint(0, len(pool), (config.batch,), generator=generator)]
            total, _, _ = prior.loss(batch, config.beta, generator)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            losses.append(total.item())
            if progress is not None and step % 100 == 0:
                progress(step, config.steps, sum(losses[-100:]) / 100)
            if config.max_seconds and time.perf_counter() - train_start > config.max_seconds:
                break
    prior.eval()
    record = {
        "config": asdict(config), "steps_done": step, "training_states": len(pool),
        "seconds_training": round(time.perf_counter() - train_start, 1), "torch_threads": torch.get_num_threads(),
        "final_loss": sum(losses[-100:]) / max(1, len(losses[-100:])),
        "reconstruction_rmse_pool": float(prior.reconstruction_rmse(pool[:500]).mean()),
        "reconstruction_rmse_held_out": float(prior.reconstruction_rmse(held_out).mean()),
    }
    prior.meta = {"training": record}
    return prior, record


def _state_bytes(prior: Prior) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in prior.state_dict().items()})


def save_prior(prior: Prior, agent, record: dict | None = None) -> Path:
    """Write the prior beside ``agent`` (its writable artefact folder): weights, then meta.json."""
    from interpret_rl.artefacts import artefact_dirs, weights_sha256
    from interpret_rl.atomic import atomic_write_bytes, atomic_write_text, sha256_bytes

    folder = artefact_dirs(agent)[0] / PRIOR_DIR
    data = _state_bytes(prior)
    atomic_write_bytes(folder / WEIGHTS, data)
    meta = {"format_version": FORMAT_VERSION, "kind": "conv-vae", "architecture": prior.architecture(),
            "agent": agent.name, "agent_sha256": weights_sha256(agent), "files": {WEIGHTS: sha256_bytes(data)},
            "training": record or {}}
    atomic_write_text(folder / META, json.dumps(_finite(meta), indent=2, sort_keys=True, allow_nan=False))
    return folder


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def prior_folder(agent) -> Path | None:
    """The folder of ``agent``'s prior (its own first, then a bundled one), or None."""
    from interpret_rl.artefacts import artefact_dirs

    return next((d / PRIOR_DIR for d in artefact_dirs(agent) if (d / PRIOR_DIR / META).is_file()), None)


def load_prior(agent) -> Prior | None:
    """The prior trained for exactly ``agent``'s weights, or None when there is none.

    Verifies the sha256 of the weights file and that the prior was trained on this agent's weights;
    a damaged or foreign prior raises ``registry.ModelLoadError`` naming the file and the reason.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from interpret_rl.artefacts import weights_sha256
    from interpret_rl.atomic import sha256_bytes
    from interpret_rl.registry import ModelLoadError

    folder = prior_folder(agent)
    if folder is None:
        return None
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        data = (folder / WEIGHTS).read_bytes()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{folder}: unreadable prior ({err})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"{folder / META}: not a prior meta.json of format {FORMAT_VERSION}")
    if sha256_bytes(data) != meta.get("files", {}).get(WEIGHTS):
        raise ModelLoadError(f"{folder / WEIGHTS}: sha256 does not match meta.json (file changed or corrupt)")
    if meta.get("agent_sha256") != weights_sha256(agent):
        raise ModelLoadError(f"{folder}: this prior was trained for other weights than {agent.name or 'the agent'}'s; "
                             f"train a new one with `interpret-rl prior train`")
    try:
        arch = meta["architecture"]
        prior = Prior(tuple(arch["shape"]), int(arch["latent_dim"]), int(arch["width"]), float(arch["scale"]))
        prior.load_state_dict(load(data), strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
        raise ModelLoadError(f"{folder}: cannot build the prior ({str(err).splitlines()[0]})") from None
    prior.meta = meta
    return prior.eval()
