"""Distances to the truth: exact between Gaussians, sample-based (with noise floors) otherwise."""

from .atoms import AtomTV, atom_separation, atom_tv
from .gaussian import (MCEstimate, TVBounds, gaussian_hellinger, gaussian_kl, gaussian_tv_bounds, gaussian_tv_mc,
                       gaussian_w2)
from .samples import (CoupledMMD, ExactMMD, MMDEstimate, SampleMetric, law_bandwidths, median_bandwidth, mmd,
                      mmd_exact, mmd_exact_difference, mmd_frequencies, mmd_samples, mmd_small_scales, mode_tv,
                      mode_weights, scale_ladder, sliced_w2, sliced_w2_samples, tv_histogram, w2, w2_samples)

__all__ = ["gaussian_kl", "gaussian_w2", "gaussian_hellinger", "gaussian_tv_bounds", "gaussian_tv_mc", "TVBounds",
           "MCEstimate", "SampleMetric", "w2", "w2_samples", "sliced_w2", "sliced_w2_samples", "mmd", "mmd_samples",
           "median_bandwidth", "ExactMMD", "MMDEstimate", "mmd_exact", "mmd_exact_difference",
           "mmd_frequencies", "CoupledMMD", "scale_ladder", "law_bandwidths", "mmd_small_scales",
           "mode_tv", "mode_weights", "tv_histogram", "AtomTV", "atom_tv", "atom_separation"]
