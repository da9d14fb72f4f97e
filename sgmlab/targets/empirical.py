"""Empirical law of a finite point set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .. import _checks
from .base import CHUNK_ELEMENTS, Target
from .mixture import GaussianMixture


class Empirical(Target):
    r"""Empirical law :math:`q = \sum_i w_i \delta_{x_i}` of a finite point set (uniform weights by default).

    It has no density, so :meth:`log_prob` and :meth:`score` raise. Its noised laws are mixtures
    of isotropic Gaussians, :math:`q_t = \sum_i w_i N(e^{-t} x_i, (1 - e^{-2t}) I)` under OU, whose
    scores are exact: see :meth:`noised`.

    Parameters
    ----------
    points : array of shape (N, d)
    weights : array of shape (N,), optional
    """

    def __init__(self, points: Any, weights: Any | None = None):
        self.points = _checks.as_tensor("points", points, ndim=2)
        N = self.points.shape[0]
        if weights is None:
            self.weights = torch.full((N,), 1.0 / N, dtype=self.points.dtype, device=self.points.device)
        else:
            self.weights = _checks.as_tensor("weights", weights, ndim=1, dtype=self.points.dtype,
                                             device=self.points.device)
            if self.weights.shape[0] != N:
                raise ValueError(f"weights has {self.weights.shape[0]} entries but points has {N} rows")
            if bool((self.weights < 0).any()) or abs(float(self.weights.sum()) - 1) > 1e-6:
                raise ValueError("weights must be non-negative and sum to one; "
                                 f"got sum {float(self.weights.sum()):.10g}, minimum {float(self.weights.min()):.3g}")

    def __repr__(self) -> str:
        return f"Empirical(points={self.points.shape[0]}, dim={self.dim})"

    def to(self, device: torch.device | str) -> Empirical:
        dev = _checks.device(device)
        return self if self.points.device == dev else Empirical(self.points.to(dev), self.weights.to(dev))

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        n = _checks.positive_int("n", n, minimum=0)
        _checks.generator_for(generator, self.points.device)
        if n == 0:
            return self.points[:0].clone()
        return self.points[torch.multinomial(self.weights, n, replacement=True, generator=generator)]

    def _no_density(self, *_: Any) -> torch.Tensor:
        raise ValueError("an Empirical target has no density (it is a finite point set): "
                         "use process.marginal(target, t) with t > 0 for a law with an exact score")

    log_prob = _no_density
    score = _no_density

    def characteristic_function(self, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\varphi(w) = \sum_i w_i e^{i w^\top x_i}`, w of shape (D, d) (chunked over D)."""
        w = self._check_frequencies(w, self.points)
        rows = max(1, CHUNK_ELEMENTS // self.points.shape[0])
        return torch.cat([torch.polar(self.weights.expand(c.shape[0], -1), c @ self.points.T).sum(-1)
                          for c in w.split(rows)]) if w.shape[0] else torch.zeros(0, dtype=torch.complex128)

    def noised(self, a: float, sigma: float) -> Target:
        if sigma * sigma == 0:  # sigma^2 underflows: no noise at all
            return Empirical(a * self.points, self.weights)
        spherical = torch.full_like(self.weights, sigma * sigma)
        return GaussianMixture(self.weights, a * self.points, spherical)

    def project(self, dims: Sequence[int]) -> Empirical:
        return Empirical(self.points[:, self._check_dims(dims)], self.weights)

    def second_moment(self) -> float:
        return float(self.weights @ (self.points * self.points).sum(-1))
