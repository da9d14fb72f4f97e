"""Exact output laws of affine-step samplers on Gaussian targets."""

from __future__ import annotations

from typing import Any

import torch

from .. import grids
from ..processes import OU, Process
from ..targets.gaussian import Gaussian
from .base import AffineStepSampler


def exact_output_law(sampler: AffineStepSampler, target: Gaussian, grid: Any, *,
                     process: Process | None = None, init: Gaussian | None = None, bias: Any = None) -> Gaussian:
    r"""The exact law of a sampler's output for a Gaussian target and its exact score (plus an
    optional bias).

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
    bias : the score is the exact score plus ``bias(t)`` (a vector, as for
        ``sgmlab.scores.perturbed(..., shape="bias")``): each step's mean moves by
        :math:`c_s U^\top b(t_k)`, the covariance is unchanged. A :class:`sgmlab.scores.PerturbedScore`
        of shape "bias" over the target's exact score is accepted directly.

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
    if bias is not None and hasattr(bias, "eps_at") and hasattr(bias, "direction"):
        if getattr(bias, "shape", None) != "bias":
            raise ValueError("only a bias-shaped perturbation keeps the output law Gaussian; got "
                             f"shape {getattr(bias, 'shape', None)!r}")
        pert = bias
        bias = lambda t: pert.eps_at(t) * pert.direction  # noqa: E731
    a_all = process.mean_coef(g)
    s2_all = -torch.expm1(-2 * process.ou_time(g))
    for k in range(g.shape[0] - 1):
        t, t_next = float(g[k]), float(g[k + 1])
        c = sampler.coefficients(process, t, t_next)
        a, lam_t = a_all[k], a_all[k] ** 2 * lam + s2_all[k]
        M = c.cx - c.cs / lam_t
        mu = M * mu + c.cs * a * m_tilde / lam_t
        if bias is not None:
            mu = mu + c.cs * (U.T @ torch.as_tensor(bias(t), dtype=torch.float64))
        v = M * M * v + c.noise_std**2
    cov = (U * v) @ U.T
    return Gaussian(U @ mu, 0.5 * (cov + cov.T))


def multistep_output_law(sampler: Any, target: Gaussian, grid: Any, *, process: Process | None = None) -> Gaussian:
    r"""Exact output law of an :class:`ExponentialMultistepSDE` on a Gaussian target with its exact
    score. Per coordinate of the target's eigenbasis the step is affine in the last (up to three)
    states, :math:`Y_{k+1} = e^h Y_k + 2\sum_j w_j s_j(Y_{k-j}) + \sqrt{e^{2h}-1}\xi`, so the joint law
    of (Y_k, Y_{k-1}, Y_{k-2}) is Gaussian and is propagated exactly (3-vectors and 3x3 covariances)."""
    import math

    from .exponential_multistep import ExponentialMultistepSDE

    if not isinstance(sampler, ExponentialMultistepSDE):
        raise TypeError(f"sampler must be an ExponentialMultistepSDE; got {type(sampler).__name__}")
    if not isinstance(target, Gaussian):
        raise TypeError(f"exact output laws need a Gaussian target; got {type(target).__name__}")
    process = OU() if process is None else process
    g = grids.from_times(grid)
    tau = process.ou_time(g).to(torch.float64)
    lam, U = torch.linalg.eigh(target.cov)
    m = U.T @ target.mean
    d = target.dim
    mu = torch.zeros(d, 3, dtype=torch.float64)  # (Y_k, Y_{k-1}, Y_{k-2})
    C = torch.zeros(d, 3, 3, dtype=torch.float64)
    C[:, 0, 0] = 1.0
    coef: list[tuple[torch.Tensor, torch.Tensor]] = []  # score at each past time: alpha y + beta
    rs: list[float] = []
    for k in range(g.shape[0] - 1):
        a = math.exp(-float(tau[k]))
        lam_t = a * a * lam + (1 - a * a)
        coef = (coef + [(-1 / lam_t, a * m / lam_t)])[-sampler.order:]
        rs = (rs + [float(tau[0] - tau[k])])[-sampler.order:]
        h = float(tau[k] - tau[k + 1])
        w = sampler.weights(rs, h)
        row = torch.zeros(d, 3, dtype=torch.float64)  # Y_{k+1} = row . (Y_k, Y_{k-1}, Y_{k-2}) + off + noise
        row[:, 0] = math.exp(h)
        off = torch.zeros(d, dtype=torch.float64)
        for j, (wj, (al, be)) in enumerate(zip(reversed(w), reversed(coef))):  # j = 0 is the newest
            row[:, j] += 2 * wj * al
            off += 2 * wj * be
        M = torch.zeros(d, 3, 3, dtype=torch.float64)
        M[:, 0] = row
        M[:, 1, 0] = 1.0
        M[:, 2, 1] = 1.0
        mu = (M @ mu[..., None]).squeeze(-1)
        mu[:, 0] += off
        C = M @ C @ M.transpose(-1, -2)
        C[:, 0, 0] += math.expm1(2 * h)
    cov = (U * C[:, 0, 0]) @ U.T
    return Gaussian(U @ mu[:, 0], 0.5 * (cov + cov.T))
