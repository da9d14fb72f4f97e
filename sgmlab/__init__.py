"""sgmlab: score-based generative models with provable guarantees, checked against exact answers.

Implements Chen, Chewi, Li, Li, Salim, Zhang, "Sampling is as easy as learning the score" (ICLR 2023).
"""

from . import grids, metrics, processes, samplers, scores, targets, theory
from .defaults import default_plan, sample
from .tuning import TunedPlan, tune

try:  # the version is pyproject.toml's, read from the installed metadata
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("sgmlab")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    """``sg.learn``, ``sg.interop`` and ``sg.experiments``, imported on first use."""
    if name in ("learn", "interop", "experiments"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["targets", "processes", "scores", "grids", "samplers", "metrics", "theory", "sample", "default_plan",
           "tune", "TunedPlan"]
