"""Reverse-time samplers, one algorithm per file, with the common contract
``sampler(score, x_init, grid, *, process=None, generator=None, callback=None) -> x``."""

from .base import AffineStepSampler, StepCoefficients, StepInfo
from .ddpm_ancestral import DDPMAncestral, ddpm_ancestral
from .euler_maruyama import EulerMaruyama, euler_maruyama
from .exact_law import exact_output_law
from .exponential_integrator import ExponentialIntegrator, exponential_integrator

__all__ = ["AffineStepSampler", "StepCoefficients", "StepInfo", "ExponentialIntegrator", "exponential_integrator",
           "EulerMaruyama", "euler_maruyama", "DDPMAncestral", "ddpm_ancestral", "exact_output_law"]
