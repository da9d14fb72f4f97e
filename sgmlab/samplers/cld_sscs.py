"""Symmetric splitting for CLD, in the manner of SSCS (Dockhorn, Vahdat, Kreis 2022)."""

from __future__ import annotations

import torch

from ..processes import CLD
from .cld_base import CLDSampler, Stage, chol2, linear_flow


class CLDSymmetricSplitting(CLDSampler):
    r"""Write the reverse drift as :math:`Bz + Q(\nabla\log q_t + \Sigma_\infty^{-1}z)` with
    :math:`B = A' - Q\Sigma_\infty^{-1}` (an Ornstein-Uhlenbeck drift, solved exactly with its noise)
    and a remainder that vanishes at the stationary law and acts on v only. One step: half a step
    of the B-flow, a full Euler step of the remainder with the score at the midpoint time,
    :math:`v \mathrel{+}= 2\Gamma h\,(s_v(z, t_k - h/2) + v/M)`, and half a step of the B-flow.
    """

    def __repr__(self) -> str:
        return "CLDSymmetricSplitting()"

    def stages(self, process: CLD, t: float, t_next: float) -> list[Stage]:
        h = t - t_next
        B = -process.A - process.Q @ torch.linalg.inv(process.stationary_cov)
        Phi, _, noise = linear_flow(B, process.Q, 0.5 * h)
        half = Stage(Phi, torch.zeros(2, dtype=torch.float64), chol2(noise), None)
        c = torch.tensor([0.0, 2 * process.friction * h], dtype=torch.float64)
        kick = torch.eye(2, dtype=torch.float64) + torch.outer(c, torch.tensor([0.0, 1.0 / process.mass],
                                                                                dtype=torch.float64))
        return [half, Stage(kick, c, torch.zeros(2, 2, dtype=torch.float64), t - 0.5 * h), half]


cld_sscs = CLDSymmetricSplitting()
