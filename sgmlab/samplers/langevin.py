"""Unadjusted Langevin Monte Carlo with the score of the target itself (Chen et al. 2023, abstract, point 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from .base import Callback, check_run, checked, run_loop, standard_normal_


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
        t_end, score, noise = float(g[-1]), checked(score), torch.empty_like(x_init)

        def step(i: int, t: float, tn: float, x: torch.Tensor) -> torch.Tensor:  # the score at q_delta throughout
            return x + self.step_size * score(x, t_end) + math.sqrt(2 * self.step_size) * standard_normal_(noise, generator)

        return run_loop(self, x_init, g, step, callback)


unadjusted_langevin = UnadjustedLangevin()
