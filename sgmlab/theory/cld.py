r"""The Girsanov path KL for CLD (Chen et al. 2023, the CLD section): the reverse drifts differ by
:math:`2\Gamma(s_v - \nabla_v\log q)` on v and the noise on v is :math:`\sqrt{2\Gamma}`, so

.. math::
    KL(Q\|P) = \Gamma \sum_k \int_{t_{k+1}}^{t_k} E\bigl|s_v(Z_{t_k}, t_k) - \nabla_v\log q_\tau(Z_\tau)\bigr|^2 d\tau

(:math:`\Gamma = 2`: drift difference 4(s - grad_v log q), noise 2). For q = N(0, I_d) and the
exact score it equals :math:`4dT(1 - e^{-h})` on a uniform grid [derived, tested]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .. import _checks, grids
from ..processes import CLD, expm2
from ..scores import ExactScore, ScoreFn
from ..targets.base import Target
from ..targets.gaussian import Gaussian
from .bounds import ESTIMATE, QUADRATURE
from .certified import _log_nodes


@dataclass(frozen=True)
class PathKL:
    value: float
    stderr: float
    quadrature_error: float
    per_step: torch.Tensor
    method: str


def _pair_laws(process: CLD, lam: torch.Tensor, m: torch.Tensor, t: torch.Tensor):
    """Per pair (x_i, v_i) in the target's eigenbasis: means (..., d, 2) and covariances (..., d, 2, 2) at times t."""
    E = expm2(process.A, t)  # (..., 2, 2)
    S = process.stationary_cov - E @ process.stationary_cov @ E.transpose(-1, -2)
    c0 = torch.zeros(lam.shape[0], 2, 2, dtype=torch.float64)
    c0[:, 0, 0], c0[:, 1, 1] = lam, process.velocity_var0
    Ed = E[..., None, :, :]
    mean = (Ed[..., :, 0] * m[:, None])  # E (m, 0)^T = m * first column
    cov = Ed @ c0 @ Ed.transpose(-1, -2) + S[..., None, :, :]
    return E, S, mean, cov


def _closed_form(target: Gaussian, process: CLD, g: torch.Tensor, m_nodes: int):
    lam, U = torch.linalg.eigh(target.cov)
    mt = U.T @ target.mean
    out = []
    for nodes in (m_nodes, 2 * m_nodes):
        node, weight = _log_nodes(g[:-1], g[1:], nodes)  # (N, J)
        _, _, mean_k, cov_k = _pair_laws(process, lam, mt, g[:-1])  # (N, d, 2), (N, d, 2, 2)
        r_k = torch.linalg.inv(cov_k)[..., 1, :]  # (N, d, 2)
        _, _, mean_s, cov_s = _pair_laws(process, lam, mt, node)  # (N, J, d, 2), (N, J, d, 2, 2)
        r_s = torch.linalg.inv(cov_s)[..., 1, :]
        E_u, S_u, _, _ = _pair_laws(process, lam, mt, g[:-1, None] - node)
        rk = r_k[:, None]  # (N, 1, d, 2)
        a = r_s - (E_u.transpose(-1, -2)[..., None, :, :] @ rk[..., None]).squeeze(-1)
        const = (a * mean_s).sum(-1) + (rk * mean_k[:, None]).sum(-1) - (r_s * mean_s).sum(-1)
        var = (a[..., None, :] @ cov_s @ a[..., None]).squeeze((-1, -2)) \
            + (rk[..., None, :] @ S_u[..., None, :, :] @ rk[..., None]).squeeze((-1, -2))
        val = (const**2 + var).sum(-1)  # sum over pairs: (N, J)
        out.append(process.friction * (weight * val).sum(-1))
    return out[1], (out[1] - out[0]).abs()


