"""What the samplers share: the step contract, the loop, and the per-step information."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .. import _checks, grids
from .._random import TAIL, add_noise_, standard_normal_  # noqa: F401 (the samplers' noise, re-exported)
from ..processes import OU, Process
from ..scores import ScoreFn
from . import _fused


class StepCoefficients(NamedTuple):
    r"""One step :math:`x' = c_x x + c_s\, s(x, t_k) + \sigma \xi`, :math:`\xi \sim N(0, I)`."""

    cx: float
    cs: float
    noise_std: float


class StepInfo(NamedTuple):
    """What a callback sees after step ``i`` (from forward time ``t`` to ``t_next``); ``x`` is the new
    state, the sampler's own tensor, which later steps update in place: clone it to keep it."""

    i: int
    steps: int
    t: float
    t_next: float
    x: torch.Tensor


Callback = Callable[[StepInfo], Any]


class AffineStepSampler(ABC):
    r"""A reverse-time sampler whose step is affine in the state and in the score at the left end:

    .. math:: Y_{k+1} = c_x Y_k + c_s\, s(Y_k, t_k) + \sigma_k \xi_k .

    Subclasses give the coefficients of one step; the loop is written once, here. Because the
    step is affine, a Gaussian target with its exact (affine) score gives a Gaussian output law
    that :func:`sgmlab.samplers.exact_output_law` computes exactly.
    """

    @abstractmethod
    def coefficients(self, process: Process, t: float, t_next: float) -> StepCoefficients:
        """Coefficients of the step from forward time ``t`` to ``t_next < t``."""

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any, *, process: Process | None = None,
                 generator: torch.Generator | None = None, callback: Callback | None = None) -> torch.Tensor:
        """Run the reverse process from ``x_init`` (shape (n, d), a draw of the prior at ``grid[0]``)
        over the decreasing forward times ``grid``; returns the state at ``grid[-1]``, shape (n, d).

        Device and dtype come from ``x_init``; randomness only from ``generator``.
        """
        process, g = check_run(score, x_init, grid, process, generator)
        return run_loop(self, x_init, g, self._step(checked(score), process, generator), callback)

    def _step(self, score: ScoreFn, process: Process, generator: torch.Generator | None) -> Step:
        scratch = _fused.Scratch()

        def step(i: int, t: float, t_next: float, x: torch.Tensor) -> torch.Tensor:
            c = self.coefficients(process, t, t_next)
            s = score(x, t)
            x = _fused.first_state(x) if i == 0 else x  # a copy of x_init, unless its owner gave it up
            return _fused.affine_(x, c.cx, [(c.cs, s)], c.noise_std, generator, scratch)

        return step


Step = Callable[[int, float, float, torch.Tensor], torch.Tensor]
"""One step of a sampler, ``step(i, t, t_next, x) -> x'``: from forward time ``t`` to ``t_next < t``;
it may write ``x`` in place except at ``i == 0`` (the caller's ``x_init``)."""


def run_loop(sampler: Any, x_init: torch.Tensor, grid: torch.Tensor, step: Step,
             callback: Callback | None = None) -> torch.Tensor:
    """The loop every sampler runs, written once: step ``i`` from ``grid[i]`` to ``grid[i + 1]``,
    then the non-finite check (naming the step, its times and how many samples went bad), then the
    callback. Samplers supply only their step."""
    steps = grid.shape[0] - 1
    x = x_init
    for i, (t, t_next) in enumerate(zip(grid[:-1].tolist(), grid[1:].tolist())):
        x = step(i, t, t_next, x)
        check_step(x, sampler, i, steps, t, t_next)
        if callback is not None:
            callback(StepInfo(i, steps, t, t_next, x))
    return x


def checked(score: ScoreFn) -> ScoreFn:
    """``score``, checked at its first call to return a tensor of its input's shape, in the input's
    dtype (an exact score computes in float64 for a float32 state), and copied when it shares the
    input's memory (the samplers update their state in place)."""
    first = [True]

    def s(x: torch.Tensor, t: float) -> torch.Tensor:
        out = score(x, t)
        if first[0]:
            check_score_output(out, x)
            first[0] = False
        if out.dtype != x.dtype:
            return out.to(x.dtype)
        return out.clone() if out.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() else out

    return s


