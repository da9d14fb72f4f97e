"""``sg.sample``: n samples within a budget of score evaluations, with the sampler and grid that
were most accurate for that budget in ``sgmlab bench``.

Every default is DPM-Solver++ (data prediction, multistep) on a grid of nfe - 1 steps from T down
to delta, then a final denoising step to t = 0 (the data prediction at delta;
:func:`sgmlab.grids.denoised`):

=========  =====  ====================  =====  =======  ==========================================
budget     order  grid                  T      delta    why
=========  =====  ====================  =====  =======  ==========================================
< 7        2M     ``log_snr_focused``   5      3e-2     at 6, 3M loses mixture2d to diffusers
7 - 12     3M     ``log_snr_focused``   5      2e-2     few steps: most where trajectories choose
13 - 34    3M     ``log_snr``           5      3e-3     spend no steps on the smallest noise levels
35 - 74    3M     ``log_snr``           7      1e-3     T = 5: a prior mismatch shows from 50 on
>= 75      3M     ``log_snr``           7      1e-4     enough steps for the last noise levels
=========  =====  ====================  =====  =======  ==========================================

They were chosen on the bench's targets (anisotropic Gaussians, d = 10 and 100, by exact KL; the
2-D and 16-D mixtures and the digits by the exact-law MMD, every method from the same prior
draws) among T in {5, 6, 7}, delta in {1e-4, ..., 3e-2}, with or without the denoising step,
orders 2 and 3, UniPC's corrector, and log-SNR, focused log-SNR, Karras and DDPM (``vp_linear``)
spacings. Measured numbers: the README's benchmark table.

At 10 evaluations the uniform log-SNR grid lost to diffusers' DPM-Solver++ 3M and UniPC on the
digits (coupled z = -8.6 at n = 1e5): they spend more of their steps where the trajectories choose
a training image (t from 0.2 to 1.3), while mixture2d needs steps down to small t. The focused grid
(steps up to 2.3 times denser around lambda = log(alpha/sigma) = -1/2) with delta = 2e-2 does both:
on a seed not used to choose it, z = +4.5 (digits, n = 1e5), +41 (mixture2d, n = 1e6) and +43
(mixture16, n = 2e5) against the best peer. The price: the Gaussians' exact KL at 10 rises from
0.023 to 0.12 (d = 10; DEIS, the best peer, 0.55) and from 0.24 to 0.92 (d = 100; DEIS 4.8), and
0.7-0.8% of the digits come out as blends of training images (diffusers' DPM-Solver++: 14%;
``metrics.atom_tv``). At 12 the focused grid is still ahead on all three; at 14 the uniform grid
ties it on the digits and wins on mixture16 (z = +8.5 for the uniform grid, -5.6 for the focused).

Below 10 evaluations (not in the bench; coupled z at n = 2e4 digits, 1e6 mixture2d, 1e5 mixture16,
seed 1): at 6, 2M with delta = 3e-2 beats every peer on the three (z >= 16), where 3M loses
mixture2d (z = -83); at 7 and 8, 3M wins all (z >= 11). At 4 every choice tried loses mixture2d
to diffusers' UniPC (MMD^2 0.010 for 2M here against UniPC's 0.0055).
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


# (smallest budget, sampler, grid, T, delta): see the module docstring.
DEFAULT_TABLE: tuple[tuple[int, Any, Callable[[float, float, int], torch.Tensor], float, float], ...] = (
    (1, dpm_solver_pp_2m, grids.log_snr_focused, 5.0, 3e-2),
    (7, dpm_solver_pp_3m, grids.log_snr_focused, 5.0, 2e-2),
    (13, dpm_solver_pp_3m, grids.log_snr, 5.0, 3e-3),
    (35, dpm_solver_pp_3m, grids.log_snr, 7.0, 1e-3),
    (75, dpm_solver_pp_3m, grids.log_snr, 7.0, 1e-4),
)


def evaluations_per_step(sampler: Any) -> int:
    """Score evaluations one step of ``sampler`` makes (1 unless the sampler says otherwise)."""
    return int(getattr(sampler, "evaluations_per_step", 1))


def default_plan(nfe: int) -> SamplePlan:
    """The default sampler and grid for a budget of ``nfe`` score evaluations (see the table above):
    nfe - 1 steps of the budget's grid from T to delta, then the final denoising step to t = 0."""
    nfe = _checks.positive_int("nfe", nfe)
    _, sampler, grid, T, delta = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]
    if nfe == 1:
        return SamplePlan(sampler, torch.tensor([T, 0.0], dtype=torch.float64), 1)
    return SamplePlan(sampler, grids.denoised(grid(T, delta, nfe - 1)), nfe)


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
