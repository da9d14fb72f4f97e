"""UniPC (Zhao et al. 2023): a multistep predictor with a corrector that costs no score evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from .base import Callback, check_run, checked, run_loop
from .dpm_solver_pp import check_order, data_prediction_schedule


def unipc_weights(rs: list[float], h: float) -> list[float]:
    r"""The weights :math:`a_1, ..., a_p` of the differences
    :math:`D_m = (\hat x_0(s_m) - \hat x_0(s_0)) / r_m` in one UniPC step of length h in log-SNR,
    :math:`r_m = (\lambda_{s_m} - \lambda_{s_0}) / h` (``rs``; the corrector's last is 1, the new
    point). They solve :math:`R a = b` with :math:`R_{km} = r_m^{k-1}` and
    :math:`b_k = k!\,z\varphi_{k+1}(z) / B(h)`, :math:`z = -h`, :math:`B(h) = e^{-h} - 1` (the "B2"
    choice), :math:`\varphi_1(z) = (e^z - 1)/z`, :math:`\varphi_{k+1}(z) = (\varphi_k(z) - 1/k!)/z`.
    With one difference the weight is 1/2, as in the paper (the second-order condition)."""
    p = len(rs)
    if p == 1:
        return [0.5]
    z = -h
    B = math.expm1(z)
    psi, b = math.expm1(z), []  # psi_k = z phi_k(z): psi_1 = e^z - 1, psi_{k+1} = psi_k / z - 1/k!
    for k in range(1, p + 1):
        psi = psi / z - 1.0 / math.factorial(k)
        b.append(math.factorial(k) * psi / B)
    R = torch.tensor([[r**k for r in rs] for k in range(p)], dtype=torch.float64)
    return torch.linalg.solve(R, torch.tensor(b, dtype=torch.float64)).tolist()


def unipc_update(x0: torch.Tensor, lam_i: float, lam_j: float, alpha_j: float, sigma_ratio: float,
                 used: list[tuple[float, torch.Tensor]], new: torch.Tensor | None = None) -> torch.Tensor:
    r"""One UniPC step from log-SNR ``lam_i`` (state ``x0``) to ``lam_j``: ``used`` holds (log-SNR,
    data prediction) pairs, newest last, the last one at ``lam_i``; ``new`` is the data prediction at
    ``lam_j`` for the corrector (None for the predictor). ``sigma_ratio`` is
    :math:`\sigma_j/\sigma_i`. A new tensor, k + 1 passes over the state."""
    h = lam_j - lam_i
    c = -alpha_j * math.expm1(-h)
    m0 = used[-1][1]
    rs = [(lam - lam_i) / h for lam, _ in used[:-1]]
    ms = [m for _, m in used[:-1]]
    if new is not None:
        rs, ms = rs + [1.0], ms + [new]
    # c (m0 + sum_m a_m (m - m0) / r_m) as weights on the data predictions
    ws = [c * am / r for am, r in zip(unipc_weights(rs, h), rs)] if rs else []
    out = torch.mul(x0, sigma_ratio).add_(m0, alpha=c - sum(ws))
    for w, m in zip(ws, ms):
        out.add_(m, alpha=w)
    return out


@dataclass(frozen=True)
class UniPC:
    r"""UniPC in data prediction (Zhao et al. 2023, B(h) = e^{-h} - 1) for the probability-flow ODE,
    in OU time (:math:`\alpha_t = e^{-\tau}`, :math:`\sigma_t = \sqrt{1 - e^{-2\tau}}`,
    :math:`\lambda = \log(\alpha/\sigma)`, :math:`\hat x_0 = (x + \sigma_t^2 s(x, t))/\alpha_t`).
    A step from s_0 to t, :math:`h = \lambda_t - \lambda_{s_0}`, with differences :math:`D_m` of
    earlier data predictions (:func:`unipc_weights`):

    .. math::
        x_t = \frac{\sigma_t}{\sigma_{s_0}} x_{s_0} - \alpha_t (e^{-h} - 1)\,\hat x_0(s_0)
              - \alpha_t B(h) \sum_m a_m D_m .

    The predictor (UniP, order p) uses the p - 1 previous data predictions; with one of them it is
    DPM-Solver++ 2M. The corrector (UniC) repeats the step with the data prediction at the new
    point added, which the next step evaluates anyway: the order rises by one at no score
    evaluation. The corrected state continues; the data prediction kept is the one evaluated at the
    predicted state, as in the paper. ``lower_order_final`` lowers the order of the last steps to
    the number of steps left (diffusers' choice for short grids).

    The grid may end at t = 0 (:func:`sgmlab.grids.denoised`): the last step returns the data
    prediction at the previous time.
    """

    order: int = 2
    corrector: bool = True
    lower_order_final: bool = False

    def __post_init__(self) -> None:
        check_order(self.order)

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process, g = check_run(score, x_init, grid, process, generator, allow_zero_end=True)
        alpha, sigma, lam = data_prediction_schedule(process, g)
        score, steps = checked(score), g.shape[0] - 1
        hist: list[tuple[int, torch.Tensor]] = []  # (grid index, data prediction), newest last
        last: tuple[torch.Tensor, int] | None = None  # (state at the previous time, the order used from it)

        def step(x0: torch.Tensor, i: int, j: int, used: list[tuple[int, torch.Tensor]],
                 new: torch.Tensor | None) -> torch.Tensor:
            return unipc_update(x0, lam[i], lam[j], alpha[j], sigma[j] / sigma[i],
                                [(lam[k], m) for k, m in used], new)

        def one(i: int, t: float, tn: float, x: torch.Tensor) -> torch.Tensor:  # never writes x in place
            nonlocal last
            m = torch.add(x, score(x, t), alpha=sigma[i] ** 2).div_(alpha[i])
            if self.corrector and last is not None:
                x = step(last[0], i - 1, i, hist[-last[1]:], m)
            hist.append((i, m))
            del hist[:-self.order]
            if sigma[i + 1] == 0:  # final denoising step (the grid's last)
                return alpha[i + 1] * m
            k = min(self.order, len(hist), steps - i if self.lower_order_final else self.order)
            last = (x, k)
            return step(x, i, i + 1, hist[-k:], None)

        return run_loop(self, x_init, g, one, callback)


unipc_2 = UniPC(2)
unipc_3 = UniPC(3)
