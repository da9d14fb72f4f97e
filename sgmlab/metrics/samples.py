"""Sample-based distances to a target, each with its noise floor.

The noise floor of a metric is its value for exact samples of the same size: for a two-sample
metric, between two independent exact sample sets; for a metric against the known law, for one
exact sample set. A measured value is only informative where it is clearly above its floor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from .. import _checks
from ..targets.base import CHUNK_ELEMENTS, Target
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


FLOOR_DRAWS = 4  # independent exact samples the noise floor averages over


def _two_sample(name: str, fn: Callable[[torch.Tensor, torch.Tensor], float], x: torch.Tensor,
                target: Target, max_n: int, generator: torch.Generator | None, **details: Any) -> SampleMetric:
    """The metric between x and an exact sample y, and its noise floor: the mean magnitude of the same
    metric between ``FLOOR_DRAWS`` further exact samples and y (its spread in the details), never
    negative and not a single random draw."""
    x = _subsample(_check_samples(x, target), max_n, generator)
    n = x.shape[0]
    y = target.sample(n, generator=generator)
    floors = torch.tensor([abs(fn(target.sample(n, generator=generator), y)) for _ in range(FLOOR_DRAWS)])
    details = {**details, "noise_floor_spread": float(floors.std()), "noise_floor_draws": FLOOR_DRAWS}
    return SampleMetric(name, fn(x, y), float(floors.mean()), n, details)


# -- Wasserstein -------------------------------------------------------------------------------

def w2_samples(x: torch.Tensor, y: torch.Tensor) -> float:
    """Exact W2 between two empirical laws with uniform weights (POT's network simplex)."""
    import numpy as np
    import ot

    x, y = _float64(x, y)
    a = np.full(x.shape[0], 1.0 / x.shape[0])
    b = np.full(y.shape[0], 1.0 / y.shape[0])
    s = _scale(x, y)  # W2 is homogeneous: computed on x / s, y / s so no squared distance overflows
    M = torch.cdist(x / s, y / s).square().cpu().numpy()
    return s * math.sqrt(max(float(ot.emd2(a, b, M, numItermax=10_000_000)), 0.0))


def _float64(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sample sets compared in float64 (float32 samples from a float32 state meet float64 data)."""
    return x.to(torch.float64), y.to(torch.float64)


def _scale(x: torch.Tensor, y: torch.Tensor) -> float:
    """A power of two near the largest coordinate of x and y (1 below 1e100): dividing by it is exact."""
    big = max(float(x.abs().max()), float(y.abs().max()))
    return 2.0 ** math.frexp(big)[1] if big > 1e100 else 1.0


def w2(x: torch.Tensor, target: Target, *, max_n: int = 2000, generator: torch.Generator | None = None) -> SampleMetric:
    """W2 between the samples and the target by exact optimal transport (POT) against a fresh
    exact sample of the same size; at most ``max_n`` points are used (a random subset beyond)."""
    max_n = _checks.positive_int("max_n", max_n, minimum=2)
    return _two_sample("w2", w2_samples, x, target, max_n, generator)


def sliced_w2_samples(x: torch.Tensor, y: torch.Tensor, projections: int = 256, *,
                      generator: torch.Generator | None = None) -> float:
    r"""Sliced W2: :math:`\bigl(E_\theta W_2^2(\theta^\top x, \theta^\top y)\bigr)^{1/2}` over
    ``projections`` random unit directions; 1-D W2 by matching quantiles."""
    x, y = _float64(x, y)
    theta = torch.randn(x.shape[1], projections, generator=generator, dtype=x.dtype, device=x.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    s = _scale(x, y)
    px, _ = torch.sort((x / s) @ theta, dim=0)
    py, _ = torch.sort((y / s) @ theta, dim=0)
    if px.shape[0] != py.shape[0]:
        qs = (torch.arange(max(px.shape[0], py.shape[0]), dtype=x.dtype, device=x.device) + 0.5) / max(
            px.shape[0], py.shape[0])
        px = torch.quantile(px, qs, dim=0, interpolation="nearest")
        py = torch.quantile(py, qs, dim=0, interpolation="nearest")
    return s * math.sqrt(float(((px - py) ** 2).mean()))


def sliced_w2(x: torch.Tensor, target: Target, *, projections: int = 256, max_n: int = 100_000,
              generator: torch.Generator | None = None) -> SampleMetric:
    """Sliced W2 against a fresh exact sample of the same size (see :func:`sliced_w2_samples`)."""
    projections = _checks.positive_int("projections", projections)
    return _two_sample("sliced_w2", lambda a, b: sliced_w2_samples(a, b, projections, generator=generator),
                       x, target, max_n, generator, projections=projections)


# -- MMD ---------------------------------------------------------------------------------------

def _kernel_sum(x: torch.Tensor, y: torch.Tensor, bw: float, block: int = 2048) -> float:
    # |x|^2 + |y|^2 - 2 x.y (cdist's fast mode) is inf - inf for coordinates beyond 1e154: take differences there
    mode = "donot_use_mm_for_euclid_dist" if _scale(x, y) > 1 else "use_mm_for_euclid_dist_if_necessary"
    total = 0.0
    for xb in x.split(block):
        total += float(torch.exp(-torch.cdist(xb, y, compute_mode=mode).square() / (2 * bw * bw)).sum())
    return total


def mmd_samples(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    r"""Unbiased estimate of :math:`\mathrm{MMD}^2` with the Gaussian kernel
    :math:`k(x, y) = \exp(-|x - y|^2 / (2\ell^2))` (may be slightly negative)."""
    x, y = _float64(x, y)
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
    puts the right mass on each mode (Chen et al. 2023, abstract point (2): no functional inequality)."""
    if not isinstance(target, GaussianMixture):
        raise TypeError(f"mode_tv needs a GaussianMixture target; got {type(target).__name__}")
    x = _check_samples(x, target)
    w_hat = mode_weights(x, target)
    tv = 0.5 * float((w_hat - target.weights).abs().sum())
    # the floor: the expected mode-weight TV of n exact samples, E|w_hat_k - w_k| = sqrt(2 w_k (1 - w_k) / (pi n))
    # (normal approximation; the assignment by responsibility is taken as exact for well separated modes)
    w = target.weights.double()
    floor = float(0.5 * torch.sqrt(2 * w * (1 - w) / (math.pi * x.shape[0])).sum())
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
    floors = torch.tensor([_histogram_tv(target.sample(x.shape[0], generator=generator), target, edges, sub)
                           for _ in range(FLOOR_DRAWS)])
    return SampleMetric("tv_histogram", value, float(floors.mean()), x.shape[0],
                        {"bins_per_axis": bins, "quadrature_points": sub, "noise_floor_spread": float(floors.std()),
                         "noise_floor_draws": FLOOR_DRAWS})


# -- MMD against the exact law -----------------------------------------------------------------

Z_99 = 2.3263478740408408  # one-sided 1% quantile of the standard normal


def mmd_frequencies(target: Target, *, features: int = 1024, bandwidths: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0),
                    seed: int = 0) -> torch.Tensor:
    r"""Random frequencies :math:`w_j = z_j / \ell_j`, :math:`z_j \sim N(0, I_d)`, shape (features, d),
    for :func:`mmd_exact`. The bandwidths :math:`\ell_j` cycle through ``bandwidths`` times the
    median distance between exact samples (2000 of them): a mixture of Gaussian kernels from the
    scale of the whole law down to an eighth of it. Fixed by ``seed``, so that every sampler is
    measured with the same kernel."""
    features = _checks.positive_int("features", features)
    if not bandwidths or any(not (isinstance(b, (int, float)) and math.isfinite(b) and b > 0) for b in bandwidths):
        raise ValueError(f"bandwidths must be positive multiples of the median distance; got {bandwidths}")
    g = torch.Generator().manual_seed(int(seed))
    y = target.sample(2000, generator=g)
    scale = median_bandwidth(y, max_n=2000)
    ell = scale * torch.tensor(bandwidths, dtype=y.dtype).repeat(features // len(bandwidths) + 1)[:features]
    z = torch.randn(features, target.dim, generator=g, dtype=y.dtype).to(y.device)
    return z / ell.to(y.device)[:, None]


def mmd_group_sizes(n: int, groups: int) -> list[int]:
    """The jackknife groups of n rows: ``groups`` (at least 2, at most n // 2) runs of consecutive
    rows, as ``torch.tensor_split`` makes them."""
    groups = max(2, min(groups, n // 2))
    return [t.shape[0] for t in torch.empty(n, 0).tensor_split(groups)]


def _mmd_group_sums(x: torch.Tensor, w: torch.Tensor, groups: int | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group of consecutive rows (``groups``: a count, or the sizes), the sums of exp(i w.x_i),
    shape (groups, D), and the group sizes."""
    D = w.shape[0]
    split = mmd_group_sizes(x.shape[0], groups) if isinstance(groups, int) else list(groups)
    if sum(split) != x.shape[0]:
        raise ValueError(f"group sizes {split} do not add up to the {x.shape[0]} rows")
    rows = max(1, CHUNK_ELEMENTS // D)
    re = torch.zeros(len(split), D, dtype=x.dtype, device=x.device)
    im = torch.zeros_like(re)
    sizes = []
    for b, xb in enumerate(x.split(split)):
        sizes.append(xb.shape[0])
        for c in xb.split(rows):
            theta = c @ w.T
            re[b] += theta.cos().sum(0)
            im[b] += theta.sin_().sum(0)
    return torch.complex(re, im), torch.tensor(sizes, dtype=x.dtype, device=x.device)


def _mmd_jackknife(sums: torch.Tensor, m: torch.Tensor, phi: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The unbiased MMD^2 from group sums, and its values with each group left out.

    With e_i = exp(i w.x_i) and f_i = e_i - phi, the U-statistic needs only the group sums:
    S_b = sum_b e_i - n_b phi and Q_b = sum_b |f_i|^2 = n_b sum_j (1 + |phi_j|^2) - 2 Re<sum_b e_i, phi>.
    """
    S = sums - m[:, None] * phi
    Q = m * float((1 + phi.abs().square()).sum()) - 2 * (sums * phi.conj()).real.sum(-1)
    return _u_jackknife(S, Q, m)


def _u_jackknife(S: torch.Tensor, Q: torch.Tensor, m: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The U-statistic (1 / (n (n-1) D)) sum_{i != i'} <f_i, f_i'> from per-group sums S_b = sum_b f_i
    (shape (groups, D)) and Q_b = sum_b |f_i|^2, and its values with each group left out."""
    n, D = float(m.sum()), S.shape[1]
    s_all, q_all = S.sum(0), Q.sum()
    u = float((s_all.abs().square().sum() - q_all) / (n * (n - 1) * D))
    rest = n - m
    return u, ((s_all - S).abs().square().sum(-1) - (q_all - Q)) / (rest * (rest - 1) * D)


def _jackknife_se(u_minus: torch.Tensor) -> float:
    B = u_minus.shape[0]
    return math.sqrt(float((B - 1) / B * (u_minus - u_minus.mean()).square().sum()))


class MMDEstimate(NamedTuple):
    """An unbiased MMD^2 estimate, its jackknife standard error, and its values with each group of
    rows left out (for the errors of differences between coupled sample sets)."""

    value: float
    se: float
    leave_out: torch.Tensor

    def __repr__(self) -> str:
        return f"MMDEstimate(value={self.value:.4g}, se={self.se:.2g}, groups={self.leave_out.shape[0]})"


class ExactMMD:
    r"""Squared MMD to a target against its exact characteristic function: no reference sample, no
    bias, and a noise level that falls like 1/n.

    The kernel is :math:`k(x, y) = \frac1D \sum_j \cos(w_j^\top (x - y))` with the D fixed random
    frequencies of :func:`mmd_frequencies` (a random-feature mixture of Gaussian kernels), so

    .. math::
        \mathrm{MMD}^2 = \frac1D \sum_j \bigl|\varphi_{\hat q}(w_j) - \varphi_q(w_j)\bigr|^2 ,

    estimated without bias by the U-statistic
    :math:`\frac{1}{n(n-1)D}\sum_{i \ne i'} \langle f_i, f_{i'} \rangle` with
    :math:`f_i = (e^{i w_j^\top x_i} - \varphi_q(w_j))_j` (it may be slightly negative). Its standard
    error is the delete-a-group jackknife over ``groups`` groups of consecutive rows; it errs on the
    large side (by up to about 1.4x for exact samples).

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> q = sg.targets.mixture2d()
    >>> meter = sg.metrics.ExactMMD(q, features=256)
    >>> est = meter(q.sample(10_000, generator=torch.Generator().manual_seed(0)))
    >>> abs(est.value) < 3 * est.se    # exact samples: zero within the noise
    True
    """

    def __init__(self, target: Target, *, features: int = 1024,
                 bandwidths: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0), seed: int = 0, groups: int = 64):
        if not isinstance(target, Target):
            raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
        self.target, self.groups = target, _checks.positive_int("groups", groups, minimum=2)
        self.bandwidths, self.seed = tuple(bandwidths), int(seed)
        self.w = mmd_frequencies(target, features=features, bandwidths=self.bandwidths, seed=self.seed)
        self.phi = target.characteristic_function(self.w)

    def __call__(self, x: torch.Tensor) -> MMDEstimate:
        x = _check_samples(x, self.target)
        if x.shape[0] < 4:
            raise ValueError(f"x needs at least 4 samples: at least 2 in each of 2 jackknife groups; got {x.shape[0]}")
        return self.estimate(*self.group_sums(x, mmd_group_sizes(x.shape[0], self.groups)))

    def group_sums(self, x: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The sums of exp(i w.x) over consecutive groups of rows of the given ``sizes`` (complex,
        shape (len(sizes), D)) and the sizes: what :meth:`estimate` needs. Shards of a sample set
        that hold whole groups give, stacked, the sums of the whole set (sampling across processes)."""
        x = _check_samples(x, self.target)
        return _mmd_group_sums(x, self.w.to(x), sizes)

    def estimate(self, sums: torch.Tensor, sizes: torch.Tensor) -> MMDEstimate:
        """The estimate from the group sums of :meth:`group_sums` (of one set, or of its shards stacked)."""
        if sums.shape[0] < 2 or float(sizes.min()) < 2:
            raise ValueError("the estimate needs at least 2 groups of at least 2 rows")
        u, leave_out = _mmd_jackknife(sums, sizes.to(sums.real.dtype), self.phi)
        return MMDEstimate(u, _jackknife_se(leave_out), leave_out)

    @staticmethod
    def difference(a: MMDEstimate, b: MMDEstimate) -> tuple[float, float]:
        """``a.value - b.value`` and its standard error, for sample sets of the same size whose rows
        may be coupled (two samplers started from the same prior draws): the jackknife runs over
        the same groups of rows, so the error accounts for the coupling and is much smaller than
        either error alone when the samplers are close."""
        if a.leave_out.shape != b.leave_out.shape:
            raise ValueError("the two estimates come from sample sets of different sizes; "
                             "a coupled difference needs paired rows")
        return a.value - b.value, _jackknife_se(a.leave_out - b.leave_out)


def mmd_exact(x: torch.Tensor, target: Target, *, features: int = 1024,
              bandwidths: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0), seed: int = 0, groups: int = 64,
              null: bool = True, generator: torch.Generator | None = None) -> SampleMetric:
    r"""Unbiased squared MMD between the samples' law and the target (see :class:`ExactMMD`).

    ``details['se']`` is its standard error. The noise floor is :math:`z_{0.99}` times the standard
    error of the same estimate on an exact sample of the same size (``null=False`` skips that
    sample): values below it are not distinguishable from zero at p = 0.01.
    """
    meter = ExactMMD(target, features=features, bandwidths=bandwidths, seed=seed, groups=groups)
    est = meter(x)
    details: dict[str, Any] = {"se": est.se, "features": meter.w.shape[0], "bandwidths": list(meter.bandwidths),
                               "seed": meter.seed}
    floor = math.nan
    if null:
        ref = meter(target.sample(x.shape[0], generator=generator))
        floor = Z_99 * ref.se
        details.update(null_value=ref.value, null_se=ref.se)
    return SampleMetric("mmd2_exact", est.value, floor, x.shape[0], details)


def mmd_exact_difference(x_a: torch.Tensor, x_b: torch.Tensor, target: Target, *, features: int = 1024,
                         bandwidths: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0), seed: int = 0,
                         groups: int = 64) -> tuple[float, float]:
    """:func:`mmd_exact` of ``x_a`` minus that of ``x_b``, and the standard error of the difference,
    for paired rows (see :meth:`ExactMMD.difference`). Negative means ``x_a`` is closer to the target."""
    if not isinstance(x_a, torch.Tensor) or not isinstance(x_b, torch.Tensor) or x_a.shape != x_b.shape:
        raise ValueError("x_a and x_b must be tensors of the same shape (paired rows); got "
                         f"{getattr(x_a, 'shape', type(x_a).__name__)} and {getattr(x_b, 'shape', type(x_b).__name__)}")
    meter = ExactMMD(target, features=features, bandwidths=bandwidths, seed=seed, groups=groups)
    return meter.difference(meter(x_a), meter(x_b))


def scale_ladder(median: float, smallest: float | None, *, floor: float = 1 / 64) -> tuple[float, ...]:
    """Kernel bandwidths as multiples of the median distance: 1, 1/2, 1/4, ... down to
    ``smallest / median`` (the law's smallest scale, :meth:`sgmlab.targets.Target.smallest_scale`),
    or to ``floor`` where the smallest scale is unknown; never below ``floor`` / 4, never above 1/8
    at the bottom. A kernel of bandwidth l sees the law's shape at scales near l: the ladder reaches
    the shape of the smallest component as well as the weights of the modes."""
    if not (math.isfinite(median) and median > 0):
        raise ValueError(f"the median distance must be positive and finite; got {median!r}")
    low = floor if smallest is None or not math.isfinite(smallest) or smallest <= 0 else smallest / median
    low = min(max(low, floor / 4), 1 / 8)
    steps = math.ceil(math.log2(1 / low) - 1e-9)
    return tuple(2.0 ** -j for j in range(steps)) + (low,)


def law_bandwidths(target: Target, seed: int = 0) -> tuple[float, ...]:
    """Kernels for the law of ``target``, as multiples of its median distance (2000 exact samples):
    from the whole law down to its smallest component's scale (:func:`scale_ladder`), so that an
    MMD sees the shape of the smallest component as well as the weights of the modes."""
    median = median_bandwidth(target.sample(2000, generator=torch.Generator().manual_seed(seed)), max_n=2000)
    return scale_ladder(median, target.smallest_scale())


def mmd_small_scales(x: torch.Tensor, target: Target, *, generator: torch.Generator | None = None) -> SampleMetric:
    """:func:`mmd_exact` with the kernels of :func:`law_bandwidths`, named ``mmd2_small_scales``:
    the metric that sees a sampler's artefacts inside the modes (streaks, blurred small components)
    that kernels at the scale of the whole law average away."""
    m = mmd_exact(x, target, bandwidths=law_bandwidths(target), generator=generator)
    return SampleMetric("mmd2_small_scales", m.value, m.noise_floor, m.n, m.details)


def ladder_frequencies(median: float, bandwidths: tuple[float, ...], d: int, *, features: int = 1024,
                       seed: int = 0) -> torch.Tensor:
    """Random frequencies z_j / l_j, z_j ~ N(0, I_d), shape (features, d), the bandwidths l_j cycling
    through ``bandwidths`` times ``median``: the kernel of :class:`CoupledMMD`, fixed by ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    ell = median * torch.tensor(bandwidths, dtype=torch.float64).repeat(features // len(bandwidths) + 1)[:features]
    return torch.randn(features, d, generator=g, dtype=torch.float64) / ell[:, None]


class CoupledMMD:
    r"""Squared MMD between two laws P and R from coupled draws: x_i ~ P and y_i ~ R made from the
    same z_i (two samplers started from the same prior draws). Unbiased, and its noise scales with
    the distance between the laws, not with how far the coupled pairs lie apart.

    With random features :math:`e^{i w_j^\top x}` (a mixture of Gaussian kernels, the bandwidths of
    :func:`scale_ladder` times the median distance between the ``y``), :math:`f_i = (e^{i w_j^\top
    x_i} - e^{i w_j^\top y_i})_j` and the U-statistic :math:`\frac{1}{n(n-1)D}\sum_{i \ne i'}
    \langle f_i, f_{i'}\rangle`, whose mean is MMD^2(P, R). Pairs whose outputs switch modes
    (x_i near one mode, y_i near another) enter only through the balance of such switches, which is
    what the law sees: a coupled distance E|x - y|^2 is dominated by them instead. Standard error:
    delete-a-group jackknife, as :class:`ExactMMD`.

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randn(4000, 2, dtype=torch.float64, generator=g)
    >>> meter = sg.metrics.CoupledMMD(y, smallest=0.05)
    >>> x = torch.randn(4000, 2, dtype=torch.float64, generator=g)  # the same law, pairs not close at all
    >>> abs(meter(x, y).value) < 3 * meter(x, y).se
    True
    >>> meter(1.02 * y, y).value > 3 * meter(1.02 * y, y).se       # a law 2% too wide
    True
    """

    def __init__(self, y: torch.Tensor, *, smallest: float | None = None, features: int = 1024, seed: int = 0,
                 groups: int = 64):
        if not isinstance(y, torch.Tensor) or y.ndim != 2:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise TypeError(f"y must be a torch.Tensor of shape (n, d), the reference outputs; got {got}")
        y = _checks.points("y", y, y.shape[1])
        y = y if y.is_floating_point() else y.to(torch.float64)
        if y.shape[0] < 4:
            raise ValueError(f"y needs at least 4 rows; got {y.shape[0]}")
        features = _checks.positive_int("features", features)
        self.groups = _checks.positive_int("groups", groups, minimum=2)
        self.median = median_bandwidth(y, max_n=1000)
        if not self.median > 0:
            raise ValueError("the reference points y all coincide; no kernel scale can be read from them")
        self.bandwidths = scale_ladder(self.median, smallest)
        self.w = ladder_frequencies(self.median, self.bandwidths, y.shape[1], features=features, seed=seed).to(y)
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MMDEstimate:
        x = _checks.points("x", x, self.w.shape[1])
        y = _checks.points("y", y, self.w.shape[1])
        x = x if x.is_floating_point() else x.to(torch.float64)
        if x.shape != y.shape:
            raise ValueError(f"x and y must be paired rows of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")
        if x.shape[0] < 4:
            raise ValueError(f"x needs at least 4 rows: at least 2 in each of 2 jackknife groups; got {x.shape[0]}")
        sizes = mmd_group_sizes(x.shape[0], self.groups)
        group = torch.repeat_interleave(torch.arange(len(sizes), device=x.device),
                                        torch.tensor(sizes, device=x.device))
        cx, sx = self._features(x)
        cy, sy = self._features(y.to(x))
        re, im = cx.sub_(cy), sx.sub_(sy)
        Q = torch.zeros(len(sizes), dtype=x.dtype, device=x.device).index_add_(0, group, (re * re + im * im).sum(1))
        S = torch.complex(torch.zeros(len(sizes), re.shape[1], dtype=x.dtype, device=x.device).index_add_(0, group, re),
                          torch.zeros(len(sizes), re.shape[1], dtype=x.dtype, device=x.device).index_add_(0, group, im))
        u, leave_out = _u_jackknife(S, Q, torch.tensor(sizes, dtype=x.dtype, device=x.device))
        return MMDEstimate(u, _jackknife_se(leave_out), leave_out)

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of w.x (fresh tensors); the last reference set's are kept, since a tuner
        compares many outputs with one reference."""
        cached = self._cache
        if cached is not None and cached[0] is x:
            return cached[1].clone(), cached[2].clone()
        theta = x @ self.w.to(x).T
        c, s = theta.cos(), theta.sin_()
        self._cache = (x, c, s)
        return c.clone(), s.clone()

    difference = staticmethod(ExactMMD.difference)
