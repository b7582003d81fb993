"""The policy's distribution over actions, for discrete and continuous (Box) action spaces.

A network's first output (``logits``) is read in one of two ways:

* discrete actions: unnormalised log-probabilities of a categorical distribution;
* continuous actions: the mean of a diagonal Gaussian whose log standard deviation is the
  network's state-independent ``log_std`` parameter (as stable-baselines3's). The environment
  receives the sample clipped to the action bounds (``envs.ClassicVectorEnv.step``), but
  log-probabilities are those of the unclipped sample, as in stable-baselines3 and CleanRL.

Written out instead of ``torch.distributions`` so sampling takes the run's seeded generator;
``tests/test_continuous.py`` checks them against ``torch.distributions``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``(B, A)`` means, ``(A,)`` log-stds, ``(B, A)`` actions -> ``(B,)`` summed log-densities."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - LOG_SQRT_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor, batch: int) -> torch.Tensor:
    """Entropy of the diagonal Gaussian, the same for every state: ``(batch,)``."""
    return (0.5 + LOG_SQRT_2PI + log_std).sum().expand(batch)


def log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor,
                         log_std: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log pi(action | s), entropy of pi(. | s))``, both ``(B,)``.

    :param actions: ``(B,)`` indices for a categorical policy, ``(B, A)`` for a Gaussian one.
    :param log_std: the network's ``log_std`` for a Gaussian policy, ``None`` for a categorical one.
    """
    if log_std is not None:
        return gaussian_log_prob(logits, log_std, actions), gaussian_entropy(log_std, len(logits))
    log_probs = F.log_softmax(logits, dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return log_probs.gather(1, actions[:, None]).squeeze(1), entropy


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None,
                   log_std: torch.Tensor | None = None) -> torch.Tensor:
    """One action per row: ``(B,)`` indices (categorical) or ``(B, A)`` unclipped values (Gaussian)."""
    if log_std is not None:
        noise = torch.randn(logits.shape, generator=generator, device=logits.device)
        return logits + noise * log_std.exp()
    return torch.multinomial(F.softmax(logits, -1), 1, generator=generator)[:, 0]


def network_log_std(network) -> torch.Tensor | None:
    """The network's Gaussian ``log_std`` parameter, or ``None`` for a categorical policy."""
    return getattr(network, "log_std", None)
