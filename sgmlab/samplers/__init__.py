"""Reverse-time samplers, one algorithm per file, with the common contract
``sampler(score, x_init, grid, *, process=None, generator=None, callback=None) -> x``."""

from .base import AffineStepSampler, StepCoefficients, StepInfo
from .cld_base import CLDSampler, Stage, cld_exact_output_law
from .cld_euler_maruyama import CLDEulerMaruyama, cld_euler_maruyama
from .cld_exponential_integrator import CLDExponentialIntegrator, cld_exponential_integrator
from .cld_sscs import CLDSymmetricSplitting, cld_sscs
from .ddpm_ancestral import DDPMAncestral, ddpm_ancestral
from .dpm_solver_pp import DPMSolverPP, dpm_solver_pp_1, dpm_solver_pp_2m, dpm_solver_pp_3m
from .unipc import UniPC, unipc_2, unipc_3, unipc_weights
from .exponential_multistep import ExponentialMultistepSDE, exponential_sde_1, exponential_sde_2, exponential_sde_3
from .langevin import UnadjustedLangevin, unadjusted_langevin
from .ode import deterministic_output_law, probability_flow_euler, probability_flow_heun
from .predictor_corrector import PredictorCorrector, predictor_corrector
from .euler_maruyama import EulerMaruyama, euler_maruyama
from .exact_law import exact_output_law, multistep_output_law
from .exponential_integrator import ExponentialIntegrator, exponential_integrator

__all__ = ["AffineStepSampler", "StepCoefficients", "StepInfo", "ExponentialIntegrator", "exponential_integrator",
           "EulerMaruyama", "euler_maruyama", "DDPMAncestral", "ddpm_ancestral", "exact_output_law",
           "CLDSampler", "Stage", "cld_exact_output_law", "CLDExponentialIntegrator", "cld_exponential_integrator",
           "CLDEulerMaruyama", "cld_euler_maruyama", "CLDSymmetricSplitting", "cld_sscs", "DPMSolverPP",
           "dpm_solver_pp_1", "dpm_solver_pp_2m", "dpm_solver_pp_3m", "ExponentialMultistepSDE", "exponential_sde_1",
           "exponential_sde_2", "exponential_sde_3", "probability_flow_euler", "probability_flow_heun",
           "deterministic_output_law", "PredictorCorrector", "predictor_corrector", "UnadjustedLangevin",
           "unadjusted_langevin", "multistep_output_law", "UniPC", "unipc_2", "unipc_3", "unipc_weights"]
