"""The paper's guarantees as numbers: calculators (orders of magnitude), problem constants, the
certified bound (rigorous, from the proof's chain), and a step planner."""

from .bounds import (ESTIMATE, ORDER, QUADRATURE, RIGOROUS, CLDBound, CompactSupport, DDPMBound, DDPMComplexity, LaterRates, cld_theorem,
                     compact_support, ddpm_complexity, ddpm_theorem, later_rates)
from .certified import CertifiedBound, LearnedBound, certified_bound, init_kl_bound, init_tv_bound, learned_bound
from .cld import PathKL, cld_certified_bound, cld_path_kl
from .constants import ProblemConstants, hessian_log_prob, lipschitz_constant, problem_constants
from .planner import CertifiedPlan, Plan, plan, plan_certified

__all__ = ["ESTIMATE", "ORDER", "QUADRATURE", "RIGOROUS", "DDPMBound", "DDPMComplexity", "CompactSupport", "CLDBound", "LaterRates",
           "ddpm_theorem", "ddpm_complexity", "compact_support", "cld_theorem", "later_rates", "CertifiedBound",
           "certified_bound", "LearnedBound", "learned_bound", "init_kl_bound", "init_tv_bound", "ProblemConstants", "problem_constants", "hessian_log_prob",
           "lipschitz_constant", "Plan", "CertifiedPlan", "plan", "plan_certified", "PathKL", "cld_path_kl", "cld_certified_bound"]
