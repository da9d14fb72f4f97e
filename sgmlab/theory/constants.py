"""Problem constants of a target: d, m_2, KL(q || N(0, I)), Fisher information, L, R."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import _checks
from ..processes import OU
from ..targets.base import Target, chunked
from ..targets.empirical import Empirical
from ..targets.gaussian import Gaussian
from ..targets.mixture import GaussianMixture


@dataclass(frozen=True)
class ProblemConstants:
    """The quantities the bounds need, each with how it was obtained.

    ``kl`` and ``fisher`` are exact for Gaussians and Monte-Carlo estimates (with standard error)
    for mixtures; ``L`` is exact for Gaussians and an estimate for mixtures (``L_method`` says
    how); ``R`` is the radius of the support (infinite unless the target is a finite point set).
    """

    d: int
    m2: float
    kl: float
    kl_stderr: float
    fisher: float
    fisher_stderr: float
    L: float
    L_method: str
    R: float
    t_min: float


def hessian_log_prob(law: Target, x: torch.Tensor) -> torch.Tensor:
    r"""Hessian of log density, shape (n, d, d). For a mixture,
    :math:`\nabla^2\log q = \sum_k r_k(-P_k) + \sum_k r_k g_k g_k^\top - \bar g\bar g^\top`,
    :math:`g_k = -P_k(x - m_k)`, :math:`\bar g = \sum_k r_k g_k`."""
    if isinstance(law, Gaussian):
        return (-law.precision).expand(x.shape[0], law.dim, law.dim)
    if not isinstance(law, GaussianMixture):
        raise TypeError(f"the Hessian needs a Gaussian or mixture law; got {type(law).__name__}")
    P = torch.linalg.inv(law.cov_matrices())  # (K, d, d)
    K, d = law.n_components, law.dim

    def block(xb: torch.Tensor) -> torch.Tensor:
        r = law.responsibilities(xb)  # (n, K)
        g = -torch.einsum("kij,nkj->nki", P, xb[:, None, :] - law.means)  # (n, K, d)
        gbar = torch.einsum("nk,nki->ni", r, g)
        H = -torch.einsum("nk,kij->nij", r, P) + torch.einsum("nk,nki,nkj->nij", r, g, g)
        return H - gbar[:, :, None] * gbar[:, None, :]

    return chunked(block, x, K * d * d)


def lipschitz_constant(target: Target, *, t_min: float = 0.0, n: int = 2000, times: int = 40,
                       generator: torch.Generator | None = None) -> tuple[float, str]:
    r""":math:`L = \max(1, \sup_{t \ge t_{min}} \sup_x \|\nabla^2 \log q_t(x)\|_{op})` (assumption A1).

    Gaussian: exact, :math:`\max(1, 1/\lambda_{\min}(\Sigma_{t_{min}}))` (the covariance eigenvalues
    move monotonically towards 1). Mixture: an estimate, the largest operator norm over ``times``
    log-spaced t in [t_min, 10] (t_min = 1e-4 if 0) and, at each t, ``n`` draws of q_t plus 21
    points on each segment between two component means (where modes compete and the Hessian's
    positive part peaks): a lower bound on the true supremum.
    """
    t_min = _checks.real("t_min", t_min, low=0.0)
    ou = OU()
    if isinstance(target, Gaussian):
        lam = torch.linalg.eigvalsh(ou.marginal(target, t_min).cov)
        return max(1.0, float(1 / lam.min())), "exact: max(1, 1/lambda_min of Cov(q_t_min))"
    if isinstance(target, Empirical) and t_min == 0:
        return math.inf, "infinite: a finite point set has no smooth score at t = 0 (use t_min = delta > 0)"
    if not isinstance(target, (GaussianMixture, Empirical)):
        raise TypeError(f"L needs a Gaussian, mixture or empirical target; got {type(target).__name__}")
    ts = [t_min] + torch.logspace(math.log10(max(t_min, 1e-4)), 1, times, dtype=torch.float64).tolist()
    s = torch.linspace(0, 1, 21, dtype=torch.float64)
    best = 1.0
    for t in ts:
        qt = ou.marginal(target, t)
        i, j = torch.triu_indices(qt.n_components, qt.n_components, 1)
        seg = (qt.means[i, None, :] + s[None, :, None] * (qt.means[j] - qt.means[i])[:, None, :]).reshape(-1, qt.dim)
        x = torch.cat([qt.sample(n, generator=generator), seg])
        best = max(best, float(torch.linalg.eigvalsh(hessian_log_prob(qt, x)).abs().max()))
    return best, (f"estimate (lower bound): max over {times + 1} times in [t_min, 10] of the largest |eigenvalue| "
                  f"of the Hessian at {n} draws of q_t and on the segments between component means")


def _mc(values: torch.Tensor) -> tuple[float, float]:
    return float(values.mean()), float(values.std() / math.sqrt(values.shape[0]))


def problem_constants(target: Target, *, delta: float = 0.0, n: int = 20_000,
                      generator: torch.Generator | None = None) -> ProblemConstants:
    """Constants of q_delta (the law an early-stopped sampler targets; q itself for delta = 0).

    KL(q_delta || N(0, I)) and the relative Fisher information E|grad log q_delta + x|^2: exact for
    Gaussians, Monte Carlo with ``n`` draws (standard errors reported) for mixtures; infinite for a
    point set at delta = 0.
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
    delta = _checks.real("delta", delta, low=0.0)
    n = _checks.positive_int("n", n, minimum=2)
    law = OU().marginal(target, delta)
    d = target.dim
    R = float(target.points.norm(dim=1).max()) if isinstance(target, Empirical) else math.inf
    L, how = lipschitz_constant(target, t_min=delta, generator=generator)
    m2 = math.sqrt(law.second_moment())
    if isinstance(law, Gaussian):
        from ..metrics.gaussian import gaussian_kl

        std = Gaussian(torch.zeros(d, dtype=law.mean.dtype), torch.eye(d, dtype=law.mean.dtype))
        kl, kl_se = gaussian_kl(law, std), 0.0
        I_P = torch.eye(d, dtype=law.mean.dtype) - law.precision
        fisher, fi_se = float(law.mean @ law.mean + (I_P @ I_P @ law.cov).trace()), 0.0
    elif isinstance(law, GaussianMixture):
        x = law.sample(n, generator=generator)
        kl, kl_se = _mc(law.log_prob(x) + 0.5 * (x * x).sum(1) + 0.5 * d * math.log(2 * math.pi))
        fisher, fi_se = _mc(((law.score(x) + x) ** 2).sum(1))
    else:
        kl = kl_se = fisher = fi_se = math.inf
    return ProblemConstants(d, m2, kl, kl_se, fisher, fi_se, L, how, R, delta)
