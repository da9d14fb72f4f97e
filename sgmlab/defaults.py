r"""``sg.sample``: n samples within a budget of score evaluations, with a fixed plan per budget
chosen on a training family of random targets and measured on a held-out one (below);
:func:`sgmlab.tune` fits a plan to your score.

Every default is DPM-Solver++ (data prediction, multistep) on a :class:`GridSpec` grid: steps
uniform in a piecewise-constant density in the log-SNR :math:`\lambda = \log(\alpha_t/\sigma_t)`
(4 equal pieces from the start T towards delta; :func:`sgmlab.grids.log_snr_density`), with or
without a final denoising step to t = 0. ``benchmarks/choose_defaults.py`` chose a grid at each of
the budgets 4, 6, 8, 10, 14, 20, 30, 50, 75, 100 on a training family of random targets (Gaussians
with random rotations, spectra from 1e-4 to 10 and means, d from 1 to 100, by the exact KL of the
output law; random Gaussian mixtures and the digits, by the distance to a reference ODE solution
from the same prior draws) to minimise the worst ratio of its error to the best of diffusers'
deterministic schedulers (DDIM, DPM-Solver++ 2M/3M, DEIS, UniPC), not the median (and at 13, 16,
19 and 25 after the coverage check below found those ranges weak). A grid is not
good at every budget near the one it was chosen at (with a fixed delta its error levels off while
the schedulers' keeps falling), so ``benchmarks/cover_budgets.py`` then gave every budget from 1
to 100 the chosen grid that scores best there on the same family (``DEFAULT_TABLE`` below; the
grids themselves in ``_CHOSEN``). Every row ends with the denoising step (a data set's outputs are
then data points, not points carrying the noise of delta).

What was measured where nothing was chosen: ``benchmarks/budgets.md`` measures the held-out
family's Gaussians (which chose nothing) at every budget from 1 to 100; ``benchmarks/multimodal.md``
measures multimodal, anisotropic mixtures with small components (the ``modes-heldout`` family) at
13 budgets from 4 to 100 by the exact-law MMD with kernels down to the smallest component. The
table was chosen on mixtures scored by a coupled
distance, which mode switches dominate; ``benchmarks/choose_defaults_law.py`` chooses by the law
instead and is not yet adopted. The ratios to diffusers' schedulers, wins and losses included, are
in those files and in ``benchmarks/defaults.md``, not here.

Why not one delta for all: a direction whose variance is small against the noise at delta
(2 delta in OU time) is shrunk by the final denoising step or blurred without it, so targets with
small scales want a tiny delta; well-conditioned targets at few evaluations want those steps
spent at moderate noise instead. The rows are the compromise with the smallest worst case on the
training family; ``sg.tune`` removes the compromise for the score at hand.

The prior mismatch: sampling starts from N(0, I) in place of q_T; for data with mean m that is,
to first order, a shift by e^{-T} m, a total variation of erf(e^{-T}|m|/(2 sqrt 2)), about
0.4 e^{-T}|m|, that no solver removes afterwards (:func:`sgmlab.grids.start_at`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from . import _checks, grids
from .processes import OU, Process
from .samplers import AffineStepSampler, DPMSolverPP, ExponentialMultistepSDE, _fused
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


# (smallest budget, sampler, start T, delta, log-SNR step density), every grid ending with the denoising step.
_ROWS: tuple[tuple[int, str, float, float, tuple[float, ...]], ...] = (
    # BEGIN rows written by benchmarks/choose_defaults.py
    (1, "3M", 2.448, 6.75e-05, (1, 0.685, 0.221, 0.749)),
    (3, "3M", 5.246, 7.78e-05, (0.48, 1, 0.722, 0.448)),
    (4, "3M", 2.448, 6.75e-05, (1, 0.685, 0.221, 0.749)),
    (5, "2M", 3.176, 0.00016, (0.791, 0.626, 1, 0.106)),
    (8, "3M", 4.68, 0.000143, (0.748, 0.706, 1, 0.555)),
    (9, "3M", 4.705, 0.000181, (0.715, 0.958, 1, 0.641)),
    (10, "3M", 4.839, 0.00016, (0.663, 1, 0.993, 0.75)),
    (13, "3M", 4.7, 0.000265, (0.782, 1, 0.94, 0.655)),
    (14, "3M", 4.705, 0.000181, (0.715, 0.958, 1, 0.641)),
    (15, "3M", 4.7, 0.000265, (0.782, 1, 0.94, 0.655)),
    (16, "3M", 5.246, 7.78e-05, (0.48, 1, 0.722, 0.448)),
    (19, "3M", 5.211, 4.7e-05, (0.53, 0.946, 1, 0.439)),
    (20, "3M", 5.364, 4.5e-05, (0.465, 0.946, 1, 0.46)),
    (25, "3M", 5.594, 8.35e-06, (0.519, 1, 0.962, 0.628)),
    (30, "3M", 6.019, 3.36e-05, (0.535, 0.867, 1, 0.478)),
    (42, "3M", 5.594, 8.35e-06, (0.519, 1, 0.962, 0.628)),
    (43, "3M", 6.019, 3.36e-05, (0.535, 0.867, 1, 0.478)),
    (44, "3M", 5.594, 8.35e-06, (0.519, 1, 0.962, 0.628)),
    (49, "3M", 6.947, 9.9e-06, (0.413, 0.825, 1, 0.342)),
    (70, "3M", 7.855, 2.11e-06, (0.258, 0.827, 1, 0.282)),
    (87, "3M", 8.617, 5.33e-07, (0.0763, 0.898, 1, 0.261)),
    # END rows
)
_SAMPLERS = {"3M": dpm_solver_pp_3m, "2M": dpm_solver_pp_2m}
DEFAULT_TABLE: tuple[tuple[int, Any, GridSpec], ...] = tuple(
    (nfe, _SAMPLERS[s], GridSpec(T, delta, density, True)) for nfe, s, T, delta, density in _ROWS)


def evaluations_per_step(sampler: Any) -> int:
    """Score evaluations one step of ``sampler`` makes (1 unless the sampler says otherwise)."""
    return int(getattr(sampler, "evaluations_per_step", 1))


def default_plan(nfe: int, *, t_range: tuple[float, float] | None = None) -> SamplePlan:
    """The default sampler and grid for a budget of ``nfe`` score evaluations: the last row of
    ``DEFAULT_TABLE`` whose smallest budget is at most ``nfe`` (module docstring).

    ``t_range = (lo, hi)`` (OU time) is the range where the score may be evaluated, such as a
    trained model's: the row's start T and last positive time delta are clamped into it, the step
    density and the denoising step kept."""
    nfe = _checks.positive_int("nfe", nfe)
    _, sampler, spec = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]
    if t_range is not None:
        if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
            raise ValueError(f"t_range must be a pair (lo, hi) of OU times; got {t_range!r}")
        lo = _checks.real("t_range[0]", t_range[0], low=0.0, low_open=True)
        hi = _checks.real("t_range[1]", t_range[1], low=lo, low_open=True)
        T = min(max(spec.T, lo), hi)
        spec = spec._replace(T=T, delta=min(max(spec.delta, lo), T))
        if spec.delta >= T:
            raise ValueError(f"t_range ({lo:.6g}, {hi:.6g}) leaves no room for a grid: the default starts at "
                             f"{T:.6g} and would end at {spec.delta:.6g}")
    return SamplePlan(sampler, spec.grid(nfe), nfe)


def in_clock(grid: torch.Tensor, process: Process) -> torch.Tensor:
    """An OU-time grid (a plan's) in ``process``'s own clock; t = 0 stays 0."""
    if isinstance(process, OU):
        return grid
    return torch.cat([process.time_from_ou(grid[grid > 0]).to(torch.float64), grid[grid == 0]])


class _Budget:
    def __init__(self, score: ScoreFn, nfe: int):
        self.score, self.nfe, self.calls = score, nfe, 0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.nfe:
            raise RuntimeError(f"the sampler asked for more than its budget of {self.nfe} score evaluations")
        return self.score(x, t)


def sample(score: ScoreFn, n: int, d: int, *, nfe: int, process: Process | None = None, sampler: Any = None,
           grid: Any = None, generator: torch.Generator | None = None, plan: Any = None,
           batch_size: int | None = None, dtype: torch.dtype = torch.float64,
           device: torch.device | str | None = None) -> torch.Tensor:
    """n samples in d dimensions from the reverse process of ``score``, with at most ``nfe`` score
    evaluations.

    With ``sampler=None`` the budget's default (module docstring, :func:`default_plan`) is used.
    A given sampler without a grid runs on a log-SNR grid from T = 5 to delta = 1e-3 with as many
    steps as the budget allows; a given grid must fit the budget. ``plan`` (a
    :class:`SamplePlan`, or a :class:`sgmlab.TunedPlan` from :func:`sgmlab.tune`) gives both.

    Memory: the output takes n x d numbers (written over the prior draws); the sampler runs on
    chunks of ``batch_size`` rows (default: about 2^22 numbers, 32 MiB in float64, per chunk; 2^25
    on a GPU), so its working set does not grow with n. A deterministic sampler's output is the
    same chunked or not; a stochastic one's noise is drawn chunk by chunk from ``generator``
    (reproducible for the same ``batch_size``, different from one pass).

    ``dtype``: the state's, float64 (default) or float32 (half the memory and passes over it; the
    grid and coefficients stay float64). ``benchmarks/float32.md`` measures what float32 costs in
    accuracy against float64 on exact laws; trained networks, float32 themselves, lose nothing.
    ``device``: where the state lives (default CPU; the score must accept it there, and a
    ``generator`` must be on it).

    The defaults were chosen on random targets with covariance scales from 1e-4 to 10 and means
    up to 3 in norm (module docstring); the prior mismatch, a total variation of about
    0.4 e^{-T} |mean| for the row's start T, is small for data centred near 0. For data far from
    that scale, standardize it; for the most accurate plan for your score, :func:`sgmlab.tune`.

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
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    x0 = process.prior_sample(n, d, generator=generator, dtype=dtype, device=device)
    return run_in_chunks_(sampler, score, x0, g, process=process, generator=generator, batch_size=batch_size,
                          per_chunk=lambda s: _Budget(s, nfe))


