r"""Total variation to an empirical law, up to a tolerance: how many outputs are not a data point
(blends), and how evenly the data points are reproduced.

For an :class:`~sgmlab.targets.Empirical` target :math:`q = \sum_i w_i \delta_{a_i}`, quantize a
point to the index of the atom within ``radius`` of it, or to "off" (the balls are disjoint). For
the quantized output law :math:`\pi` (mass :math:`\pi_i` on atom i, :math:`\pi_{off}` off every
ball) the total variation to q is

.. math::  TV_r = \tfrac12\Big(\sum_i |\pi_i - w_i| + \pi_{off}\Big) \le TV(p, q)

(data processing), and it lies between two quantities with unbiased estimates:

.. math::  \pi_{off} \;\le\; TV_r \;\le\; \tfrac12\big(\pi_{off} + \sqrt{\chi^2}\big),\qquad
           \chi^2 = \sum_i \frac{(\pi_i - w_i)^2}{w_i} = \sum_i \frac{\pi_i^2}{w_i} - 2(1 - \pi_{off}) + 1,

the lower bound because :math:`\sum_i (w_i - \pi_i) = \pi_{off}`, the upper by Cauchy-Schwarz.
:math:`\pi_{off}` is estimated by the fraction of samples off the balls, :math:`\sum_i \pi_i^2/w_i`
by the U-statistic :math:`\sum_i c_i(c_i - 1) / (n(n-1) w_i)` of the counts :math:`c_i`.

Uneven frequencies on the atoms raise the lower bound too: for any set S of cells,
:math:`TV_r \ge \pi(S) - q(S)` (Le Cam). S is chosen on the even rows (the atoms they
over-represent, and "off") and :math:`\pi(S)` is estimated on the odd rows, which keeps the
estimate unbiased given S. ``lower`` is the larger of the two bounds (each one-sided at p = 0.01,
so jointly at p <= 0.02).

The lower bound is linear in the misplaced mass, so it resolves errors that any smooth-kernel
metric (the MMD) averages away when they are spread thinly over many atoms; the upper bound
certifies a sampler that reproduces data points.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .. import _checks
from ..targets.base import CHUNK_ELEMENTS
from ..targets.empirical import Empirical
from .samples import Z_99, _check_samples, _jackknife_se


class AtomTV(NamedTuple):
    """:func:`atom_tv`'s result. ``lower`` and ``upper`` are confidence bounds on the quantized TV
    (each part one-sided at p = 0.01): ``lower`` is the larger of the Wilson lower bound of the
    off-support fraction and a split-sample bound that also sees uneven frequencies (module
    docstring), ``upper = (off_hi + sqrt(max(0, chi2 + z chi2_se))) / 2`` (at most 1) with off_hi its
    Wilson upper bound; ``off_support_se`` is the binomial standard error."""

    lower: float
    upper: float
    off_support: float
    off_support_se: float
    chi2: float
    chi2_se: float
    radius: float
    n: int

    def __repr__(self) -> str:
        return (f"AtomTV(lower={self.lower:.4g}, upper={self.upper:.4g}, off_support={self.off_support:.4g} "
                f"± {self.off_support_se:.2g}, chi2={self.chi2:.4g} ± {self.chi2_se:.2g}, radius={self.radius:.3g}, "
                f"n={self.n})")


def _distinct_atoms(target: Empirical) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct points of the target and their total weights (repeated points merged)."""
    atoms, inverse = torch.unique(target.points, dim=0, return_inverse=True)
    w = torch.zeros(atoms.shape[0], dtype=target.weights.dtype, device=atoms.device).index_add_(0, inverse,
                                                                                               target.weights)
    keep = w > 0
    return atoms[keep], w[keep]


