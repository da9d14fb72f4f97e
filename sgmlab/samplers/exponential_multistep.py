"""Exponential-integrator multistep solvers for the reverse SDE (score extrapolation)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from . import _fused
from .base import Callback, check_run, checked, run_loop


@dataclass(frozen=True)
class ExponentialMultistepSDE:
    r"""The paper's exponential integrator with the score extrapolated in time from earlier steps
    (order 1, 2 or 3; Adams-Bashforth-type), the linear part and the noise integrated exactly.
    In OU time, with reverse time r in [0, h] and :math:`s(r) \approx \sum_j c_j r^j`:

    .. math::
        Y' = e^h Y + 2\sum_j c_j \int_0^h r^j e^{h - r} dr + \sqrt{e^{2h} - 1}\,\xi,

    :math:`\int_0^h e^{h-r}dr = e^h - 1`, :math:`\int_0^h r e^{h-r}dr = e^h - 1 - h`,
    :math:`\int_0^h r^2 e^{h-r}dr = 2(e^h - 1 - h - h^2/2)`. Order 1 is exactly the paper's step.
    The polynomial interpolates the scores at the current and previous grid times (Newton form);
    :meth:`weights` gives the resulting linear combination, which :func:`multistep_output_law` uses.
    """

    order: int = 2

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3; got {self.order}")

    def weights(self, rs: list[float], h: float) -> list[float]:
        """Coefficients w_j of the scores in the history (reverse times ``rs``, oldest first, newest
        last) in the drift term: Y' = e^h Y + 2 sum_j w_j s_j + noise."""
        k = min(self.order, len(rs))
        eh = math.expm1(h)
        I0, I1, I2 = eh, eh - h, 2 * (eh - h - h * h / 2)
        r0 = rs[-1]
        w = [0.0] * len(rs)
        w[-1] += I0
        if k >= 2:  # + I1 * f01, f01 = (s0 - s1) / (r0 - r1)
            r1 = rs[-2]
            c = I1 / (r0 - r1)
            w[-1] += c
            w[-2] -= c
        if k == 3:  # + (I2 + (r0 - r1) I1) * f012, f012 = (f01 - f12) / (r0 - r2)
            r1, r2 = rs[-2], rs[-3]
            c = (I2 + (r0 - r1) * I1) / (r0 - r2)
            w[-1] += c / (r0 - r1)
            w[-2] -= c / (r0 - r1) + c / (r1 - r2)
            w[-3] += c / (r1 - r2)
        return w

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process, g = check_run(score, x_init, grid, process, generator)
        tau = process.ou_time(g).tolist()
        score = checked(score)
        hist: list[tuple[float, torch.Tensor]] = []  # (reverse time, score), newest last
        scratch = _fused.Scratch()

        def step(i: int, t: float, tn: float, x: torch.Tensor) -> torch.Tensor:
            hist.append((tau[0] - tau[i], score(x, t)))
            del hist[:-self.order]
            h = tau[i] - tau[i + 1]
            x = _fused.first_state(x) if i == 0 else x  # a copy of x_init, unless its owner gave it up
            terms = [(2 * wj, sj) for wj, (_, sj) in zip(self.weights([r for r, _ in hist], h), hist)]
            return _fused.affine_(x, math.exp(h), terms, math.sqrt(math.expm1(2 * h)), generator, scratch)

        return run_loop(self, x_init, g, step, callback)


exponential_sde_1 = ExponentialMultistepSDE(1)
exponential_sde_2 = ExponentialMultistepSDE(2)
exponential_sde_3 = ExponentialMultistepSDE(3)
