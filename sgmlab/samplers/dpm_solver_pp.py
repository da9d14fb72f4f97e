"""DPM-Solver++ multistep in data prediction (Lu et al. 2022), for the probability-flow ODE."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from . import _fused
from .base import Callback, check_run, checked, run_loop


def check_order(order: Any) -> None:
    if order not in (1, 2, 3):
        raise ValueError(f"order must be 1, 2 or 3; got {order}")


def data_prediction_schedule(process: Process, g: torch.Tensor) -> tuple[list[float], list[float], list[float]]:
    r""":math:`\alpha_t = e^{-\tau}`, :math:`\sigma_t = \sqrt{1 - e^{-2\tau}}` and
    :math:`\lambda = \log(\alpha/\sigma)` (:math:`\infty` at t = 0) on the grid, in OU time."""
    tau = process.ou_time(g)
    alpha, sigma = torch.exp(-tau).tolist(), torch.sqrt(-torch.expm1(-2 * tau)).tolist()
    return alpha, sigma, [math.log(a / s) if s > 0 else math.inf for a, s in zip(alpha, sigma)]


def step_weights(k: int, lam: list[float], alpha_next: float) -> list[float]:
    r"""The step :math:`x_{t'} = \frac{\sigma_{t'}}{\sigma_t} x_t + \sum_j c_j D_j` of order k as weights
    :math:`c_j` on the data predictions :math:`D_0, D_1, \dots` (newest first), from the log-SNRs
    ``lam`` of the k - 1 earlier times, the current time and the next (:class:`DPMSolverPP`'s
    formulas expanded, so that a step is k + 1 passes over the state)."""
    h = lam[-1] - lam[-2]
    em = math.expm1(-h)
    if k == 1:
        return [-alpha_next * em]
    if k == 2:  # D = m0 + (m0 - m1) / (2 r)
        r = (lam[-2] - lam[-3]) / h
        return [-alpha_next * em * (1 + 0.5 / r), alpha_next * em * 0.5 / r]
    # D1 = (1 + rho) d0 - rho d1, D2 = (d0 - d1) / (r0 + r1), d0 = (m0 - m1) / r0, d1 = (m1 - m2) / r1
    r0, r1 = (lam[-2] - lam[-3]) / h, (lam[-3] - lam[-4]) / h
    a, b = alpha_next * (em / h + 1), alpha_next * ((em + h) / h**2 - 0.5)
    rho = r0 / (r0 + r1)
    c0, c1 = a * (1 + rho) - b / (r0 + r1), -a * rho + b / (r0 + r1)  # on d0 and d1
    return [-alpha_next * em + c0 / r0, -c0 / r0 + c1 / r1, -c1 / r1]


@dataclass(frozen=True)
class DPMSolverPP:
    r"""Multistep DPM-Solver++ of order 1, 2 or 3 for the probability-flow ODE, in OU time
    (:math:`\alpha_t = e^{-\tau}`, :math:`\sigma_t = \sqrt{1 - e^{-2\tau}}`, :math:`\lambda = \log(\alpha/\sigma)`),
    with the data prediction :math:`\hat x_0 = (x + \sigma_t^2 s(x, t))/\alpha_t` (Tweedie). With
    :math:`h = \lambda_{t'} - \lambda_t`:

    .. math::
        x_{t'} = \frac{\sigma_{t'}}{\sigma_t} x_t - \alpha_{t'}(e^{-h} - 1) D,

    D the data prediction (order 1, DDIM), or its linear (2M) or quadratic (3M) extrapolation from
    earlier steps; the first steps use the lower orders. One score evaluation per step.
    ``lower_order_final`` caps the order at the number of steps left (the last step first order,
    the one before it second), as diffusers does below 15 steps.

    The grid may end at t = 0 (:func:`sgmlab.grids.denoised`): the last step then returns the data
    prediction at the previous time (:math:`h = \infty`, first order, as diffusers' final step to
    :math:`\sigma = 0`), a denoised sample instead of one carrying the noise of early stopping.
    """

    order: int = 2
    lower_order_final: bool = False

    def __post_init__(self) -> None:
        check_order(self.order)

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process, g = check_run(score, x_init, grid, process, generator, allow_zero_end=True)
        alpha, sigma, lam = data_prediction_schedule(process, g)
        score, steps = checked(score), g.shape[0] - 1
        # alpha_j times the data predictions, x_j + sigma_j^2 s_j (the 1/alpha_j goes into the weights), newest
        # last; the last `order - 1` (at least one) are kept, and the new one goes into the buffer of the oldest
        # when this step is its last use (read before it is overwritten)
        hist: list[torch.Tensor] = []
        keep = max(self.order - 1, 1)

        def step(i: int, t: float, tn: float, x: torch.Tensor) -> torch.Tensor:
            s = score(x, t)
            out = hist.pop(0) if len(hist) == keep else None
            if sigma[i + 1] == 0:  # final denoising step (the grid's last)
                return torch.add(x, s, alpha=sigma[i] ** 2, out=out).mul_(alpha[i + 1] / alpha[i])
            k = min(self.order, len(hist) + 1 + (out is not None), steps - i if self.lower_order_final else self.order)
            older = ([*reversed(hist)] + ([out] if out is not None else []))[:k - 1]
            weights = [c / alpha[i - j] for j, c in enumerate(step_weights(k, lam[i - k + 1:i + 2], alpha[i + 1]))]
            x = _fused.first_state(x) if i == 0 else x  # a copy of x_init, unless its owner gave it up
            hist.append(_fused.data_prediction_(x, s, sigma[i] ** 2, out, sigma[i + 1] / sigma[i], weights, older))
            return x

        return run_loop(self, x_init, g, step, callback)


dpm_solver_pp_1 = DPMSolverPP(1)
dpm_solver_pp_2m = DPMSolverPP(2)
dpm_solver_pp_3m = DPMSolverPP(3)
