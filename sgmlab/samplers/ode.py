"""Probability-flow ODE samplers (Euler and Heun) and exact laws of deterministic samplers."""

from __future__ import annotations

from typing import Any

import torch

from ..processes import OU, Process
from ..scores import ScoreFn
from ..targets.gaussian import Gaussian
from .base import Callback, check_run, checked, run_loop


def _flow(process: Process, score: ScoreFn, x: torch.Tensor, t: float) -> torch.Tensor:
    """dx/dt of the probability-flow ODE in forward time: f(x, t) - g(t)^2 s(x, t) / 2."""
    return process.drift(x, t) - 0.5 * float(process.beta(t)) * score(x, t)


def _integrate(step: Any, score: ScoreFn, x_init: torch.Tensor, grid: Any, process: Process | None,
               generator: torch.Generator | None, callback: Callback | None, name: str) -> torch.Tensor:
    """The loop both ODE samplers share; ``step(flow, x, t, t_next)`` returns the next state."""
    process, g = check_run(score, x_init, grid, process, generator)
    score = checked(score)
    return run_loop(name, x_init, g, lambda i, t, tn, x: step(lambda y, s: _flow(process, score, y, s), x, t, tn),
                    callback)


def probability_flow_euler(score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                           generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    r"""Euler steps on the probability-flow ODE :math:`\dot x = f(x, t) - \tfrac12 g(t)^2 \nabla\log q_t(x)`
    (Song et al. 2021) from t_k to t_{k+1}; one score evaluation per step. Deterministic."""
    return _integrate(lambda flow, x, t, tn: x + (tn - t) * flow(x, t), score, x_init, grid, process, generator,
                      callback, "probability_flow_euler")


def probability_flow_heun(score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                          generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
    """Heun's second-order method on the probability-flow ODE (EDM's deterministic sampler): two
    score evaluations per step, so 2N score evaluations for N steps."""

    def step(flow: Any, x: torch.Tensor, t: float, tn: float) -> torch.Tensor:
        d = flow(x, t)
        return x + (tn - t) * 0.5 * (d + flow(x + (tn - t) * d, tn))

    return _integrate(step, score, x_init, grid, process, generator, callback, "probability_flow_heun")


probability_flow_heun.evaluations_per_step = 2  # type: ignore[attr-defined]


def deterministic_output_law(sampler: Any, target: Gaussian, grid: Any, *, process: Process | None = None) -> Gaussian:
    r"""Exact output law of a deterministic sampler with the exact (affine) score of a Gaussian target.

    Such a sampler is an affine map :math:`x_0 \mapsto Ax_0 + b` (linear operations on the state and
    on affine scores). Running it on the d + 1 points 0, e_1, ..., e_d gives b and the columns of A,
    so the output of :math:`x_0 \sim N(0, I)` is exactly :math:`N(b, AA^\top)`. Works for any
    deterministic sampler, diffusers' schedulers included.
    """
    from ..scores import exact

    process = OU() if process is None else process
    d = target.dim
    pts = torch.cat([torch.zeros(1, d, dtype=torch.float64), torch.eye(d, dtype=torch.float64)])
    out = sampler(exact(target, process), pts, grid, process=process)
    b = out[0]
    A = (out[1:] - b).T
    cov = A @ A.T
    return Gaussian(b, 0.5 * (cov + cov.T))
