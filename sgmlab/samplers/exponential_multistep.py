"""Exponential-integrator multistep solvers for the reverse SDE (score extrapolation)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from .base import Callback, StepInfo, check_run, check_score_output, standard_normal_


@dataclass(frozen=True)
class ExponentialMultistepSDE:
    r"""The paper's exponential integrator with the score extrapolated in time from earlier steps
    (order 1, 2 or 3; Adams-Bashforth-type), the linear part and the noise integrated exactly.
    In OU time, with reverse time r in [0, h] and :math:`s(r) \approx \sum_j c_j r^j`:

    .. math::
        Y' = e^h Y + 2\sum_j c_j \int_0^h r^j e^{h - r} dr + \sqrt{e^{2h} - 1}\,\xi,

    :math:`\int_0^h e^{h-r}dr = e^h - 1`, :math:`\int_0^h r e^{h-r}dr = e^h - 1 - h`,
    :math:`\int_0^h r^2 e^{h-r}dr = 2(e^h - 1 - h - h^2/2)`. Order 1 is exactly the paper's step.
    The polynomial interpolates the scores at the current and previous grid times (Newton form).
    """

    order: int = 2

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3; got {self.order}")

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process, g = check_run(score, x_init, grid, process, generator)
        tau = process.ou_time(g).tolist()
        x = x_init.clone()
        noise = torch.empty_like(x)
        hist: list[tuple[float, torch.Tensor]] = []  # (reverse time, score), newest last
        T = tau[0]
        for i, (t, tn) in enumerate(zip(g[:-1].tolist(), g[1:].tolist())):
            s = score(x, t)
            if i == 0:
                check_score_output(s, x)
            r0 = T - tau[i]
            hist = (hist + [(r0, s)])[-3:]
            h = tau[i] - tau[i + 1]
            k = min(self.order, len(hist))
            eh = math.expm1(h)
            I0, I1, I2 = eh, eh - h, 2 * (eh - h - h * h / 2)
            # s(r0 + u) ~ s0 + a (u) + b (u)(u + dr1), Newton form in u = r - r0 >= 0
            drift = I0 * s
            if k >= 2:
                (r1, s1) = hist[-2]
                f01 = (s - s1) / (r0 - r1)
                drift = drift + I1 * f01
                if k == 3:
                    (r2, s2) = hist[-3]
                    f12 = (s1 - s2) / (r1 - r2)
                    f012 = (f01 - f12) / (r0 - r2)
                    # (u)(u + r0 - r1) = u^2 + (r0 - r1) u
                    drift = drift + f012 * (I2 + (r0 - r1) * I1)
            x = (eh + 1) * x + 2 * drift
            x.add_(standard_normal_(noise, generator), alpha=math.sqrt(math.expm1(2 * h)))
            if callback is not None:
                callback(StepInfo(i, g.shape[0] - 1, t, tn, x))
        return x


exponential_sde_1 = ExponentialMultistepSDE(1)
exponential_sde_2 = ExponentialMultistepSDE(2)
exponential_sde_3 = ExponentialMultistepSDE(3)
