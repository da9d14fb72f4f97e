"""Euler-Maruyama for the reverse CLD SDE."""

from __future__ import annotations

import math

import torch

from ..processes import CLD
from .cld_base import CLDSampler, Stage


class CLDEulerMaruyama(CLDSampler):
    r""":math:`z_{k+1} = z_k + h\,(A' z_k + (0, 2\Gamma)^\top s_v(z_k, t_k)) + \sqrt{2\Gamma h}\,(0, \xi_k)^\top`."""

    def __repr__(self) -> str:
        return "CLDEulerMaruyama()"

    def stages(self, process: CLD, t: float, t_next: float) -> list[Stage]:
        h = t - t_next
        Phi = torch.eye(2, dtype=torch.float64) - h * process.A
        c = torch.tensor([0.0, 2 * process.friction * h], dtype=torch.float64)
        L = torch.tensor([[0.0, 0.0], [0.0, math.sqrt(2 * process.friction * h)]], dtype=torch.float64)
        return [Stage(Phi, c, L, t)]


cld_euler_maruyama = CLDEulerMaruyama()
