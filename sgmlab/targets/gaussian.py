"""Gaussian target N(mean, cov) with full covariance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .. import _checks
from .base import LOG_2PI, Target


def check_spd(name: str, cov: torch.Tensor) -> torch.Tensor:
    """Cholesky factor(s) of symmetric positive definite matrices ``cov`` of shape (..., d, d).

    Raises ``ValueError`` naming the first matrix that is not symmetric or not positive definite.
    """
    if cov.ndim < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(f"{name} must be square matrices of shape (..., d, d); got {tuple(cov.shape)}")
    batch = tuple(cov.shape[:-2])

    def first(bad: torch.Tensor) -> str:
        i = int(torch.nonzero(bad.reshape(-1))[0])
        return str([int(j) for j in np.unravel_index(i, batch)]) if batch else ""

    scale = cov.abs().amax(dim=(-1, -2)).clamp_min(1e-300)
    asym = (cov - cov.transpose(-1, -2)).abs().amax(dim=(-1, -2)) / scale
    if bool((asym > 1e-8).any()):
        raise ValueError(f"{name}{first(asym > 1e-8)} is not symmetric (relative asymmetry "
                         f"{float(asym.max()):.2e}); expected a symmetric matrix")
    L, info = torch.linalg.cholesky_ex(0.5 * (cov + cov.transpose(-1, -2)))
    if bool((info != 0).any()):
        raise ValueError(f"{name}{first(info != 0)} is not positive definite; "
                         "expected a symmetric positive definite covariance")
    return L


class Gaussian(Target):
    r"""Gaussian law :math:`N(m, \Sigma)` on :math:`\mathbb{R}^d`.

    .. math::
        \log q(x) = -\tfrac12 (x-m)^\top \Sigma^{-1} (x-m) - \tfrac12 \log\det(2\pi\Sigma),
        \qquad \nabla \log q(x) = -\Sigma^{-1}(x - m).

    Parameters
    ----------
    mean : array of shape (d,)
    cov : array of shape (d, d), symmetric positive definite

    Examples
    --------
    >>> import sgmlab as sg
    >>> q = sg.targets.Gaussian([0.0, 1.0], [[2.0, 0.5], [0.5, 1.0]])
    >>> q.sample(4, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 2])
    """

    def __init__(self, mean: Any, cov: Any):
        self.mean = _checks.as_tensor("mean", mean, ndim=1)
        self.cov = _checks.as_tensor("cov", cov, ndim=2, dtype=self.mean.dtype, device=self.mean.device)
        d = self.mean.shape[0]
        if self.cov.shape != (d, d):
            raise ValueError(f"cov must have shape ({d}, {d}) to match mean of shape ({d},); "
                             f"got {tuple(self.cov.shape)}")
        self._chol = check_spd("cov", self.cov)
        self._precision = torch.cholesky_inverse(self._chol)
        self._logdet = 2 * self._chol.diagonal().log().sum()

    def __repr__(self) -> str:
        return f"Gaussian(dim={self.dim})"

    def to(self, device: torch.device | str) -> Gaussian:
        dev = _checks.device(device)
        return self if self.mean.device == dev else Gaussian(self.mean.to(dev), self.cov.to(dev))

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    @property
    def precision(self) -> torch.Tensor:
        """Inverse covariance, shape (d, d)."""
        return self._precision

    @property
    def cholesky(self) -> torch.Tensor:
        """Lower Cholesky factor L of the covariance (cov = L L^T)."""
        return self._chol

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        n = _checks.positive_int("n", n, minimum=0)
        _checks.generator_for(generator, self.mean.device)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + z @ self._chol.T

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        x = _checks.points("x", x, self.dim, like=self.mean)
        z = torch.linalg.solve_triangular(self._chol, (x - self.mean).T, upper=False)
        return -0.5 * (z * z).sum(0) - 0.5 * (self._logdet + self.dim * LOG_2PI)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        x = _checks.points("x", x, self.dim, like=self.mean)
        return -(x - self.mean) @ self._precision

    def characteristic_function(self, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\varphi(w) = \exp(i w^\top m - \tfrac12 w^\top \Sigma w)`, w of shape (D, d)."""
        w = self._check_frequencies(w, self.mean)
        return torch.polar(torch.exp(-0.5 * ((w @ self.cov) * w).sum(-1)), w @ self.mean)

    def noised(self, a: float, sigma: float) -> Gaussian:
        eye = torch.eye(self.dim, dtype=self.mean.dtype, device=self.mean.device)
        return Gaussian(a * self.mean, a * a * self.cov + sigma * sigma * eye)

    def project(self, dims: Sequence[int]) -> Gaussian:
        dims = self._check_dims(dims)
        return Gaussian(self.mean[dims], self.cov[dims][:, dims])

    def second_moment(self) -> float:
        return float(self.mean @ self.mean + self.cov.trace())

    def smallest_scale(self) -> float:
        return math.sqrt(max(float(torch.linalg.eigvalsh(self.cov)[0]), 0.0))