def _monte_carlo(target: Target, score: ScoreFn, process: CLD, g: torch.Tensor, m: int, n: int,
                 generator: torch.Generator | None):
    true_score = ExactScore(target, process)
    n1, w1 = _log_nodes(g[:-1], g[1:], m)
    n2, w2 = _log_nodes(g[:-1], g[1:], 2 * m)
    d = target.dim
    N = g.shape[0] - 1
    kl, var, quad = (torch.empty(N, dtype=torch.float64) for _ in range(3))

    def step(z: torch.Tensor, u: float) -> torch.Tensor:
        E, S = process.transition(u)
        L = torch.linalg.cholesky(torch.kron(S, torch.eye(d, dtype=torch.float64)))  # u > 0: S is definite
        return z @ torch.kron(E, torch.eye(d, dtype=torch.float64)).T + torch.randn(
            z.shape, generator=generator, dtype=z.dtype) @ L.T

    for k in range(N):
        nodes = torch.cat([n1[k], n2[k]])
        z = process.marginal(target, float(g[k + 1])).sample(n, generator=generator)
        prev, true = float(g[k + 1]), {}
        for j in torch.argsort(nodes).tolist():
            z = step(z, float(nodes[j]) - prev)
            true[j] = true_score(z, float(nodes[j]))
            prev = float(nodes[j])
        z = step(z, float(g[k]) - prev)
        est = score(z, float(g[k]))
        f = {j: ((est - true[j]) ** 2).sum(1) for j in true}
        i1 = process.friction * sum(w1[k, j] * f[j] for j in range(m))
        i2 = process.friction * sum(w2[k, j] * f[m + j] for j in range(2 * m))
        kl[k], var[k], quad[k] = i2.mean(), i2.var() / n, (i2.mean() - i1.mean()).abs()
    return kl, var, quad


def cld_path_kl(target: Target, score: ScoreFn, grid: Any, process: CLD | None = None,
                generator: torch.Generator | None = None, *, n_paths: int = 2000, nodes: int = 3) -> PathKL:
    """Girsanov path KL of the CLD exponential integrator with velocity score ``score`` on ``grid``.

    Closed form when the target is Gaussian and ``score`` is its exact velocity score under
    ``process``; otherwise Monte Carlo over ``n_paths`` exact forward paths per step. The inner time
    integrals use Gauss-Legendre quadrature in log t with m and 2m nodes (``nodes`` = m).
    """
    process = CLD() if process is None else process
    if not isinstance(process, CLD):
        raise TypeError(f"process must be a CLD process; got {type(process).__name__}")
    if not isinstance(target, Target):
        raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
    if not callable(score):
        raise TypeError(f"score must be a callable s_v(z, t); got {type(score).__name__}")
    g = grids.from_times(grid)
    nodes = _checks.positive_int("nodes", nodes)
    n_paths = _checks.positive_int("n_paths", n_paths, minimum=2)
    exact = isinstance(score, ExactScore) and score.target is target and score.process == process
    if isinstance(target, Gaussian) and exact:
        per_step, quad = _closed_form(target, process, g, nodes)
        return PathKL(float(per_step.sum()), 0.0, float(quad.sum()), per_step,
                      f"closed form; Gauss-Legendre in log t, {2 * nodes} nodes a step")
    per_step, var, quad = _monte_carlo(target, score, process, g, nodes, n_paths, generator)
    return PathKL(float(per_step.sum()), float(var.sum().sqrt()), float(quad.sum()), per_step,
                  f"Monte Carlo, {n_paths} forward paths a step; Gauss-Legendre in log t, {2 * nodes} nodes a step")


def cld_certified_bound(target: Target, score: ScoreFn, grid: Any, process: CLD | None = None,
                        generator: torch.Generator | None = None, *, n_paths: int = 2000, nodes: int = 3):
    """Bound on TV(p_x, q_delta^x) for the CLD exponential integrator started at the stationary
    law: TV(stationary, law at T) + sqrt((path_kl + quadrature error) / 2) (data processing,
    Pinsker, Girsanov with :func:`cld_path_kl`); the x-marginal is no further than the full state.
    Its ``kind``: QUADRATURE for Gaussian targets (exact integrand, the time integral's error
    estimated and added, not proven), ESTIMATE for Monte Carlo."""
    from .certified import _assemble, _init_kl_or_nan, init_tv_bound

    process = CLD() if process is None else process
    kl = cld_path_kl(target, score, grid, process, generator, n_paths=n_paths, nodes=nodes)
    T = float(grids.from_times(grid)[0])
    kind = ESTIMATE if kl.method.startswith("Monte Carlo") else QUADRATURE
    return _assemble(init_tv_bound(target, T, process), _init_kl_or_nan(target, T, process), kl.value, kl.stderr,
                     kl.quadrature_error, kl.method, kl.per_step, kind)
