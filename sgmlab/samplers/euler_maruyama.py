"""Euler-Maruyama discretisation of the reverse SDE."""

from __future__ import annotations

import math

from ..processes import Process
from .base import AffineStepSampler, StepCoefficients


class EulerMaruyama(AffineStepSampler):
    r"""Euler-Maruyama for the reverse SDE in the process's own clock, drift frozen at the left end:

    .. math::
        Y_{k+1} = Y_k + \Bigl(\tfrac12 \beta(t_k) Y_k + \beta(t_k)\, s_{t_k}(Y_k)\Bigr)\Delta_k
                  + \sqrt{\beta(t_k)\Delta_k}\; \xi_k, \qquad \Delta_k = t_k - t_{k+1}.

    For OU (:math:`\beta = 2`): :math:`Y_{k+1} = (1 + h) Y_k + 2h\, s + \sqrt{2h}\,\xi`. Unlike the
    exponential integrator this depends on the clock: EM on a VP process is a different sampler
    from EM on OU over the mapped grid.
    """

    def __repr__(self) -> str:
        return "EulerMaruyama()"

    def coefficients(self, process: Process, t: float, t_next: float) -> StepCoefficients:
        bd = float(process.beta(t)) * (t - t_next)
        return StepCoefficients(1.0 + 0.5 * bd, bd, math.sqrt(bd))


euler_maruyama = EulerMaruyama()
