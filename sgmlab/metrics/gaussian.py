"""Closed-form distances between Gaussian laws."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .. import _checks
from ..targets.gaussian import Gaussian


def _pair(p: Gaussian, q: Gaussian) -> None:
    if not isinstance(p, Gaussian) or not isinstance(q, Gaussian):
        raise TypeError(f"expected two Gaussian targets; got {type(p).__name__} and {type(q).__name__}")
    if p.dim != q.dim:
        raise ValueError(f"dimensions differ: {p.dim} and {q.dim}")


def _logdet(g: Gaussian) -> torch.Tensor:
    return 2 * g.cholesky.diagonal().log().sum()


def gaussian_kl(p: Gaussian, q: Gaussian) -> float:
    r"""KL(p || q) between Gaussians:

    .. math::
        \tfrac12\bigl[\operatorname{tr}(\Sigma_q^{-1}\Sigma_p) + (m_q - m_p)^\top\Sigma_q^{-1}(m_q - m_p)
        - d + \log\det\Sigma_q - \log\det\Sigma_p\bigr]

    computed with Cholesky factors (no explicit inverse).
    """
    _pair(p, q)
    Lq = q.cholesky
    A = torch.linalg.solve_triangular(Lq, p.cholesky, upper=False)  # Lq^{-1} Lp
    z = torch.linalg.solve_triangular(Lq, (q.mean - p.mean).unsqueeze(1), upper=False)
    val = 0.5 * ((A * A).sum() + (z * z).sum() - p.dim + _logdet(q) - _logdet(p))
    return max(float(val), 0.0)


def _sqrtm_psd(S: torch.Tensor) -> torch.Tensor:
    lam, U = torch.linalg.eigh(0.5 * (S + S.T))
    return (U * lam.clamp_min(0).sqrt()) @ U.T


def gaussian_w2(p: Gaussian, q: Gaussian) -> float:
    r"""2-Wasserstein distance between Gaussians (Bures metric):

    .. math::
        W_2^2 = |m_p - m_q|^2 + \operatorname{tr}\Sigma_p + \operatorname{tr}\Sigma_q
        - 2\operatorname{tr}\bigl(\Sigma_q^{1/2}\Sigma_p\Sigma_q^{1/2}\bigr)^{1/2}
    """
    _pair(p, q)
    rq = _sqrtm_psd(q.cov)
    cross = torch.linalg.eigvalsh(rq @ p.cov @ rq).clamp_min(0).sqrt().sum()
    w2sq = ((p.mean - q.mean) ** 2).sum() + p.cov.trace() + q.cov.trace() - 2 * cross
    return math.sqrt(max(float(w2sq), 0.0))


def gaussian_hellinger(p: Gaussian, q: Gaussian) -> float:
    r"""Hellinger distance :math:`H` with :math:`H^2 = 1 - \int\sqrt{pq} \in [0, 1]`:

    .. math::
        1 - H^2 = \frac{\det\Sigma_p^{1/4}\det\Sigma_q^{1/4}}{\det\bar\Sigma^{1/2}}
        \exp\bigl(-\tfrac18 \Delta^\top\bar\Sigma^{-1}\Delta\bigr), \quad \bar\Sigma = \tfrac12(\Sigma_p + \Sigma_q)
    """
    _pair(p, q)
    avg = Gaussian(p.mean, 0.5 * (p.cov + q.cov))
    z = torch.linalg.solve_triangular(avg.cholesky, (p.mean - q.mean).unsqueeze(1), upper=False)
    log_bc = 0.25 * (_logdet(p) + _logdet(q)) - 0.5 * _logdet(avg) - 0.125 * (z * z).sum()
    return math.sqrt(max(-math.expm1(float(log_bc)), 0.0))


class TVBounds(NamedTuple):
    """Rigorous lower and upper bounds on a total-variation distance."""

    lower: float
    upper: float


def gaussian_tv_bounds(p: Gaussian, q: Gaussian) -> TVBounds:
    r"""Two-sided bounds on TV(p, q) from closed forms:
    :math:`H^2 \le TV \le H\sqrt{2 - H^2}` (Le Cam) and Pinsker
    :math:`TV \le \sqrt{\min(KL(p\|q), KL(q\|p))/2}`; the upper bound is the smallest of these and 1.
    """
    H = gaussian_hellinger(p, q)
    kl = min(gaussian_kl(p, q), gaussian_kl(q, p))
    return TVBounds(H * H, min(1.0, H * math.sqrt(max(2 - H * H, 0.0)), math.sqrt(kl / 2)))


class MCEstimate(NamedTuple):
    """A Monte-Carlo estimate and its standard error."""

    value: float
    stderr: float


def gaussian_tv_mc(p: Gaussian, q: Gaussian, n: int = 100_000, *, generator: torch.Generator | None = None) -> MCEstimate:
    r"""Unbiased Monte-Carlo estimate of TV(p, q) = :math:`E_p[(1 - q/p)_+]` with its standard error."""
    _pair(p, q)
    n = _checks.positive_int("n", n, minimum=2)
    x = p.sample(n, generator=generator)
    f = (-torch.expm1(q.log_prob(x) - p.log_prob(x))).clamp_min(0)
    return MCEstimate(float(f.mean()), float(f.std() / math.sqrt(n)))