def _nearest(x: torch.Tensor, atoms: torch.Tensor, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and index of, the nearest atom for every row of x (chunked)."""
    rows = max(1, CHUNK_ELEMENTS // max(1, atoms.shape[0]))
    dist, idx = [], []
    for start in range(0, x.shape[0], rows):
        d = torch.cdist(x[start:start + rows], atoms)
        if exclude_self:
            d[torch.arange(d.shape[0]), torch.arange(start, start + d.shape[0])] = math.inf
        m, i = d.min(1)
        dist.append(m)
        idx.append(i)
    return torch.cat(dist), torch.cat(idx)


def atom_separation(target: Empirical) -> tuple[float, float]:
    """The smallest and the median distance from a distinct data point to its nearest other one."""
    if not isinstance(target, Empirical):
        raise TypeError(f"target must be an Empirical law; got {type(target).__name__}")
    return _separation(_distinct_atoms(target)[0])


def _separation(atoms: torch.Tensor) -> tuple[float, float]:
    if atoms.shape[0] < 2:
        return math.inf, math.inf
    d, _ = _nearest(atoms, atoms, exclude_self=True)
    return float(d.min()), float(d.median())


def atom_tv(x: torch.Tensor, target: Empirical, *, radius: float | None = None, groups: int = 64) -> AtomTV:
    """Bounds on the total variation between the law of ``x`` and an empirical target, with points
    within ``radius`` of a data point counted as that point (module docstring).

    ``radius`` defaults to 1e-3 times the median nearest-neighbour distance of the data (a rounding
    tolerance), or a quarter of the smallest if that is less; it must be less than half the
    smallest distance between distinct data points, so that no sample is within reach of two. Standard errors: binomial for the off-support fraction,
    delete-a-group jackknife (``groups`` groups of consecutive rows) for chi2.

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> q = sg.targets.Empirical(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    >>> x = q.sample(3000, generator=torch.Generator().manual_seed(0))
    >>> x[:300] = 0.5                                     # a tenth are blends of two data points
    >>> r = sg.metrics.atom_tv(x, q)
    >>> round(r.off_support, 3), round(r.lower, 3), round(r.upper, 3)   # the true value is 0.1
    (0.1, 0.088, 0.137)
    """
    if not isinstance(target, Empirical):
        raise TypeError(f"target must be an Empirical law (data points); got {type(target).__name__}")
    x = _check_samples(x, target)
    n = x.shape[0]
    if n < 4:
        raise ValueError(f"x needs at least 4 samples (two per jackknife group); got {n}")
    groups = max(2, min(_checks.positive_int("groups", groups, minimum=2), n // 2))
    atoms, w = _distinct_atoms(target)
    smallest, median = _separation(atoms)
    if radius is None:
        radius = min(1e-3 * median, 0.25 * smallest) if math.isfinite(median) else 1.0
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not math.isfinite(radius) or radius <= 0:
        raise ValueError(f"radius must be a positive number; got {radius!r}")
    if 2 * radius >= smallest:
        raise ValueError(f"radius {radius:.4g} must be less than half the smallest distance between distinct data "
                         f"points ({smallest:.4g}), so that the balls around them are disjoint")

    dist, idx = _nearest(x, atoms)
    K = atoms.shape[0]
    cell = torch.where(dist <= radius, idx, K)  # the atom's index, or K: off every ball
    counts = torch.stack([torch.bincount(cb, minlength=K + 1) for cb in cell.tensor_split(groups)]).to(x.dtype)

    def chi2(c: torch.Tensor) -> torch.Tensor:  # unbiased, from counts of shape (..., K + 1)
        m = c.sum(-1)
        s = (c[..., :K] * (c[..., :K] - 1) / w).sum(-1) / (m * (m - 1))
        return s - 2 * (1 - c[..., K] / m) + 1

    total = counts.sum(0)
    value = float(chi2(total))
    chi2_se = _jackknife_se(chi2(total - counts))
    off = float(total[K]) / n
    off_lo, off_hi = _wilson(off, n)
    upper = min(1.0, 0.5 * (off_hi + math.sqrt(max(0.0, value + Z_99 * chi2_se))))
    lower = max(off_lo, _split_lower(cell, w))
    return AtomTV(lower, upper, off, math.sqrt(off * (1 - off) / n), value, chi2_se, float(radius), n)


def _split_lower(cell: torch.Tensor, w: torch.Tensor) -> float:
    """Le Cam's bound TV >= pi(S) - q(S) with the set S chosen on one half of the samples (the atoms
    they over-represent, and "off") and pi(S) bounded below on the other half (Wilson)."""
    K = w.shape[0]
    first, second = cell[0::2], cell[1::2]
    freq = torch.bincount(first, minlength=K + 1).to(w.dtype) / first.shape[0]
    chosen = torch.cat([freq[:K] > w, torch.ones(1, dtype=torch.bool, device=w.device)])
    hits = float(chosen[second].double().mean())
    return max(0.0, _wilson(hits, second.shape[0])[0] - float(w[chosen[:K]].sum()))


def _wilson(p: float, n: int, z: float = Z_99) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion: each end one-sided at level z (sound at p = 0 or 1)."""
    c = z * z / n
    mid, half = (p + c / 2) / (1 + c), z * math.sqrt(p * (1 - p) / n + c / (4 * n)) / (1 + c)
    return (0.0 if p == 0 else max(0.0, mid - half)), (1.0 if p == 1 else min(1.0, mid + half))
