"""Ho et al.'s ancestral DDPM step, written in OU time."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..processes import Process
from .base import AffineStepSampler, StepCoefficients


@dataclass(frozen=True)
class DDPMAncestral(AffineStepSampler):
    r"""Ancestral sampling of Ho et al. (2020), Algorithm 2, with the noise prediction written as a
    score, :math:`\epsilon = -\sqrt{1 - \bar\alpha_t}\, s`. With :math:`\bar\alpha_t = e^{-2t}` (OU time),
    :math:`\alpha_k = \bar\alpha_{t_k}/\bar\alpha_{t_{k+1}} = e^{-2h_k}`, :math:`\beta_k = 1 - \alpha_k`:

    .. math::
        Y_{k+1} = \frac{1}{\sqrt{\alpha_k}}\bigl(Y_k + \beta_k\, s_{t_k}(Y_k)\bigr) + \sigma_k \xi_k,

    with :math:`\sigma_k^2 = \tilde\beta_k = \frac{1 - \bar\alpha_{t_{k+1}}}{1 - \bar\alpha_{t_k}}\beta_k`
    (``variance="small"``, the posterior variance; diffusers' default) or :math:`\sigma_k^2 = \beta_k`
    (``variance="large"``). It agrees with the exponential integrator to first order in h only:
    :math:`e^{h}\beta_k = 2\sinh h` against :math:`2(e^h - 1)`.
    """

    variance: str = "small"

    def __post_init__(self) -> None:
        if self.variance not in ("small", "large"):
            raise ValueError(f"variance must be 'small' or 'large'; got {self.variance!r}")

    def coefficients(self, process: Process, t: float, t_next: float) -> StepCoefficients:
        tau, tau_next = float(process.ou_time(t)), float(process.ou_time(t_next))
        h = tau - tau_next
        beta = -math.expm1(-2.0 * h)
        var = beta if self.variance == "large" else beta * math.expm1(-2.0 * tau_next) / math.expm1(-2.0 * tau)
        return StepCoefficients(math.exp(h), math.exp(h) * beta, math.sqrt(var))


ddpm_ancestral = DDPMAncestral()
