"""Target laws with exact sampling, log-densities and scores, closed under the forward processes."""

from .base import Target
from .builtin import BUILTIN, anisotropic_gaussian, builtin, mixture, mixture2d, ring
from .empirical import Empirical
from .gaussian import Gaussian
from .mixture import GaussianMixture

__all__ = ["Target", "Gaussian", "GaussianMixture", "Empirical", "BUILTIN", "builtin",
           "mixture2d", "ring", "anisotropic_gaussian", "mixture"]
