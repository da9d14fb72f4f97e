"""Named targets for the command line and examples, each built deterministically."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .. import _checks
from .base import Target
from .gaussian import Gaussian
from .mixture import GaussianMixture


def mixture2d() -> GaussianMixture:
    """The built-in non-log-concave 2-D target: three well separated anisotropic modes with
    unequal weights 0.5, 0.3, 0.2 (minimum separation about 7 standard deviations)."""
    weights = [0.5, 0.3, 0.2]
    means = [[-3.0, -1.0], [3.0, 2.5], [1.5, -3.5]]
    covs = [[[0.6, 0.25], [0.25, 0.4]],
            [[0.3, -0.1], [-0.1, 0.5]],
            [[0.25, 0.0], [0.0, 0.25]]]
    return GaussianMixture(weights, means, covs)


def ring(k: int = 8, radius: float = 4.0, std: float = 0.35) -> GaussianMixture:
    """``k`` equal-weight isotropic Gaussians equally spaced on a circle of the given radius."""
    k = _checks.positive_int("k", k)
    radius = _checks.real("radius", radius, low=0.0)
    std = _checks.real("std", std, low=0.0, low_open=True)
    ang = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    means = radius * torch.stack([ang.cos(), ang.sin()], 1)
    return GaussianMixture(torch.full((k,), 1.0 / k, dtype=torch.float64), means,
                           torch.full((k,), std * std, dtype=torch.float64))


def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(r.diagonal())


def anisotropic_gaussian(d: int = 10, cond: float = 100.0, scale: float = 0.5, seed: int = 0) -> Gaussian:
    """Zero-mean Gaussian whose covariance has eigenvalues log-spaced from ``scale/sqrt(cond)`` to
    ``scale*sqrt(cond)`` (0.05 to 5 by default) in a fixed random basis."""
    d = _checks.positive_int("d", d)
    cond = _checks.real("cond", cond, low=1.0)
    scale = _checks.real("scale", scale, low=0.0, low_open=True)
    lam = torch.logspace(math.log10(scale / math.sqrt(cond)), math.log10(scale * math.sqrt(cond)), d,
                         dtype=torch.float64) if d > 1 else torch.tensor([scale], dtype=torch.float64)
    U = _rotation(d, seed)
    cov = (U * lam) @ U.T
    return Gaussian(torch.zeros(d, dtype=torch.float64), 0.5 * (cov + cov.T))


def mixture(d: int = 16, k: int = 8, separation: float = 6.0, seed: int = 0) -> GaussianMixture:
    """A ``k``-component mixture in ``d`` dimensions: random means at pairwise distance about
    ``separation``, random full covariances with eigenvalues in [0.25, 1], Dirichlet-like unequal
    weights; deterministic given ``seed``."""
    d, k = _checks.positive_int("d", d), _checks.positive_int("k", k)
    separation = _checks.real("separation", separation, low=0.0)
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64)
    means = separation / math.sqrt(2) * means / means.norm(dim=1, keepdim=True).clamp_min(1e-12)
    covs = []
    for _ in range(k):
        U = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
        lam = 0.25 + 0.75 * torch.rand(d, generator=g, dtype=torch.float64)
        c = (U * lam) @ U.T
        covs.append(0.5 * (c + c.T))
    w = torch.arange(1, k + 1, dtype=torch.float64)
    return GaussianMixture(w / w.sum(), means, torch.stack(covs))


@dataclass(frozen=True)
class BuiltinTarget:
    """A named target for the command line: ``make(dim)`` builds it; ``dim=None`` means default."""

    name: str
    description: str
    make: Callable[[int | None], Target]
    fixed_dim: int | None = None  # set when the target exists only in one dimension


def _fixed(fn: Callable[[], Target]) -> Callable[[int | None], Target]:
    return lambda dim: fn()


BUILTIN: dict[str, BuiltinTarget] = {
    t.name: t for t in [
        BuiltinTarget("mixture2d", "2-D, 3 well separated anisotropic modes, weights 0.5/0.3/0.2 "
                      "(non-log-concave; the demo's target)", _fixed(mixture2d), 2),
        BuiltinTarget("ring", "2-D, 8 equal Gaussians (std 0.35) on a circle of radius 4", _fixed(ring), 2),
        BuiltinTarget("gaussian", "d-D anisotropic Gaussian, covariance eigenvalues log-spaced 0.05..5 "
                      "(condition number 100); default d=10; exact output laws",
                      lambda dim: anisotropic_gaussian(10 if dim is None else dim)),
        BuiltinTarget("mixture", "d-D mixture of 8 full-covariance Gaussians, unequal weights; default d=16",
                      lambda dim: mixture(16 if dim is None else dim)),
    ]
}


def builtin(name: str, dim: int | None = None) -> Target:
    """Build the named built-in target (see ``BUILTIN`` or ``sgmlab targets``)."""
    if name not in BUILTIN:
        raise ValueError(f"unknown target {name!r}; expected one of {sorted(BUILTIN)}")
    spec = BUILTIN[name]
    if dim is not None and spec.fixed_dim is not None and dim != spec.fixed_dim:
        raise ValueError(f"target {name!r} is {spec.fixed_dim}-dimensional; got dim={dim}")
    if dim is not None and dim < 1:
        raise ValueError(f"dim must be >= 1; got {dim}")
    return spec.make(dim)
