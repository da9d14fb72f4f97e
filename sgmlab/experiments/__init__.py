"""Runnable experiments: each takes a frozen config and returns its results."""

from .sampling import GRIDS, PROCESSES, SAMPLERS, SampleConfig, SampleResult, run_sampling

__all__ = ["SampleConfig", "SampleResult", "run_sampling", "SAMPLERS", "GRIDS", "PROCESSES"]
