"""``sg.sample``: n samples within a budget of score evaluations, with the sampler and grid that
were most accurate for that budget in the exact-law measurements.

The defaults were chosen with ``sgmlab bench``: exact KL(output || q) on the anisotropic Gaussians
(d = 10, 100) and sample metrics on the mixtures and the digits; below 20 evaluations a larger
delta (1e-2) trades a little Gaussian accuracy for the mixtures' (sharper modes need the last,
smallest steps that a small budget cannot pay for):

=========  ==========================  ===========================================
budget     sampler                     grid
=========  ==========================  ===========================================
< 20       DPM-Solver++ 2M             uniform in log-SNR, T = 5, delta = 1e-2
>= 20      DPM-Solver++ 3M             uniform in log-SNR, T = 5, delta = 1e-4
=========  ==========================  ===========================================

(d = 10: KL 2.7e-2, 5.4e-4, 1.8e-5, 7.3e-6 at 10, 20, 50, 100 evaluations.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from . import _checks, grids
from .processes import OU, Process
from .samplers import dpm_solver_pp_2m, dpm_solver_pp_3m
from .scores import ScoreFn


class SamplePlan(NamedTuple):
    """The sampler and grid ``sg.sample`` uses for a budget, and the score evaluations they take."""

    sampler: Callable[..., torch.Tensor]
    grid: torch.Tensor
    evaluations: int


def evaluations_per_step(sampler: Any) -> int:
    """Score evaluations one step of ``sampler`` makes (1 unless the sampler says otherwise)."""
    return int(getattr(sampler, "evaluations_per_step", 1))


def default_plan(nfe: int) -> SamplePlan:
    """The default sampler and grid for a budget of ``nfe`` score evaluations (see the table above)."""
    nfe = _checks.positive_int("nfe", nfe)
    if nfe < 20:
        return SamplePlan(dpm_solver_pp_2m, grids.log_snr(5.0, 1e-2, nfe), nfe)
    return SamplePlan(dpm_solver_pp_3m, grids.log_snr(5.0, 1e-4, nfe), nfe)


class _Budget:
    def __init__(self, score: ScoreFn, nfe: int):
        self.score, self.nfe, self.calls = score, nfe, 0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.nfe:
            raise RuntimeError(f"the sampler asked for more than its budget of {self.nfe} score evaluations")
        return self.score(x, t)


def sample(score: ScoreFn, n: int, d: int, *, nfe: int, process: Process | None = None, sampler: Any = None,
           grid: Any = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples in d dimensions from the reverse process of ``score``, with at most ``nfe`` score
    evaluations.

    With ``sampler=None`` the budget's default (module docstring, :func:`default_plan`) is used.
    A given sampler without a grid runs on a log-SNR grid from T = 5 to delta = 1e-3 with as many
    steps as the budget allows; a given grid must fit the budget.

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> q = sg.targets.mixture2d()
    >>> x = sg.sample(sg.scores.exact(q), 1000, 2, nfe=20, generator=torch.Generator().manual_seed(0))
    >>> x.shape
    torch.Size([1000, 2])
    """
    nfe = _checks.positive_int("nfe", nfe)
    n = _checks.positive_int("n", n)
    d = _checks.positive_int("d", d)
    process = OU() if process is None else process
    if sampler is None:
        if grid is not None:
            raise ValueError("a grid needs a sampler: pass both, or neither for the budget's default")
        plan = default_plan(nfe)
        sampler, g = plan.sampler, plan.grid
    else:
        per = evaluations_per_step(sampler)
        if grid is None:
            if nfe < per:
                raise ValueError(f"a budget of {nfe} score evaluations is less than one step of this sampler ({per})")
            g = grids.log_snr(5.0, 1e-3, nfe // per)
        else:
            g = grids.from_times(grid)
            if (g.shape[0] - 1) * per > nfe:
                raise ValueError(f"the grid has {g.shape[0] - 1} steps of {per} score evaluations each, "
                                 f"more than the budget of {nfe}")
    x0 = process.prior_sample(n, d, generator=generator)
    return sampler(_Budget(score, nfe), x0, g, process=process, generator=generator)
