"""Predictor-corrector sampling with a Langevin corrector (Song et al. 2021, Algorithm 2 in VP form)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..processes import Process
from ..scores import ScoreFn
from .base import Callback, check_run, checked, run_loop, standard_normal_
from .exponential_integrator import exponential_integrator


@dataclass(frozen=True)
class PredictorCorrector:
    r"""Each step: the paper's exponential-integrator step from t_k to t_{k+1} (predictor), then one
    Langevin step at t_{k+1} (corrector),

    .. math::
        x \leftarrow x + \epsilon\, s(x, t_{k+1}) + \sqrt{2\epsilon}\,\xi,\qquad
        \epsilon = 2\,(r\,\overline{|\xi|} / \overline{|s|})^2,

    with the signal-to-noise ratio r (``snr``) and the norms averaged over the batch (Song et al.'s
    step rule). Two score evaluations per step."""

    snr: float = 0.16
    evaluations_per_step: int = 2

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        process, g = check_run(score, x_init, grid, process, generator)
        score, noise = checked(score), torch.empty_like(x_init)

        def step(i: int, t: float, tn: float, x: torch.Tensor) -> torch.Tensor:
            x = exponential_integrator(score, x, g[i:i + 2], process=process, generator=generator)
            s = score(x, tn)
            standard_normal_(noise, generator)
            eps = 2 * (self.snr * float(noise.norm(dim=1).mean()) / max(float(s.norm(dim=1).mean()), 1e-30)) ** 2
            return x + eps * s + math.sqrt(2 * eps) * noise

        return run_loop(self, x_init, g, step, callback)


predictor_corrector = PredictorCorrector()
