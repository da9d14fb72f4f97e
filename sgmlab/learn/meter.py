"""The score-error meter: eps_score(t)^2 = E_{q_t} |s - grad log q_t|^2 on a grid, with error bars."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .. import _checks, grids
from ..processes import OU
from ..scores import ScoreFn
from ..targets.base import Target


@dataclass(frozen=True)
class ScoreErrorProfile:
    """eps_score(t_k)^2 at the grid's left ends, Monte-Carlo standard errors, and the step-weighted
    time average sum_k h_k eps_k^2 / sum_k h_k (the quantity A3 bounds on average)."""

    times: torch.Tensor
    eps2: torch.Tensor
    stderr: torch.Tensor
    time_average: float
    time_average_stderr: float

    @property
    def eps(self) -> torch.Tensor:
        return self.eps2.sqrt()


def standardized_target(target: Target, std: Any) -> Target:
    """The law of (X - mean)/scale for X ~ target: the data law a model trained on standardized
    data has learned (its noised laws are the OU marginals of this law, not of the original)."""
    from ..targets.empirical import Empirical
    from ..targets.gaussian import Gaussian
    from ..targets.mixture import GaussianMixture

    m, c = std.mean.to(torch.float64), std.scale.to(torch.float64)
    if isinstance(target, Gaussian):
        return Gaussian((target.mean - m) / c, target.cov / c[:, None] / c[None, :])
    if isinstance(target, GaussianMixture):
        covs = target.cov_matrices() / c[:, None] / c[None, :]
        return GaussianMixture(target.weights, (target.means - m) / c, covs)
    if isinstance(target, Empirical):
        return Empirical((target.points - m) / c, target.weights)
    raise TypeError(f"cannot standardize a {type(target).__name__}")


def feature_standardized(target: Target) -> Target:
    """The law of X standardized coordinate by coordinate by its exact mean and standard deviation,
    X ~ ``target`` (Gaussian or Gaussian mixture): the data law a model trained with
    ``standardize="feature"`` on many samples of ``target`` learns."""
    from types import SimpleNamespace

    from ..targets.gaussian import Gaussian
    from ..targets.mixture import GaussianMixture

    if isinstance(target, Gaussian):
        m, v = target.mean, target.cov.diagonal()
    elif isinstance(target, GaussianMixture):
        w, mu = target.weights[:, None], target.means
        m = (w * mu).sum(0)
        v = (w * (target.cov_matrices().diagonal(dim1=1, dim2=2) + mu ** 2)).sum(0) - m ** 2
    else:
        raise TypeError(f"feature_standardized takes a Gaussian or a GaussianMixture; got {type(target).__name__}")
    return standardized_target(target, SimpleNamespace(mean=m, scale=v.sqrt()))


def score_error(score: ScoreFn, target: Target, grid: Any, *, process: Any = None, n: int = 4096,
                generator: torch.Generator | None = None) -> ScoreErrorProfile:
    """Measure eps_score(t)^2 = E_{q_t}|s(x, t) - grad log q_t(x)|^2 for t in grid[:-1], q_t the law of
    ``target`` at time t (give the target in the score's coordinates: see :func:`standardized_target`)."""
    process = OU() if process is None else process
    g = grids.from_times(grid)
    n = _checks.positive_int("n", n, minimum=2)
    eps2, se = [], []
    for t in g[:-1].tolist():
        qt = process.marginal(target, t)
        x = qt.sample(n, generator=generator)
        true = process.score_part(qt.score(x))  # CLD: the velocity score over states [x, v]
        sq = ((score(x, t) - true) ** 2).sum(1)
        eps2.append(float(sq.mean()))
        se.append(float(sq.std()) / math.sqrt(n))
    e, s = torch.tensor(eps2, dtype=torch.float64), torch.tensor(se, dtype=torch.float64)
    h = g[:-1] - g[1:]
    return ScoreErrorProfile(g[:-1], e, s, float((h * e).sum() / h.sum()), float(((h * s) ** 2).sum().sqrt() / h.sum()))
