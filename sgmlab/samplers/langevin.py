"""Unadjusted Langevin Monte Carlo with the score of the target itself (Chen et al. 2023, abstract, point 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from .base import Callback, StepInfo, check_output, check_run, check_score_output, standard_normal_


@dataclass(frozen=True)
class UnadjustedLangevin:
    r""":math:`x_{k+1} = x_k + \eta\,\nabla\log q(x_k) + \sqrt{2\eta}\,\xi_k`, the score taken at the
    grid's last time (``score(x, grid[-1])``: :math:`q_\delta \approx q`); the grid only sets the number
    of steps N = len(grid) - 1, one score evaluation each. No noising: without a functional
    inequality it need not mix between well separated modes in N steps."""

    step_size: float = 0.01

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process, g = check_run(score, x_init, grid, process, generator)
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0; got {self.step_size}")
        t = float(g[-1])
        x = x_init.clone()
        noise = torch.empty_like(x)
        for i in range(g.shape[0] - 1):
            s = score(x, t)
            if i == 0:
                check_score_output(s, x)
            x = x + self.step_size * s + math.sqrt(2 * self.step_size) * standard_normal_(noise, generator)
            if callback is not None:
                callback(StepInfo(i, g.shape[0] - 1, t, t, x))
        return check_output(x, self)


unadjusted_langevin = UnadjustedLangevin()
