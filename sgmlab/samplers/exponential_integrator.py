"""The paper's DDPM sampler: the exponential integrator (Chen et al. 2023)."""

from __future__ import annotations

import math

from ..processes import Process
from .base import AffineStepSampler, StepCoefficients


class ExponentialIntegrator(AffineStepSampler):
    r"""Exponential integrator of Chen et al. (2023), section 2: the score is frozen at the left end
    of each step and the remaining linear SDE is solved exactly. With :math:`h_k` the step in OU time,

    .. math::
        Y_{k+1} = e^{h_k} Y_k + 2(e^{h_k} - 1)\, s_{t_k}(Y_k) + \sqrt{e^{2 h_k} - 1}\; \xi_k .

    For a VP process the step is the same in OU time (:math:`h_k = \tau(t_k) - \tau(t_{k+1})`):
    the algorithm does not depend on the clock.

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> g = torch.Generator().manual_seed(0)
    >>> q = sg.targets.mixture2d()
    >>> x0 = sg.processes.OU().prior_sample(1000, 2, generator=g)
    >>> x = sg.samplers.exponential_integrator(sg.scores.exact(q), x0, sg.grids.uniform(5.0, 1e-3, 200), generator=g)
    """

    def __repr__(self) -> str:
        return "ExponentialIntegrator()"

    def coefficients(self, process: Process, t: float, t_next: float) -> StepCoefficients:
        h = float(process.ou_time(t) - process.ou_time(t_next))
        em1 = math.expm1(h)
        return StepCoefficients(em1 + 1.0, 2.0 * em1, math.sqrt(math.expm1(2.0 * h)))


exponential_integrator = ExponentialIntegrator()