CHUNK_NUMBERS = 1 << 22  # numbers per chunk by default: 32 MiB in float64
CUDA_CHUNK_NUMBERS = 1 << 25  # on a GPU: 256 MiB in float64; smaller chunks wait on launches (benchmarks/gpu.md)


def chunk_rows(d: int, batch_size: int | None = None, device: Any = None) -> int:
    """Rows per chunk: ``batch_size``, or about ``CHUNK_NUMBERS`` numbers (``CUDA_CHUNK_NUMBERS`` on
    a GPU) for states of width ``d``."""
    if batch_size is not None:
        return _checks.positive_int("batch_size", batch_size)
    numbers = CUDA_CHUNK_NUMBERS if device is not None and torch.device(device).type == "cuda" else CHUNK_NUMBERS
    return max(1, numbers // d)


def run_in_chunks_(sampler: Any, score: Any, x: torch.Tensor, grid: Any, *, process: Process | None = None,
                   generator: torch.Generator | None = None, batch_size: int | None = None, callback: Any = None,
                   per_chunk: Callable[[Any], Any] | None = None) -> torch.Tensor:
    """Run ``sampler`` on blocks of ``batch_size`` rows of ``x`` (default :func:`chunk_rows`), each
    block's output written over its prior draws, so that peak memory is ``x`` plus one block's
    working set. ``per_chunk(score)`` wraps the score afresh for each block (a budget counter).
    Returns the output, which may be ``x`` itself, overwritten: the caller gives up its prior draws."""
    rows = chunk_rows(x.shape[1], batch_size, x.device)
    wrap = per_chunk if per_chunk is not None else (lambda s: s)
    # sgmlab's samplers may then start on the prior draws in place (no copy); anything else gets its block as x_init
    in_place = isinstance(sampler, (AffineStepSampler, DPMSolverPP, ExponentialMultistepSDE))
    if x.shape[0] <= rows:
        with _fused.writable(x if in_place else None):
            return sampler(wrap(score), x, grid, process=process, generator=generator, callback=callback)
    for lo in range(0, x.shape[0], rows):  # the same grid for every chunk; the sampler reads its block whole first
        block = x[lo:lo + rows]
        with _fused.writable(block if in_place else None):
            out = sampler(wrap(score), block, grid, process=process, generator=generator, callback=callback)
        if out is not block:
            block.copy_(out)
    return x
