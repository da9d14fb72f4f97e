"""What the CLD samplers share: a step is a short sequence of stages, each affine in the state
and in the velocity score, and the loop and the exact output law are written once for all."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch

from .. import _checks, grids
from ..processes import CLD
from ..scores import ScoreFn
from ..targets.gaussian import Gaussian
from .base import Callback, check_score_output, run_loop, standard_normal_


class Stage(NamedTuple):
    r"""Per coordinate pair :math:`z_i = (x_i, v_i)`: :math:`z' = \Phi z + c\, s_v(z, t) + L\xi`, with
    :math:`\xi \sim N(0, I_2)` and L lower triangular (``t=None``: no score in this stage)."""

    Phi: torch.Tensor  # (2, 2)
    c: torch.Tensor  # (2,)
    L: torch.Tensor  # (2, 2), lower triangular factor of the stage's noise covariance
    t: float | None


def chol2(S: torch.Tensor) -> torch.Tensor:
    """Lower factor of a 2x2 positive semi-definite matrix (singular allowed)."""
    a = math.sqrt(max(float(S[0, 0]), 0.0))
    b = float(S[1, 0]) / a if a > 0 else 0.0
    return torch.tensor([[a, 0.0], [b, math.sqrt(max(float(S[1, 1]) - b * b, 0.0))]], dtype=torch.float64)


def linear_flow(B: torch.Tensor, Q: torch.Tensor, h: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""For :math:`dz = (Bz + g)\,ds + Q^{1/2} dW` over a time h with g constant: the matrices
    :math:`e^{hB}`, :math:`\Psi = \int_0^h e^{uB} du` and the noise covariance
    :math:`\int_0^h e^{uB} Q e^{uB^\top} du`, all from one 6x6 matrix exponential (Van Loan 1978)."""
    Z = torch.zeros(2, 2, dtype=torch.float64)
    I = torch.eye(2, dtype=torch.float64)
    big = torch.cat([torch.cat([-B, Q, Z], 1), torch.cat([Z, B.T, Z], 1), torch.cat([Z, Z, Z], 1)], 0) * h
    F = torch.linalg.matrix_exp(big)
    Phi = F[2:4, 2:4].T
    noise = Phi @ F[0:2, 2:4]
    aug = torch.linalg.matrix_exp(torch.cat([torch.cat([B, I], 1), torch.cat([Z, Z], 1)], 0) * h)
    return Phi, aug[:2, 2:], 0.5 * (noise + noise.T)


class CLDSampler(ABC):
    """A reverse-time CLD sampler: ``sampler(score, z_init, grid, *, process=None, generator=None,
    callback=None) -> z`` with states of shape (n, 2d) ([x, v]); ``score`` is the velocity score
    (shape (n, d)). Take the x-marginal with ``CLD.positions(z)``."""

    @abstractmethod
    def stages(self, process: CLD, t: float, t_next: float) -> list[Stage]:
        """The stages of the step from forward time t to t_next < t."""

    def __call__(self, score: ScoreFn, z_init: torch.Tensor, grid: Any, *, process: CLD | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process = CLD() if process is None else process
        if not isinstance(process, CLD):
            raise TypeError(f"process must be a CLD process; got {type(process).__name__}")
        if not callable(score):
            raise TypeError(f"score must be a callable s_v(z, t); got {type(score).__name__}")
        if not isinstance(z_init, torch.Tensor) or z_init.ndim != 2 or z_init.shape[1] % 2 or z_init.shape[0] == 0:
            raise ValueError("z_init must be a tensor of shape (n, 2d) with n >= 1 (state [x, v]); got "
                             f"{tuple(z_init.shape) if isinstance(z_init, torch.Tensor) else type(z_init).__name__}")
        if z_init.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"z_init is {z_init.dtype}: the samplers run in float32 or float64; convert it with "
                            "z_init.double() or .float()")
        if not bool(torch.isfinite(z_init).all()):
            raise ValueError("z_init contains NaN or infinite values")
        _checks.generator_for(generator, z_init.device)
        g = grids.from_times(grid)
        d = z_init.shape[1] // 2
        xi = torch.empty(z_init.shape[0], d, dtype=z_init.dtype, device=z_init.device)
        first = [True]

        def step(i: int, t: float, t_next: float, z: torch.Tensor) -> torch.Tensor:  # never writes z in place
            for st in self.stages(process, t, t_next):
                x, v = z[:, :d], z[:, d:]
                P, c, L = st.Phi.tolist(), st.c.tolist(), st.L.tolist()
                nx, nv = P[0][0] * x + P[0][1] * v, P[1][0] * x + P[1][1] * v
                if st.t is not None:
                    s = score(z, st.t)
                    if first.pop() if first else False:
                        check_score_output(s, x)  # the velocity score has the shape of x
                    nx.add_(s, alpha=c[0])
                    nv.add_(s, alpha=c[1])
                if L[0][0] or L[1][0]:
                    standard_normal_(xi, generator)
                    nx.add_(xi, alpha=L[0][0])
                    nv.add_(xi, alpha=L[1][0])
                if L[1][1]:
                    nv.add_(standard_normal_(xi, generator), alpha=L[1][1])
                z = torch.cat([nx, nv], 1)
            return z

        return run_loop(self, z_init, g, step, callback)


