r"""The certified bound: the proof of Theorem 2 evaluated numerically (Chen et al. 2023).

For the exponential integrator started at N(0, I) on a grid T = t_0 > ... > t_N = delta:

1. data processing: :math:`TV(p, q_\delta) \le TV(\gamma^d, q_T) + TV(P, Q)`;
2. Pinsker: :math:`TV(P, Q) \le \sqrt{KL(Q\|P)/2}`;
3. Girsanov (drifts differing by :math:`2(s - \nabla\log q)`, noise :math:`\sqrt 2`):

.. math::
    KL(Q\|P) = \sum_k \int_{\tau_{k+1}}^{\tau_k}
    E_Q\bigl|s_{t_k}(X_{\tau_k}) - \nabla\log q_\tau(X_\tau)\bigr|^2 d\tau

in forward OU time :math:`\tau` (for a VP process :math:`\tau_k = \tau(t_k)`), X the forward
process, so :math:`(X_\tau, X_{\tau_k})` has the law of the forward path.

How the path KL is evaluated, and what the result is:

- Gaussian target, affine score (exact, or exact plus a bias): integrated exactly in closed form
  (:func:`_closed_form`), plus an allowance for rounding. RIGOROUS.
- Gaussian target, exact score plus an error of known L2 size of any shape (localized errors):
  the triangle inequality in L2 of the path (:func:`_split`), both parts exact. RIGOROUS.
- Otherwise (mixtures, other scores): Monte Carlo over forward paths with Gauss-Legendre
  quadrature in :math:`\log\tau` (m and 2m nodes; their difference estimates the quadrature
  error, which is added). An ESTIMATE with a standard error: Monte Carlo can miss errors
  concentrated on rare sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import _checks
from ..metrics.gaussian import gaussian_kl, gaussian_tv_bounds
from ..processes import OU, Process
from ..samplers.base import check_process_grid, check_score
from ..scores import ExactScore, PerturbedScore, ScoreFn, affine_form
from ..targets.base import Target
from ..targets.gaussian import Gaussian
from ..targets.mixture import GaussianMixture
from .bounds import ESTIMATE, RIGOROUS


@dataclass(frozen=True)
class CertifiedBound:
    r"""Upper bounds on TV(p, q_delta) and KL(q_delta || p) for the exponential integrator, with
    their parts. ``kl_bound = init_kl + path_kl + quadrature_error`` (the chain rule for the path
    measures, then data processing; NaN where KL(q_T || stationary) has no bound here), and
    ``tv_bound`` the smallest of ``init_tv + sqrt((path_kl + quadrature_error) / 2)`` (data
    processing and Pinsker on the path part) and, from ``kl_bound``, Pinsker
    :math:`\sqrt{K/2}` and Bretagnolle-Huber :math:`\sqrt{1 - e^{-K}}`; at most 1.

    ``path_kl_stderr`` is the Monte-Carlo standard error (0 otherwise); ``quadrature_error`` the
    rounding allowance of the closed form, or the estimated quadrature error of Monte Carlo;
    ``per_step`` the path KL of each step, shape (N,) (for the split, the exact score's scaled to
    the bound's total); ``kind`` RIGOROUS or ESTIMATE (module docstring); ``init_kl`` the bound on
    KL(q_T || stationary law) (:func:`init_kl_bound`).
    """

    init_tv: float
    path_kl: float
    path_kl_stderr: float
    quadrature_error: float
    tv_bound: float
    tv_bound_stderr: float
    method: str
    per_step: torch.Tensor
    kind: str = RIGOROUS
    init_kl: float = math.nan
    kl_bound: float = math.nan

    @property
    def chain_tv(self) -> float:
        """min(1, init_tv + sqrt((path_kl + quadrature_error) / 2)): the proof's own route, whose two
        parts the planner budgets separately (:func:`sgmlab.theory.plan_certified`)."""
        return min(1.0, self.init_tv + math.sqrt(max(self.path_kl + self.quadrature_error, 0.0) / 2))

    @property
    def girsanov_tv(self) -> float:
        """sqrt(path_kl / 2): the Pinsker bound on TV(P, Q)."""
        return math.sqrt(self.path_kl / 2)


def _components(law: Target) -> list[tuple[float, Gaussian]]:
    if isinstance(law, Gaussian):
        return [(1.0, law)]
    if isinstance(law, GaussianMixture):
        covs = law.cov_matrices()
        return [(float(w), Gaussian(law.means[k], covs[k])) for k, w in enumerate(law.weights) if w > 0]
    raise TypeError(f"init_tv needs a Gaussian or mixture law at time T; got {type(law).__name__}")


def stationary_law(process: Any, d: int) -> Gaussian:
    """The stationary law of a process in d data dimensions: N(0, I_d), or for CLD N(0, diag(I_d, M I_d))."""
    if hasattr(process, "stationary_cov"):
        cov = torch.kron(process.stationary_cov, torch.eye(d, dtype=torch.float64))
        return Gaussian(torch.zeros(2 * d, dtype=torch.float64), cov)
    return Gaussian(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))


def init_tv_bound(target: Target, T: float, process: Any = None) -> float:
    r"""Upper bound on TV(stationary law, law at T) for OU (T in OU time) or CLD. Mixture (and
    point sets, whose law at T > 0 is a mixture): joint convexity,
    :math:`\min\bigl(\sum_k w_k\, \overline{TV}(\gamma, N_k), \sqrt{\sum_k w_k KL(N_k\|\gamma)/2}\bigr)`.
    Each :math:`\overline{TV}` is the smaller of Le Cam's :math:`H\sqrt{2 - H^2}` and Pinsker's.
    For OU both are evaluated with allowances, so that rounding cannot take them below the truth
    where the law at T is within rounding of the stationary one: the KL of :func:`_component_kl`,
    and :math:`H^2` from its log-affinity less an allowance for the log-determinants' rounding.
    CLD: :func:`sgmlab.metrics.gaussian_tv_bounds` as it is."""
    process = OU() if process is None else process
    law = process.marginal(target, T)
    std = stationary_law(process, target.dim)
    comps = _components(law)
    if hasattr(process, "stationary_cov"):
        tv = sum(w * gaussian_tv_bounds(std, g).upper for w, g in comps)
        kl = sum(w * gaussian_kl(g, std) for w, g in comps)
        return min(1.0, tv, math.sqrt(kl / 2))
    tv, kl = 0.0, 0.0
    for w, g in comps:
        k = _component_kl(g)
        tv += w * min(1.0, _le_cam_upper(g), math.sqrt(k / 2))
        kl += w * k
    return min(1.0, tv, math.sqrt(kl / 2))


def _le_cam_upper(g: Gaussian) -> float:
    """Le Cam's bound H sqrt(2 - H^2) on TV(N(0, I), g), with H^2 = 1 - affinity taken from the
    log-affinity less 64 eps (d + sum of the |log-determinants|): an upper bound despite rounding."""
    std = Gaussian(torch.zeros(g.dim, dtype=torch.float64), torch.eye(g.dim, dtype=torch.float64))
    avg = Gaussian(g.mean, 0.5 * (g.cov + std.cov))
    z = torch.linalg.solve_triangular(avg.cholesky, g.mean.unsqueeze(1), upper=False)
    ld_g, ld_avg = (2 * float(x.cholesky.diagonal().log().sum()) for x in (g, avg))
    log_bc = 0.25 * ld_g - 0.5 * ld_avg - 0.125 * float((z * z).sum())
    allowance = 64 * torch.finfo(torch.float64).eps * (g.dim + abs(ld_g) + abs(ld_avg) + float((z * z).sum()))
    h2 = min(1.0, -math.expm1(log_bc - allowance))
    return math.sqrt(h2) * math.sqrt(2 - h2)


def _x_minus_log1p(x: torch.Tensor) -> torch.Tensor:
    """x - log(1 + x) for x > -1 without cancellation near 0 (its series there)."""
    small = x.abs() < 1e-3
    series = x * x * (0.5 - x * (1 / 3 - x * (0.25 - x / 5)))
    return torch.where(small, series, x - torch.log1p(torch.where(small, torch.zeros_like(x), x)))


def init_kl_bound(target: Target, T: float, process: Any = None) -> float:
    r"""Upper bound on KL(law at T || stationary law): exact for a Gaussian target, by convexity
    :math:`\sum_k w_k KL(N_k\|\gamma)` for a mixture (and a point set, whose law at T > 0 is one).

    For OU each Gaussian term is :math:`	frac12[\sum_i (x_i - \log(1 + x_i)) + |\mu|^2]` with
    :math:`x_i` the eigenvalues of :math:`\Sigma_T - I`, evaluated without the cancellation of
    trace minus log-determinant, plus an allowance for the eigenvalues' rounding (a backward-stable
    eigensolver's eigenvalues are those of a matrix within :math:`8 d\,\epsilon\|\Sigma_T\|`, and
    the term's derivative in :math:`x_i` is :math:`x_i / (1 + x_i)`). Other processes (CLD): the
    Cholesky form of :func:`sgmlab.metrics.gaussian_kl`."""
    process = OU() if process is None else process
    law = process.marginal(target, T)
    comps = _components(law)
    if hasattr(process, "stationary_cov"):
        std = stationary_law(process, target.dim)
        return float(sum(w * gaussian_kl(g, std) for w, g in comps))
    return float(sum(w * _component_kl(g) for w, g in comps))


def _component_kl(g: Gaussian) -> float:
    """KL(g || N(0, I)) as 1/2 [sum_i (x_i - log(1 + x_i)) + |mu|^2], x_i the eigenvalues of
    Sigma - I, plus the allowance of :func:`init_kl_bound` for their rounding."""
    eps = torch.finfo(torch.float64).eps
    ev = torch.linalg.eigvalsh(g.cov)
    x = ev - 1.0
    rounding = 8 * g.dim * eps * float(ev.abs().max())
    slope = float((x.abs() / (1 + x).clamp_min(torch.finfo(torch.float64).tiny)).sum())
    value = 0.5 * (float(_x_minus_log1p(x).sum()) + float(g.mean @ g.mean) * (1 + 4 * eps))
    return value + 0.5 * slope * rounding


def _assemble(init: float, init_kl: float, kl: float, kl_se: float, quad: float, method: str,
              per_step: torch.Tensor, kind: str) -> CertifiedBound:
    """The bounds from their parts (:class:`CertifiedBound`), with the TV bound's standard error
    from the path KL's through the route that gives the bound."""
    upper = max(kl + quad, 0.0)
    routes = [(init + math.sqrt(upper / 2), 1 / (2 * math.sqrt(2 * upper)) if upper > 0 else 0.0)]
    K = init_kl + upper
    if math.isfinite(K):
        routes.append((math.sqrt(K / 2), 1 / (2 * math.sqrt(2 * K)) if K > 0 else 0.0))
        bh = -math.expm1(-K)
        routes.append((math.sqrt(bh), math.exp(-K) / (2 * math.sqrt(bh)) if bh > 0 else 0.0))
    tv, slope = min(routes)
    if tv >= 1.0:
        tv, slope = 1.0, 0.0
    return CertifiedBound(init, kl, kl_se, quad, tv, kl_se * slope, method, per_step, kind, init_kl, K)


def _log_nodes(tau_hi: torch.Tensor, tau_lo: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights (for d tau) in log tau on each [tau_lo, tau_hi]; shapes (N, m)."""
    x, w = (torch.as_tensor(a, dtype=torch.float64) for a in np.polynomial.legendre.leggauss(m))
    a, b = tau_lo.log()[:, None], tau_hi.log()[:, None]
    u = 0.5 * (b - a) * x + 0.5 * (a + b)
    return u.exp(), 0.5 * (b - a) * w * u.exp()


def _affine_in_eigenbasis(target: Gaussian, score: ScoreFn, grid: torch.Tensor, tau: torch.Tensor,
                          U: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_k, c_k) of the score at each left end t_k, in the target's eigenbasis: A as (N, d) when
    diagonal there (exact scores, and exact plus a bias: computed in closed form, vectorised), else
    (N, d, d) from the score's own ``affine``."""
    tk = tau[:-1]
    base, bias = score, None
    if isinstance(score, PerturbedScore) and score.shape == "bias":
        base = score.score
        bias = torch.tensor([score.eps_at(float(t)) for t in grid[:-1]], dtype=torch.float64)[:, None] * (
            U.T @ score.direction)
    if isinstance(base, ExactScore) and base.target is target and torch.allclose(base.process.ou_time(grid), tau):
        lam_t = torch.exp(-2 * tk)[:, None] * lam + (-torch.expm1(-2 * tk))[:, None]  # (N, d)
        A = -1 / lam_t
        c = torch.exp(-tk)[:, None] * (U.T @ target.mean) / lam_t
        return A, c if bias is None else c + bias
    pairs = [affine_form(score, float(t)) for t in grid[:-1]]
    return torch.stack([U.T @ a @ U for a, _ in pairs]), torch.stack([U.T @ c for _, c in pairs])


_ULPS = 32  # rounding allowance per elementary term, in units of 2^-53 (module docstring)


def _closed_form(target: Gaussian, score: ScoreFn, grid: torch.Tensor, tau: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-step path KL for a Gaussian target and an affine score s(x) = A x + c at t_k, integrated
    exactly, and an allowance for the rounding error of evaluating it.

    With u = tau_k - tau, X_{tau_k} = e^{-u} X_tau + sqrt(1 - e^{-2u}) Z, and q_tau = N(e^{-tau} m,
    diag(lam_tau)) in the eigenbasis of the covariance, lam_tau = 1 + (lam - 1) e^{-2 tau}, the
    integrand E|A X_{tau_k} + c - grad log q_tau(X_tau)|^2 is

    .. math::
        |e^{-\tau_k} A\tilde m + c|^2 + \sum_{ij} A_{ij}^2 \lambda_{\tau_k, j}
        + 2\,\mathrm{tr}A\; e^{-u} + \sum_j 1/\lambda_{\tau, j},

    whose integral over [tau_{k+1}, tau_k] (length h) is
    :math:`h(K_0 + S) + 2\,\mathrm{tr}A\,(1 - e^{-h}) + \sum_j [h + \tfrac12\log(1 + b_j e^{-2\tau_k})
    - \tfrac12\log(1 + b_j e^{-2\tau_{k+1}})]`, :math:`b_j = \lambda_j - 1`. No quadrature; the
    terms cancel for accurate scores, so the allowance is ``_ULPS`` units of 2^-53 times the sum of
    their magnitudes (and the number of coordinates): the rounding of a few operations each.
    """
    lam, U = torch.linalg.eigh(target.cov)
    m_tilde = U.T @ target.mean
    A, c = _affine_in_eigenbasis(target, score, grid, tau, U, lam)
    tk, tn = tau[:-1], tau[1:]
    h = tk - tn
    lam_k = 1 + (lam - 1) * torch.exp(-2 * tk)[:, None]  # (N, d)
    if A.ndim == 2:  # diagonal
        mean = torch.exp(-tk)[:, None] * A * m_tilde + c
        S = (A * A * lam_k).sum(-1)
        trA = A.sum(-1)
    else:
        mean = torch.exp(-tk)[:, None] * (A @ m_tilde) + c
        S = (A * A * lam_k[:, None, :]).sum((-1, -2))
        trA = A.diagonal(dim1=-2, dim2=-1).sum(-1)
    K0 = (mean**2).sum(-1)
    b = lam - 1
    logs = 0.5 * (torch.log1p(b * torch.exp(-2 * tk)[:, None]) - torch.log1p(b * torch.exp(-2 * tn)[:, None]))
    d = lam.shape[0]
    terms = (h * (K0 + S + d), 2 * trA * -torch.expm1(-h), logs.sum(-1))
    per_step = sum(terms)
    scale = h * (K0 + S + d) + (2 * trA * torch.expm1(-h)).abs() + logs.abs().sum(-1)
    return per_step, _ULPS * (d + 4) * 2.0**-53 * scale


def _split(target: Gaussian, score: PerturbedScore, grid: torch.Tensor, tau: torch.Tensor
           ) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""For an exact score plus an error e of known L2(q_t) size eps(t) (:class:`PerturbedScore`,
    any shape): the triangle inequality in :math:`L^2` of the path,
    :math:`\sqrt{KL} \le \sqrt{KL_{exact}} + \sqrt{\sum_k h_k \varepsilon(t_k)^2}`, the first term
    exact (:func:`_closed_form`), the second exact because the error is evaluated at
    :math:`X_{\tau_k} \sim q_{\tau_k}`. Returns the exact score's per-step KL, its allowance and
    the error's total."""
    per_step, allow = _closed_form(target, score.score, grid, tau)
    h = tau[:-1] - tau[1:]
    err = float(sum(float(hk) * score.eps_at(float(t)) ** 2 for hk, t in zip(h, grid[:-1])))
    return per_step, allow, err


def _monte_carlo(target: Target, score: ScoreFn, grid: torch.Tensor, tau: torch.Tensor, m: int, n: int,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-step path KL by Monte Carlo over forward paths: per step, X_{tau_{k+1}} ~ q exactly,
    then exact OU transitions through the union of both quadrature rules' nodes up to tau_k."""
    ou = OU()
    n1, w1 = _log_nodes(tau[:-1], tau[1:], m)
    n2, w2 = _log_nodes(tau[:-1], tau[1:], 2 * m)
    N = grid.shape[0] - 1
    kl, var, quad = (torch.empty(N, dtype=torch.float64) for _ in range(3))
    for k in range(N):
        nodes = torch.cat([n1[k], n2[k]])
        order = torch.argsort(nodes)
        x = ou.marginal(target, float(tau[k + 1])).sample(n, generator=generator)
        prev = float(tau[k + 1])
        true = {}
        for j in order.tolist():
            s = float(nodes[j])
            x = math.exp(-(s - prev)) * x + math.sqrt(-math.expm1(-2 * (s - prev))) * torch.randn(
                x.shape, generator=generator, dtype=x.dtype)
            true[j] = ou.marginal(target, s).score(x)
            prev = s
        x = math.exp(-(float(tau[k]) - prev)) * x + math.sqrt(-math.expm1(-2 * (float(tau[k]) - prev))) * torch.randn(
            x.shape, generator=generator, dtype=x.dtype)
        est = score(x, float(grid[k]))
        f = {j: ((est - true[j]) ** 2).sum(1) for j in true}
        i1 = sum(w1[k, j] * f[j] for j in range(m))
        i2 = sum(w2[k, j] * f[m + j] for j in range(2 * m))
        kl[k], var[k], quad[k] = i2.mean(), i2.var() / n, (i2.mean() - i1.mean()).abs()
    return kl, var, quad


def _exact_plus_error(score: Any, target: Target, process: Process) -> bool:
    """Whether ``score`` is the exact score of ``target`` plus an error of known L2 size, both under
    ``process`` itself (an error sized under one VP schedule has another L2 size under another)."""
    return (isinstance(score, PerturbedScore) and isinstance(score.score, ExactScore)
            and score.score.target is target and score.target is target
            and score.process == process and score.score.process == process)


def certified_bound(target: Target, score: ScoreFn, grid: Any, process: Process | None = None,
                    generator: torch.Generator | None = None, *, n_paths: int = 2000, nodes: int = 3
                    ) -> CertifiedBound:
    """Certified upper bound on TV(p, q_delta) for the paper's sampler (the exponential integrator)
    with score ``score`` on ``grid``, started at N(0, I): ``tv_bound = init_tv + sqrt(path_kl / 2)``.

    Closed form (up to quadrature) when the target is Gaussian and the score affine (exact, or
    exact plus a bias); otherwise Monte Carlo over ``n_paths`` forward paths per step. Works for
    exact and perturbed scores, any grid, and early stopping (the bound is to q_delta,
    delta = grid[-1]).

    Parameters
    ----------
    nodes : Gauss-Legendre nodes m of the coarse rule (the fine rule has 2m)

    Examples
    --------
    >>> import sgmlab as sg
    >>> q = sg.targets.anisotropic_gaussian(10)
    >>> b = sg.theory.certified_bound(q, sg.scores.exact(q), sg.grids.uniform(5.0, 1e-3, 1000))
    >>> print(f"{b.init_tv:.1e} {b.path_kl:.3f} {b.tv_bound:.3f}")
    7.9e-05 0.360 0.424
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
    check_score(score)
    process, g = check_process_grid(process, grid)
    n_paths = _checks.positive_int("n_paths", n_paths, minimum=2)
    nodes = _checks.positive_int("nodes", nodes)
    tau = process.ou_time(g).to(torch.float64)
    init = init_tv_bound(target, float(tau[0]))
    kind = RIGOROUS
    if isinstance(target, Gaussian) and all(affine_form(score, float(t)) is not None for t in (g[0], g[-2])):
        per_step, quad = _closed_form(target, score, g, tau)
        var = torch.zeros_like(per_step)
        method = "closed form (Gaussian target, affine score), integrated exactly; rounding allowance"
    elif isinstance(target, Gaussian) and _exact_plus_error(score, target, process):
        per_step, quad, err = _split(target, score, g, tau)
        exact_kl = float(per_step.sum() + quad.sum())
        per_step = per_step + quad  # the bound per step is not separable: report the exact score's, then the total
        var, quad = torch.zeros_like(per_step), torch.zeros_like(per_step)
        total = (math.sqrt(exact_kl) + math.sqrt(err)) ** 2
        per_step = per_step * (total / exact_kl) if exact_kl > 0 else per_step
        method = (f"split: sqrt(KL) <= sqrt(KL of the exact score, closed form) + sqrt(sum_k h_k eps(t_k)^2) = "
                  f"sqrt({exact_kl:.6g}) + sqrt({err:.6g})")
    else:
        per_step, var, quad = _monte_carlo(target, score, g, tau, nodes, n_paths, generator)
        method = (f"Monte Carlo, {n_paths} forward paths a step; Gauss-Legendre in log tau, {2 * nodes} nodes a step "
                  "(quadrature error estimated by halving the nodes)")
        kind = ESTIMATE
    return _assemble(init, _init_kl_or_nan(target, float(tau[0])), float(per_step.sum()), float(var.sum().sqrt()),
                     float(quad.sum()), method, per_step, kind)


def _init_kl_or_nan(target: Target, T: float, process: Any = None) -> float:
    try:
        return init_kl_bound(target, T, process)
    except TypeError:  # a law at T that is neither Gaussian nor a mixture: no KL bound, the TV route stays
        return math.nan


@dataclass(frozen=True)
class LearnedBound:
    r"""Theorem 2 for a score that is not exact, such as a trained network's, on a target whose law
    is known. Minkowski's inequality in L2 of the forward path splits the path KL:

    .. math::
        \sqrt{KL(Q\|P)} \le \sqrt{\textstyle\sum_k h_k \varepsilon^2(t_k)} + \sqrt{KL_{exact}},

    :math:`\varepsilon^2(t) = E_{q_t}|s(x, t) - \nabla\log q_t(x)|^2` measured on draws from q_t
    (``score_error``, with ``score_error_upper`` its upper confidence bound), :math:`h_k` the steps
    in OU time, and :math:`KL_{exact}` the exact score's path KL on the same grid (``exact``: closed
    form on Gaussians, Monte Carlo on mixtures, with its upper confidence bound). ``path_kl_upper`` is
    the split with both upper bounds, ``kl_bound`` adds KL(q_T || N(0, I)), and ``tv_bound`` is the
    least of the routes of :class:`CertifiedBound`. All hold at confidence ``level`` (Bonferroni over
    the parts measured by Monte Carlo) under the stated assumption: eps^2 has finite variance, and
    an error on a set the draws never reach is not seen. An ESTIMATE, never RIGOROUS.
    """

    score_error: float
    score_error_upper: float
    exact: CertifiedBound
    path_kl_upper: float
    kl_bound: float
    tv_bound: float
    level: float
    times: torch.Tensor
    eps2: torch.Tensor
    eps2_stderr: torch.Tensor
    kind: str = ESTIMATE


def learned_bound(target: Target, score: ScoreFn, grid: Any, process: Process | None = None, *, n: int = 4096,
                  n_paths: int = 2000, level: float = 0.95, generator: torch.Generator | None = None
                  ) -> LearnedBound:
    """:class:`LearnedBound` for the exponential integrator with ``score`` on ``grid`` (the process's
    clock, ending at delta > 0), ``target`` the data law in the score's coordinates (for a model
    trained on standardized data: :func:`sgmlab.learn.standardized_target`). ``n`` draws from each
    q_{t_k} measure eps^2(t_k); ``n_paths`` forward paths a step the exact score's path KL on
    mixtures.

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> q = sg.targets.Gaussian([0.0, 0.0], [[1.0, 0.0], [0.0, 0.25]])
    >>> biased = lambda x, t: sg.scores.exact(q)(x, t) + 0.05      # a score off by 0.05 everywhere
    >>> b = sg.theory.learned_bound(q, biased, sg.grids.uniform(5.0, 1e-3, 200),
    ...                             generator=torch.Generator().manual_seed(0))
    >>> b.score_error_upper >= b.score_error > 0 and b.tv_bound > b.exact.tv_bound
    True
    """
    from statistics import NormalDist

    from ..learn.meter import score_error
    from ..scores import exact as exact_score

    if not isinstance(target, Target):
        raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
    check_score(score)
    process, g = check_process_grid(process, grid)
    if not float(g[-1]) > 0:
        raise ValueError("the grid must end at delta > 0: the bound is to q_delta (Theorem 2's early stopping)")
    if level not in (0.9, 0.95, 0.99):
        raise ValueError(f"level must be 0.9, 0.95 or 0.99; got {level!r}")
    n = _checks.positive_int("n", n, minimum=2)
    n_paths = _checks.positive_int("n_paths", n_paths, minimum=2)
    exact = certified_bound(target, exact_score(target, process), g, process, generator, n_paths=n_paths)
    parts = 2 if exact.kind == ESTIMATE else 1  # each Monte-Carlo part at level 1 - (1 - level) / parts
    z = NormalDist().inv_cdf(1 - (1 - level) / parts)
    prof = score_error(score, target, g, process=process, n=n, generator=generator)
    tau = process.ou_time(g).to(torch.float64)
    h = tau[:-1] - tau[1:]
    err = float((h * prof.eps2).sum())
    err_up = err + z * float(((h * prof.stderr) ** 2).sum().sqrt())
    exact_up = max(exact.path_kl + exact.quadrature_error + z * exact.path_kl_stderr, 0.0)
    path_up = (math.sqrt(max(err_up, 0.0)) + math.sqrt(exact_up)) ** 2
    b = _assemble(exact.init_tv, exact.init_kl, path_up, 0.0, 0.0, "learned", prof.eps2, ESTIMATE)  # the same routes
    return LearnedBound(err, err_up, exact, path_up, b.kl_bound, b.tv_bound, level, prof.times, prof.eps2, prof.stderr)
