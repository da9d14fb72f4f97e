"""Shared helpers for the tests: random parameters, and Monte-Carlo z-score checks."""

from __future__ import annotations

import math

import torch
from scipy import stats

import sgmlab as sg


def random_spd(d: int, g: torch.Generator, low: float = 0.2, high: float = 2.0) -> torch.Tensor:
    q = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    lam = low + (high - low) * torch.rand(d, generator=g)
    c = (q * lam) @ q.T
    return 0.5 * (c + c.T)


def random_gaussian(d: int, g: torch.Generator) -> sg.targets.Gaussian:
    return sg.targets.Gaussian(torch.randn(d, generator=g), random_spd(d, g))


def random_mixture(d: int, k: int, g: torch.Generator, kind: str = "full") -> sg.targets.GaussianMixture:
    w = torch.rand(k, generator=g) + 0.1
    means = 2 * torch.randn(k, d, generator=g)
    if kind == "full":
        covs = torch.stack([random_spd(d, g) for _ in range(k)])
    elif kind == "diag":
        covs = 0.2 + torch.rand(k, d, generator=g)
    else:
        covs = 0.2 + torch.rand(k, generator=g)
    return sg.targets.GaussianMixture(w / w.sum(), means, covs)


def z_threshold(p_value: float, tests: int) -> float:
    """Two-sided z threshold at family-wise level ``p_value`` over ``tests`` tests (Bonferroni)."""
    return float(stats.norm.isf(p_value / (2 * tests)))


def assert_moments_match(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, p_value: float = 1e-3) -> None:
    """z-test of the sample mean and covariance entries of ``x`` (n, d) against an exact Gaussian
    law: se(mean_i) = sqrt(S_ii/n), se(cov_ij) = sqrt((S_ii S_jj + S_ij^2)/n) (Gaussian fourth
    moments). Family-wise level ``p_value`` with Bonferroni over all entries."""
    n, d = x.shape
    z_mean = (x.mean(0) - mean) / (cov.diagonal() / n).sqrt()
    emp = torch.cov(x.T, correction=1).reshape(d, d)
    se = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    z_cov = (emp - cov) / se
    thr = z_threshold(p_value, d + d * (d + 1) // 2)
    assert z_mean.abs().max() < thr, f"mean z-scores {z_mean.tolist()} exceed {thr:.2f}"
    assert z_cov.abs().max() < thr, f"covariance z-scores max {z_cov.abs().max():.2f} exceed {thr:.2f}"


def fit_slope(x, y) -> float:
    lx, ly = [math.log(v) for v in x], [math.log(v) for v in y]
    return float(stats.linregress(lx, ly).slope)