def cld_exact_output_law(sampler: CLDSampler, target: Gaussian, grid: Any, *, process: CLD | None = None) -> Gaussian:
    r"""Exact law over [x, v] of a CLD sampler's output for a Gaussian target and its exact velocity
    score, started at the stationary law. In the eigenbasis U of the target's covariance the CLD
    law at any time is block-diagonal over the pairs :math:`(x_i, v_i)`, so each stage maps
    :math:`N(\mu_i, C_i)` to :math:`N(G_i\mu_i + g_i, G_i C_i G_i^\top + LL^\top)` with
    :math:`G_i = \Phi - c\, e_2^\top P_i(t)`, :math:`g_i = c\, e_2^\top P_i(t)\, m_i(t)` (P_i, m_i the
    precision and mean of pair i at time t). Take the x-marginal with ``.project(range(d))``."""
    if not isinstance(sampler, CLDSampler):
        raise TypeError(f"sampler must be a CLD sampler; got {type(sampler).__name__}")
    if not isinstance(target, Gaussian):
        raise TypeError(f"exact output laws need a Gaussian target; got {type(target).__name__}")
    process = CLD() if process is None else process
    g = grids.from_times(grid)
    lam, U = torch.linalg.eigh(target.cov)
    m_tilde = U.T @ target.mean
    d = target.dim
    mu = torch.zeros(d, 2, dtype=torch.float64)
    C = process.stationary_cov.expand(d, 2, 2).clone()

    def pair_law(t: float) -> tuple[torch.Tensor, torch.Tensor]:
        E, S = process.transition(t)
        c0 = torch.zeros(d, 2, 2, dtype=torch.float64)
        c0[:, 0, 0], c0[:, 1, 1] = lam, process.velocity_var0
        mean = torch.stack([m_tilde, torch.zeros_like(m_tilde)], 1) @ E.T
        return mean, E @ c0 @ E.T + S

    for t, t_next in zip(g[:-1].tolist(), g[1:].tolist()):
        for st in sampler.stages(process, t, t_next):
            G = st.Phi.expand(d, 2, 2)
            off = torch.zeros(d, 2, dtype=torch.float64)
            if st.t is not None:
                mean_t, cov_t = pair_law(st.t)
                row = torch.linalg.inv(cov_t)[:, 1, :]  # e_2^T P_i, shape (d, 2)
                G = G - st.c[None, :, None] * row[:, None, :]
                off = st.c[None, :] * (row * mean_t).sum(1, keepdim=True)
            mu = (G @ mu[:, :, None]).squeeze(-1) + off
            C = G @ C @ G.transpose(-1, -2) + st.L @ st.L.T
    cov = torch.zeros(2 * d, 2 * d, dtype=torch.float64)
    UU = torch.block_diag(U, U)
    cov[:d, :d], cov[d:, d:] = torch.diag(C[:, 0, 0]), torch.diag(C[:, 1, 1])
    cov[:d, d:] = cov[d:, :d] = torch.diag(C[:, 0, 1])
    full = UU @ cov @ UU.T
    return Gaussian(UU @ torch.cat([mu[:, 0], mu[:, 1]]), 0.5 * (full + full.T))
