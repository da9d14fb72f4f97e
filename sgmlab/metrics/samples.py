"""Sample-based distances to a target, each with its noise floor.

The noise floor of a metric is its value for exact samples of the same size: for a two-sample
metric, between two independent exact sample sets; for a metric against the known law, for one
exact sample set. A measured value is only informative where it is clearly above its floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import _checks
from ..targets.base import Target
from ..targets.mixture import GaussianMixture


@dataclass(frozen=True)
class SampleMetric:
    """A sample-based metric: its value, the value for exact samples of the same size, and details
    (sizes, kernel, bins, ... as used)."""

    name: str
    value: float
    noise_floor: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "noise_floor": self.noise_floor, "n": self.n,
                **self.details}


def _check_samples(x: Any, target: Target) -> torch.Tensor:
    if not isinstance(target, Target):
        raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
    x = _checks.points("x", x, target.dim)
    if x.shape[0] < 2:
        raise ValueError(f"x needs at least 2 samples; got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    carrier = target.sample(0)  # the target's dtype and device
    return x.to(dtype=carrier.dtype, device=carrier.device)


def _subsample(x: torch.Tensor, max_n: int, generator: torch.Generator | None) -> torch.Tensor:
    if x.shape[0] <= max_n:
        return x
    idx = torch.randperm(x.shape[0], generator=generator, device=x.device)[:max_n]
    return x[idx]


def _two_sample(name: str, fn: Callable[[torch.Tensor, torch.Tensor], float], x: torch.Tensor,
                target: Target, max_n: int, generator: torch.Generator | None, **details: Any) -> SampleMetric:
    x = _subsample(_check_samples(x, target), max_n, generator)
    n = x.shape[0]
    y, y2 = target.sample(n, generator=generator), target.sample(n, generator=generator)
    return SampleMetric(name, fn(x, y), fn(y2, y), n, details)


# -- Wasserstein -------------------------------------------------------------------------------

def w2_samples(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W2 between two empirical laws with uniform weights (POT's network simplex)."""
    import numpy as np
    import ot

    a = np.full(x.shape[0], 1.0 / x.shape[0])
    b = np.full(y.shape[0], 1.0 / y.shape[0])
    M = torch.cdist(x, y).square().cpu().numpy()
    return math.sqrt(max(float(ot.emd2(a, b, M, numItermax=10_000_000)), 0.0))


def w2(x: torch.Tensor, target: Target, *, max_n: int = 2000, generator: torch.Generator | None = None) -> SampleMetric:
    """W2 between the samples and the target by exact optimal transport (POT) against a fresh
    exact sample of the same size; at most ``max_n`` points are used (a random subset beyond)."""
    max_n = _checks.positive_int("max_n", max_n, minimum=2)
    return _two_sample("w2", w2_samples, x, target, max_n, generator)


