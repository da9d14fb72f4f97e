"""Exact output laws of affine-step samplers on Gaussian targets."""

from __future__ import annotations

from typing import Any

import torch

from .. import grids
from ..processes import OU, Process
from ..targets.gaussian import Gaussian
from .base import AffineStepSampler


def exact_output_law(sampler: AffineStepSampler, target: Gaussian, grid: Any, *,
                     process: Process | None = None, init: Gaussian | None = None) -> Gaussian:
    r"""The exact law of a sampler's output for a Gaussian target and its exact score.

    With :math:`q = N(m, \Sigma)`, :math:`\Sigma = U \operatorname{diag}(\lambda) U^\top`, the law at
    forward time t is :math:`N(a_t m, U\operatorname{diag}(\lambda_t)U^\top)`,
    :math:`\lambda_t = a_t^2\lambda + \sigma_t^2`, so the exact score is affine and diagonal in the
    basis U. Each step :math:`Y' = c_x Y + c_s s_t(Y) + \sigma\xi` then maps
    :math:`N(\mu, \operatorname{diag}(v))` (coordinates in U) to

    .. math::
        \mu' = M\mu + \frac{c_s a_t \tilde m}{\lambda_t}, \qquad v' = M^2 v + \sigma^2, \qquad
        M = c_x - \frac{c_s}{\lambda_t},

    with :math:`\tilde m = U^\top m`. No Monte-Carlo error, any grid, T and delta.

    Parameters
    ----------
    sampler : an affine-step sampler (exponential_integrator, euler_maruyama, ddpm_ancestral, ...)
    target : Gaussian
    grid : decreasing forward times
    process : default OU
    init : law of the initial state; default the prior N(0, I). Must be isotropic-in-U, i.e. have
        a covariance diagonal in the eigenbasis of the target; the default always is.

    Returns
    -------
    Gaussian : the output law p (compare with ``process.marginal(target, grid[-1])`` or ``target``)
    """
    if not isinstance(sampler, AffineStepSampler):
        raise TypeError(f"sampler must be an affine-step sampler; got {type(sampler).__name__}")
    if not isinstance(target, Gaussian):
        raise TypeError(f"exact output laws need a Gaussian target; got {type(target).__name__}")
    process = OU() if process is None else process
    g = grids.from_times(grid)
    lam, U = torch.linalg.eigh(target.cov)
    m_tilde = U.T @ target.mean
    if init is None:
        mu = torch.zeros_like(m_tilde)
        v = torch.ones_like(lam)
    else:
        if not isinstance(init, Gaussian) or init.dim != target.dim:
            raise ValueError(f"init must be a Gaussian in {target.dim} dimensions")
        mu, C = U.T @ init.mean, U.T @ init.cov @ U
        v = C.diagonal().clone()
        if float((C - torch.diag(v)).abs().max()) > 1e-10 * float(v.abs().max()):
            raise ValueError("init's covariance must be diagonal in the target's eigenbasis")
    a_all = process.mean_coef(g)
    s2_all = -torch.expm1(-2 * process.ou_time(g))
    for k in range(g.shape[0] - 1):
        t, t_next = float(g[k]), float(g[k + 1])
        c = sampler.coefficients(process, t, t_next)
        a, lam_t = a_all[k], a_all[k] ** 2 * lam + s2_all[k]
        M = c.cx - c.cs / lam_t
        mu = M * mu + c.cs * a * m_tilde / lam_t
        v = M * M * v + c.noise_std**2
    cov = (U * v) @ U.T
    return Gaussian(U @ mu, 0.5 * (cov + cov.T))
