"""``sg.sample``: n samples within a budget of score evaluations, with the sampler and grid that
were most accurate for that budget in ``sgmlab bench``.

Every default is DPM-Solver++ (data prediction, multistep) on a grid of nfe - 1 steps from T down
to delta, its first time moved up to "start" (:func:`sgmlab.grids.start_at`: one longer first
step, no extra evaluation), then a final denoising step to t = 0 (the data prediction at delta;
:func:`sgmlab.grids.denoised`):

=========  =====  =============================  =====  =======  =====  ================================
budget     order  grid                           T      delta    start  why
=========  =====  =============================  =====  =======  =====  ================================
< 7        2M     ``log_snr_focused``            5      3e-2     5      at 6, 3M loses mixture2d
7 - 12     3M     ``log_snr_focused``            5      2e-2     5      most steps where paths choose
13 - 18    3M     ``log_snr``                    5      3e-3     9      the prior mismatch (below)
19 - 34    3M     ``log_snr_focused`` gain 0.5   5      3e-3     9      the digits want focus (below)
35 - 74    3M     ``log_snr``                    7      1e-3     7      T = 5: prior mismatch from 50
>= 75      3M     ``log_snr``                    7      1e-4     7      steps for the last noise levels
=========  =====  =============================  =====  =======  =====  ================================

They were chosen on the bench's targets (anisotropic Gaussians, d = 10 and 100, by exact KL; the
2-D and 16-D mixtures and the digits by the exact-law MMD, every method from the same prior
draws) among T in {5, 6, 7}, start in {T, 7, 9, 12}, delta in {1e-4, ..., 3e-2}, with or without
the denoising step, orders 2 and 3, UniPC's corrector, and log-SNR, focused log-SNR (gains 0.5 to
1.3), Karras and DDPM (``vp_linear``) spacings. Measured numbers: the README's benchmark table.

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

The prior mismatch. Sampling starts from N(0, I) in place of q_T; for data with mean m that is,
to first order, a shift by e^{-T} m, which no solver removes afterwards. The total variation
between N(0, I) and N(e^{-T} m, I) is erf(e^{-T} |m| / (2 sqrt 2)), about 0.4 e^{-T} |m|: for the
digits (|m| = 5.6) 0.015 at T = 5 (0.0145 at diffusers' T = 5.03), 2.7e-4 at 9. At
20 evaluations it was the largest error left on the digits: every deterministic sampler starting
near T = 5 had MMD^2 1.1e-6 to 1.4e-6 (n = 5e5, seed 2; sgmlab's old log-SNR grid from 5: 1.44e-6,
diffusers' DPM-Solver++ 2M 1.06e-6, z = -1.5), and moving the first time to 9 took it to 4.3e-7
on the log-SNR grid and 2.4e-7 on the focused grid with gain 0.5 (z = +2.8; the bench's own run,
``sgmlab bench --budgets 20 --n digits=1000000``, seed 0: 4.7e-7, z = +3.04). On mixture16
(|m| = 1.75) the start at 9 also helps; there the focused grid's gain costs accuracy, which is why
the 19 - 34 row uses gain 0.5 (seed 1: mixture16 z = +3.1 for gain 0.5, +2.6 for 0.8, +2.0 for
1.3; mixture2d z = +8.4). Below 19 the focus costs mixture2d its lead (seed 1, n = 3e5: at 14,
z = +0.05 focused against +12.0 for the log-SNR grid from 9; at 17, +2.5 against +6.3 for the old
row), so 13 - 18 keep the log-SNR grid and only start at 9. At 30 the old row (no start) lost
mixture16 to DPM-Solver++ 2M (z = -3.3); the new one ties it (-0.9). Rows 35 and up start at 7
already (TV 0.002 on the digits); there every sampler but the paper's is within the noise of the
truth on the digits at n = 5e4. Rows below 13 start at 5: not re-measured with a later start.

Below 10 evaluations (not in the bench; coupled z at n = 2e4 digits, 1e6 mixture2d, 1e5 mixture16,
seed 1): at 6, 2M with delta = 3e-2 beats every peer on the three (z >= 16), where 3M loses
mixture2d (z = -83); at 7 and 8, 3M wins all (z >= 11). At 4 every choice tried loses mixture2d
to diffusers' UniPC (MMD^2 0.010 for 2M here against UniPC's 0.0055).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
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


class GridSpec(NamedTuple):
    """A grid as four numbers: the start ``T`` and last positive time ``delta`` (OU time), the step
    density in log-SNR on equal pieces from T towards delta (:func:`sgmlab.grids.log_snr_density`),
    and whether a final denoising step to t = 0 ends it (:func:`sgmlab.grids.denoised`)."""

    T: float
    delta: float
    density: tuple[float, ...] = (1.0,)
    denoise: bool = True

    def grid(self, nfe: int) -> torch.Tensor:
        """The grid for a budget of ``nfe`` score evaluations of a one-evaluation-per-step sampler."""
        nfe = _checks.positive_int("nfe", nfe)
        steps = nfe - 1 if self.denoise else nfe
        if steps == 0:
            return torch.tensor([self.T, 0.0], dtype=torch.float64)
        g = grids.log_snr_density(self.T, self.delta, steps, self.density)
        return grids.denoised(g) if self.denoise else g


# (smallest budget, sampler, grid, T, delta, start): see the module docstring.
DEFAULT_TABLE: tuple[tuple[int, Any, Callable[[float, float, int], torch.Tensor], float, float, float], ...] = (
    (1, dpm_solver_pp_2m, grids.log_snr_focused, 5.0, 3e-2, 5.0),
    (7, dpm_solver_pp_3m, grids.log_snr_focused, 5.0, 2e-2, 5.0),
    (13, dpm_solver_pp_3m, grids.log_snr, 5.0, 3e-3, 9.0),
    (19, dpm_solver_pp_3m, partial(grids.log_snr_focused, gain=0.5), 5.0, 3e-3, 9.0),
    (35, dpm_solver_pp_3m, grids.log_snr, 7.0, 1e-3, 7.0),
    (75, dpm_solver_pp_3m, grids.log_snr, 7.0, 1e-4, 7.0),
)


def evaluations_per_step(sampler: Any) -> int:
    """Score evaluations one step of ``sampler`` makes (1 unless the sampler says otherwise)."""
    return int(getattr(sampler, "evaluations_per_step", 1))


def default_plan(nfe: int) -> SamplePlan:
    """The default sampler and grid for a budget of ``nfe`` score evaluations (see the table above):
    nfe - 1 steps of the budget's grid from T to delta, its first time moved up to the row's start
    (:func:`sgmlab.grids.start_at`), then the final denoising step to t = 0."""
    nfe = _checks.positive_int("nfe", nfe)
    _, sampler, grid, T, delta, start = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]
    if nfe == 1:
        return SamplePlan(sampler, torch.tensor([start, 0.0], dtype=torch.float64), 1)
    return SamplePlan(sampler, grids.denoised(grids.start_at(grid(T, delta, nfe - 1), start)), nfe)


class _Budget:
    def __init__(self, score: ScoreFn, nfe: int):
        self.score, self.nfe, self.calls = score, nfe, 0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.nfe:
            raise RuntimeError(f"the sampler asked for more than its budget of {self.nfe} score evaluations")
        return self.score(x, t)


def sample(score: ScoreFn, n: int, d: int, *, nfe: int, process: Process | None = None, sampler: Any = None,
           grid: Any = None, generator: torch.Generator | None = None, plan: Any = None) -> torch.Tensor:
    """n samples in d dimensions from the reverse process of ``score``, with at most ``nfe`` score
    evaluations.

    With ``sampler=None`` the budget's default (module docstring, :func:`default_plan`) is used.
    A given sampler without a grid runs on a log-SNR grid from T = 5 to delta = 1e-3 with as many
    steps as the budget allows; a given grid must fit the budget. ``plan`` (a
    :class:`SamplePlan`, or a :class:`sgmlab.TunedPlan` from :func:`sgmlab.tune`) gives both.

    The defaults were chosen on data of about unit scale (the bench's targets; data sets
    standardized as ``sgmlab.learn`` does): their grids put steps where such data's trajectories
    choose a mode (log-SNR near -1/2), and the prior mismatch, a total variation of about
    0.4 e^{-start} |mean| (module docstring), is small for data centred near 0 (for the digits,
    |mean| = 5.6: 0.015 below 13 evaluations, 3e-4 from 13 to 34, 2e-3 from 35). For data far
    from that scale, standardize it or pass ``sampler`` and ``grid``.

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
    if plan is not None:
        if sampler is not None or grid is not None:
            raise ValueError("plan gives the sampler and the grid: pass plan, or sampler and grid, not both")
        if not all(hasattr(plan, a) for a in ("sampler", "grid", "evaluations")):
            raise TypeError(f"plan must be a SamplePlan or TunedPlan; got {type(plan).__name__}")
        sampler, grid = plan.sampler, plan.grid
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
            g = grids.from_times(grid, allow_zero_end=True)  # the sampler refuses t = 0 if it cannot take it
            if (g.shape[0] - 1) * per > nfe:
                raise ValueError(f"the grid has {g.shape[0] - 1} steps of {per} score evaluations each, "
                                 f"more than the budget of {nfe}")
    x0 = process.prior_sample(n, d, generator=generator)
    return sampler(_Budget(score, nfe), x0, g, process=process, generator=generator)