def check_step(x: torch.Tensor, sampler: Any, i: int, steps: int, t: float, t_next: float) -> None:
    """A FloatingPointError when step ``i`` left non-finite values (:func:`sgmlab._checks.all_finite`,
    one reduction on the hot path, none after a fused kernel that counted as it wrote; the count
    only when something is wrong)."""
    if _fused.known_finite(x) or _checks.all_finite(x):
        return
    rows = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).sum())
    raise FloatingPointError(f"{_name(sampler)}: step {i + 1} of {steps} (t = {t:.6g} -> {t_next:.6g}) produced "
                             f"non-finite values in {rows} of {x.shape[0]} samples; check the score for NaN or inf "
                             "there or the grid for too large a step")


def _name(sampler: Any) -> str:
    return sampler if isinstance(sampler, str) else getattr(sampler, "__name__", type(sampler).__name__)


def check_output(x: torch.Tensor, sampler: Any) -> torch.Tensor:
    """``x``, or a FloatingPointError naming the sampler and how many samples went non-finite: no
    sampler returns NaN or inf silently."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = int(bad.reshape(x.shape[0], -1).any(1).sum())
        raise FloatingPointError(f"{_name(sampler)} produced non-finite values in {rows} of {x.shape[0]} samples; check the "
                                 "score for NaN or inf (it is evaluated at every step) or the grid for too large steps")
    return x


def check_run(score: Any, x_init: Any, grid: Any, process: Any, generator: Any, *,
              allow_zero_end: bool = False) -> tuple[Process, torch.Tensor]:
    """Validate a sampler call; returns the process (default OU) and the checked grid."""
    check_score(score)
    if not isinstance(x_init, torch.Tensor) or x_init.ndim != 2 or not x_init.is_floating_point():
        raise ValueError("x_init must be a floating tensor of shape (n, d); got "
                         f"{tuple(x_init.shape) if isinstance(x_init, torch.Tensor) else type(x_init).__name__}")
    if x_init.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x_init is {x_init.dtype}: the samplers run in float32 or float64 (their coefficients "
                        "and the score's precision need it); convert it with x_init.double() or .float()")
    if x_init.shape[0] == 0 or x_init.shape[1] == 0:
        raise ValueError(f"x_init is empty (shape {tuple(x_init.shape)}); expected n >= 1 points in d >= 1 dimensions")
    if not bool(torch.isfinite(x_init).all()):
        raise ValueError("x_init contains NaN or infinite values")
    _checks.generator_for(generator, x_init.device)
    return check_process_grid(process, grid, allow_zero_end=allow_zero_end)


def check_process_grid(process: Any, grid: Any, *, allow_zero_end: bool = False) -> tuple[Process, torch.Tensor]:
    """The process (default OU) and the checked grid, which must lie in the process's time range."""
    process = OU() if process is None else process
    if not isinstance(process, Process):
        raise TypeError(f"process must be an sgmlab process; got {type(process).__name__}")
    g = grids.from_times(grid, allow_zero_end=allow_zero_end)
    if g[0] > process.t_max:
        raise ValueError(f"grid starts at t={g[0].item():.6g}, beyond the process's range (t_max={process.t_max})")
    return process, g


def check_score(score: Any) -> None:
    if not callable(score):
        raise TypeError(f"score must be a callable s(x, t); got {type(score).__name__}")


def check_score_output(s: Any, x: torch.Tensor) -> None:
    if not isinstance(s, torch.Tensor) or s.shape != x.shape:
        raise ValueError(f"score returned {tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__}; "
                         f"expected a tensor of the input's shape {tuple(x.shape)}")
    if s.device != x.device:
        raise ValueError(f"score returned a tensor on {s.device} for a state on {x.device}; a score must answer on "
                         "its input's device (move the target or model there: Target.to, model.to)")
    if s.dtype == torch.bool or s.is_complex():
        raise TypeError(f"score returned a {s.dtype} tensor; expected real numbers")
