r"""Score matching for CLD: the velocity score of :math:`q_t` over z = [x, v].

Hybrid score matching (Dockhorn et al. 2022) marginalises the initial velocity
:math:`v_0 \sim N(0, M I)` given :math:`x_0`: per coordinate pair
:math:`z_t \mid x_0 \sim N(E_t (x_{0,i}, 0)^\top, \Sigma_t)` with
:math:`\Sigma_t = E_t\,\mathrm{diag}(0, M)\,E_t^\top + S_t` (the same 2x2 matrix for every pair).
Writing :math:`z_t = \mu + L_t\varepsilon` (:math:`L_t` the Cholesky factor), the conditional velocity
score is :math:`-\varepsilon_v / (L_t)_{22}`, so the network predicts :math:`\varepsilon_v` (noise
parametrization) and :math:`s_v = -\hat\varepsilon_v / (L_t)_{22}`. Plain denoising score matching
conditions on :math:`v_0` too (:math:`\Sigma_t = S_t`, singular as t -> 0).
"""

from __future__ import annotations

import torch
from torch import nn

from ..processes import CLD, expm2


def conditional_factors(process: CLD, t: torch.Tensor, hybrid: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """E_t (.., 2, 2) and the Cholesky factor L_t (.., 2, 2) of the conditional covariance."""
    E = expm2(process.A, t.to(torch.float64))
    S = process.stationary_cov - E @ process.stationary_cov @ E.transpose(-1, -2)
    if hybrid:
        S = S + E @ torch.diag(torch.tensor([0.0, process.velocity_var0], dtype=torch.float64)) @ E.transpose(-1, -2)
    # 2x2 Cholesky in closed form (batched)
    l00 = S[:, 0, 0].clamp_min(0).sqrt()
    l10 = S[:, 1, 0] / l00
    l11 = (S[:, 1, 1] - l10**2).clamp_min(0).sqrt()
    L = torch.zeros_like(S)
    L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = l00, l10, l11
    return E, L


class CLDScoreModel(nn.Module):
    """s_v(z, t) for states z = [x, v] of shape (n, 2d); the network maps (z, c_noise) to eps_v."""

    def __init__(self, net: nn.Module, process: CLD | None = None):
        # time enters as log of the hybrid conditional scale at t, whichever loss (HSM or DSM) trained it
        super().__init__()
        self.net = net
        self.process = CLD() if process is None else process
        self.parametrization = "noise"

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _, L = conditional_factors(self.process, t.detach().cpu(), True)
        l22 = L[:, 1, 1].to(device=z.device, dtype=z.dtype)[:, None]
        return -self.net(z, (l22.log() / 4).squeeze(1)) / l22

    def score_fn(self):
        from .model import sampler_score

        return sampler_score(self)


def cld_dsm_loss(model: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, w: torch.Tensor,
                 process: CLD, hybrid: bool = True) -> torch.Tensor:
    """Per-sample weighted score-matching loss for the velocity score, shape (n,).

    ``eps`` holds standard normals: [eps_x, eps_v] (n, 2d) for hybrid score matching; for plain
    denoising score matching a third block (n, 3d) draws the initial velocity v_0 = sqrt(gamma M) eps_0.
    Either way z_t = E_t (x_0, v_0) + L_t (eps_x, eps_v) per pair and the target is -eps_v / (L_t)_22."""
    d = x0.shape[1]
    if eps.shape[1] != (2 if hybrid else 3) * d:
        raise ValueError(f"eps must have {(2 if hybrid else 3) * d} columns for "
                         f"{'hybrid' if hybrid else 'denoising'} score matching; got {eps.shape[1]}")
    E, L = conditional_factors(process, t.detach().cpu(), hybrid)
    E, L = E.to(x0), L.to(x0)
    ex, ev = eps[:, :d], eps[:, d:2 * d]
    v0 = 0.0 if hybrid else process.velocity_var0**0.5 * eps[:, 2 * d:]
    x = E[:, 0, 0, None] * x0 + E[:, 0, 1, None] * v0 + L[:, 0, 0, None] * ex
    v = E[:, 1, 0, None] * x0 + E[:, 1, 1, None] * v0 + L[:, 1, 0, None] * ex + L[:, 1, 1, None] * ev
    s = model(torch.cat([x, v], 1), t)
    target = -ev / L[:, 1, 1, None]
    return w.to(x0.dtype) * ((s - target) ** 2).sum(1)
