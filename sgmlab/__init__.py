"""sgmlab: score-based generative models with provable guarantees, checked against exact answers.

Implements Chen, Chewi, Li, Li, Salim, Zhang, "Sampling is as easy as learning the score" (ICLR 2023).
"""

from . import grids, metrics, processes, samplers, scores, targets, theory
from .defaults import default_plan, sample
from .tuning import TunedPlan, tune

__version__ = "0.1.0"
__all__ = ["targets", "processes", "scores", "grids", "samplers", "metrics", "theory", "sample", "default_plan",
           "tune", "TunedPlan"]