def sliced_w2_samples(x: torch.Tensor, y: torch.Tensor, projections: int = 256, *,
                      generator: torch.Generator | None = None) -> float:
    r"""Sliced W2: :math:`\bigl(E_\theta W_2^2(\theta^\top x, \theta^\top y)\bigr)^{1/2}` over
    ``projections`` random unit directions; 1-D W2 by matching quantiles."""
    theta = torch.randn(x.shape[1], projections, generator=generator, dtype=x.dtype, device=x.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    if px.shape[0] != py.shape[0]:
        qs = (torch.arange(max(px.shape[0], py.shape[0]), dtype=x.dtype, device=x.device) + 0.5) / max(
            px.shape[0], py.shape[0])
        px = torch.quantile(px, qs, dim=0, interpolation="nearest")
        py = torch.quantile(py, qs, dim=0, interpolation="nearest")
    return math.sqrt(float(((px - py) ** 2).mean()))


def sliced_w2(x: torch.Tensor, target: Target, *, projections: int = 256, max_n: int = 100_000,
              generator: torch.Generator | None = None) -> SampleMetric:
    """Sliced W2 against a fresh exact sample of the same size (see :func:`sliced_w2_samples`)."""
    projections = _checks.positive_int("projections", projections)
    return _two_sample("sliced_w2", lambda a, b: sliced_w2_samples(a, b, projections, generator=generator),
                       x, target, max_n, generator, projections=projections)


# -- MMD ---------------------------------------------------------------------------------------

def _kernel_sum(x: torch.Tensor, y: torch.Tensor, bw: float, block: int = 2048) -> float:
    total = 0.0
    for xb in x.split(block):
        total += float(torch.exp(-torch.cdist(xb, y).square() / (2 * bw * bw)).sum())
    return total


def mmd_samples(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    r"""Unbiased estimate of :math:`\mathrm{MMD}^2` with the Gaussian kernel
    :math:`k(x, y) = \exp(-|x - y|^2 / (2\ell^2))` (may be slightly negative)."""
    n, m = x.shape[0], y.shape[0]
    kxx = (_kernel_sum(x, x, bandwidth) - n) / (n * (n - 1))
    kyy = (_kernel_sum(y, y, bandwidth) - m) / (m * (m - 1))
    return kxx + kyy - 2 * _kernel_sum(x, y, bandwidth) / (n * m)


def median_bandwidth(y: torch.Tensor, max_n: int = 1000) -> float:
    """Median heuristic: the median pairwise distance among (at most ``max_n`` of) the points."""
    y = y[:max_n]
    dist = torch.pdist(y)
    return float(dist.median()) if dist.numel() else 1.0


def mmd(x: torch.Tensor, target: Target, *, bandwidth: float | None = None, max_n: int = 4000,
        generator: torch.Generator | None = None) -> SampleMetric:
    """Unbiased MMD^2 (Gaussian kernel) against a fresh exact sample of the same size. The
    bandwidth defaults to the median heuristic on an exact sample and is reported."""
    max_n = _checks.positive_int("max_n", max_n, minimum=2)
    x = _check_samples(x, target)
    if bandwidth is None:
        bandwidth = median_bandwidth(target.sample(1000, generator=generator))
    bandwidth = _checks.real("bandwidth", bandwidth, low=0.0, low_open=True)
    return _two_sample("mmd2", lambda a, b: mmd_samples(a, b, bandwidth), x, target, max_n, generator,
                       kernel=f"gaussian, bandwidth {bandwidth:.4g}", bandwidth=bandwidth)


# -- TV against the known law ------------------------------------------------------------------

def mode_weights(x: torch.Tensor, target: GaussianMixture) -> torch.Tensor:
    """Fraction of samples assigned to each component (by largest responsibility), shape (K,)."""
    labels = target.responsibilities(x).argmax(1)
    return torch.bincount(labels, minlength=target.n_components).to(x.dtype) / x.shape[0]


def mode_tv(x: torch.Tensor, target: GaussianMixture, *, generator: torch.Generator | None = None) -> SampleMetric:
    r"""Mode-weight TV :math:`\tfrac12\sum_k |\hat w_k - w_k|` for a mixture with well separated
    modes: each sample is assigned to its most probable component. It measures whether a sampler
    puts the right mass on each mode (PAPER.md section 7, claim 2)."""
    if not isinstance(target, GaussianMixture):
        raise TypeError(f"mode_tv needs a GaussianMixture target; got {type(target).__name__}")
    x = _check_samples(x, target)
    w_hat = mode_weights(x, target)
    w_ref = mode_weights(target.sample(x.shape[0], generator=generator), target)
    tv = 0.5 * float((w_hat - target.weights).abs().sum())
    floor = 0.5 * float((w_ref - target.weights).abs().sum())
    return SampleMetric("mode_tv", tv, floor, x.shape[0],
                        {"weights_measured": w_hat.tolist(), "weights_exact": target.weights.tolist()})


def _histogram_tv(x: torch.Tensor, target: Target, edges: list[torch.Tensor], sub: int) -> float:
    d = len(edges)
    # exact bin masses by the midpoint rule on `sub` points per bin and axis
    mids, widths = [], []
    for e in edges:
        w = (e[1:] - e[:-1]) / sub
        pts = e[:-1, None] + w[:, None] * (torch.arange(sub, dtype=e.dtype) + 0.5)
        mids.append(pts.reshape(-1))
        widths.append(w.repeat_interleave(sub))
    grid = torch.stack(torch.meshgrid(*mids, indexing="ij"), -1).reshape(-1, d)
    cell = torch.stack(torch.meshgrid(*widths, indexing="ij"), -1).prod(-1).reshape(-1)
    dens = torch.exp(target.log_prob(grid)) * cell
    shape = [len(e) - 1 for e in edges]
    q = dens.reshape([s for n in shape for s in (n, sub)])
    q = q.sum(dim=tuple(range(1, 2 * d, 2))).reshape(-1)
    # empirical bin masses
    idx = torch.zeros(x.shape[0], dtype=torch.long)
    inside = torch.ones(x.shape[0], dtype=torch.bool)
    for j, e in enumerate(edges):
        b = torch.bucketize(x[:, j].contiguous(), e, right=True) - 1
        inside &= (b >= 0) & (b < len(e) - 1)
        idx = idx * (len(e) - 1) + b.clamp(0, len(e) - 2)
    p = torch.bincount(idx[inside], minlength=q.numel()).to(x.dtype) / x.shape[0]
    p_out, q_out = 1 - float(p.sum()), max(1 - float(q.sum()), 0.0)
    return 0.5 * (float((p - q).abs().sum()) + abs(p_out - q_out))


def tv_histogram(x: torch.Tensor, target: Target, *, bins: int | None = None, sub: int = 5,
                 generator: torch.Generator | None = None) -> SampleMetric:
    r"""TV between the histogram of the samples and the target's exact bin masses (quadrature of
    the known density, midpoint rule with ``sub`` points per bin and axis), for d = 1 or 2.

    The box covers the target's 0.05%-99.95% quantiles per axis, widened by 10%; the mass outside
    counts as one more bin. This is the TV of the binned laws: a lower bound on the TV of the
    laws themselves, up to sampling noise (see the noise floor).
    """
    x = _check_samples(x, target)
    if target.dim > 2:
        raise ValueError(f"tv_histogram works in 1 or 2 dimensions; got d={target.dim} (use target.project)")
    bins = _checks.positive_int("bins", bins if bins is not None else (200 if target.dim == 1 else 50))
    sub = _checks.positive_int("sub", sub)
    ref = target.sample(max(20_000, x.shape[0]), generator=generator)
    edges = []
    for j in range(target.dim):
        lo, hi = torch.quantile(ref[:20_000, j], torch.tensor([5e-4, 1 - 5e-4], dtype=ref.dtype)).tolist()
        pad = 0.1 * (hi - lo)
        edges.append(torch.linspace(lo - pad, hi + pad, bins + 1, dtype=x.dtype))
    value = _histogram_tv(x, target, edges, sub)
    floor = _histogram_tv(ref[: x.shape[0]], target, edges, sub)
    return SampleMetric("tv_histogram", value, floor, x.shape[0], {"bins_per_axis": bins, "quadrature_points": sub})
