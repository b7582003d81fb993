"""How alike two things are: the rank correlation of two maps, and linear CKA of two representations.

* ``rank_correlation``: Spearman's rho (the Pearson correlation of ranks, ties sharing their mean
  rank, as ``scipy.stats.spearmanr``). Used to say whether two explanations rank the same pixels
  high (the randomization sanity check; agreement between agents).
* ``linear_cka``: centred kernel alignment with a linear kernel (Kornblith et al. 2019, "Similarity
  of Neural Network Representations Revisited", eq. 4): for ``X (n, p)`` and ``Y (n, q)`` with
  centred columns, ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``. 1 for the same representation up
  to an orthogonal transform and an isotropic scaling; it compares what two networks compute on the
  same inputs without matching their units one to one.
* ``cka_interval``: a jackknife interval (leave one input out). Not a bootstrap: resampling inputs
  with replacement duplicates rows, and duplicates alone raise CKA (measured on 6 Breakout states:
  CKA 0.65, the bootstrap's 2.5th percentile 0.66), so a percentile interval can miss the value.
* ``cka_chance``: linear CKA is biased upward when the features outnumber the inputs (with ``n``
  inputs, any two wide random representations look alike), so the report gives, beside every CKA,
  its level for the same two representations with the rows of one shuffled (correspondence
  destroyed, everything else kept).
"""

from __future__ import annotations

import math

from interpret_rl.lazy import lazy_module

torch = lazy_module("torch")


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks of a 1-D tensor, ties sharing their mean rank (as ``scipy.stats.rankdata``)."""
    _, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True)
    last = counts.cumsum(0).double()  # rank of each distinct value's last occurrence
    return (last - (counts.double() - 1) / 2)[inverse]


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rho of two tensors with the same number of elements: the Pearson correlation of
    their ranks (ties averaged, as ``scipy.stats.spearmanr``). ``nan`` when either is constant."""
    ra, rb = _ranks(a.detach().flatten().double().cpu()), _ranks(b.detach().flatten().double().cpu())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = ra.norm() * rb.norm()
    return float(ra @ rb / denominator) if denominator > 0 else math.nan


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same ``n`` inputs: ``x (n, p)``, ``y (n, q)``
    (more dimensions are flattened). In [0, 1]; ``nan`` when either is constant over the inputs.
    Computed in float64, through ``n x n`` Gram matrices when the inputs are fewer than the features
    (``<X X^T, Y Y^T>_F = ||Y^T X||_F^2`` for centred columns) and through the covariances otherwise."""
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same inputs on both sides: {len(x)} rows against {len(y)}")
    if len(x) < 2:
        raise ValueError(f"CKA needs at least 2 inputs, got {len(x)}")
    x = x.detach().flatten(1).double().cpu()
    y = y.detach().flatten(1).double().cpu()
    x, y = x - x.mean(0), y - y.mean(0)
    if len(x) < max(x.shape[1], y.shape[1]):  # fewer inputs than features: the same through n x n Gram matrices
        gram_x, gram_y = x @ x.T, y @ y.T
        cross, self_x, self_y = (gram_x * gram_y).sum(), gram_x.norm(), gram_y.norm()
    else:
        cross = torch.linalg.matrix_norm(y.T @ x) ** 2
        self_x, self_y = torch.linalg.matrix_norm(x.T @ x), torch.linalg.matrix_norm(y.T @ y)
    if self_x == 0 or self_y == 0:
        return math.nan
    return float(cross / (self_x * self_y))


def cka_chance(x: torch.Tensor, y: torch.Tensor, shuffles: int = 20, seed: int = 0) -> float:
    """Mean linear CKA of ``x`` against ``y`` with its rows shuffled (``shuffles`` seeded
    permutations): what CKA says for these two representations when they share no inputs."""
    generator = torch.Generator().manual_seed(seed)
    values = [linear_cka(x, y[torch.randperm(len(y), generator=generator)]) for _ in range(shuffles)]
    return float(sum(values) / len(values))


def cka_interval(x: torch.Tensor, y: torch.Tensor, z: float = 1.959964) -> tuple[float, float] | None:
    """95 % jackknife interval of ``linear_cka(x, y)``: the value +/- ``z`` jackknife standard errors
    (leave one input out; Efron and Tibshirani 1993, ch. 11), clipped to [0, 1]. None with fewer than
    3 inputs or an undefined value."""
    n = len(x)
    value = linear_cka(x, y) if n >= 2 else math.nan
    if n < 3 or not math.isfinite(value):
        return None
    keep = torch.ones(n, dtype=torch.bool)
    left_out = []
    for i in range(n):
        keep[i] = False
        left_out.append(linear_cka(x[keep], y[keep]))
        keep[i] = True
    values = torch.tensor(left_out, dtype=torch.float64)
    if not torch.isfinite(values).all():
        return None
    error = math.sqrt((n - 1) / n * float(((values - values.mean()) ** 2).sum()))
    return max(0.0, value - z * error), min(1.0, value + z * error)
