r"""``sg.sample``: n samples within a budget of score evaluations, with a fixed plan per budget
chosen on a training family of random targets and measured on a held-out one (below);
:func:`sgmlab.tune` fits a plan to your score.

Every default is DPM-Solver++ (data prediction, multistep, 3M or 2M) on a :class:`GridSpec` grid:
steps uniform in a piecewise-constant density in the log-SNR :math:`\lambda = \log(\alpha_t/\sigma_t)`
(4 equal pieces from the start T towards delta; :func:`sgmlab.grids.log_snr_density`), ending with
a denoising step to t = 0 (a data set's outputs are then data points, not points carrying the
noise of delta). ``benchmarks/choose_defaults.py`` chose the grid at every budget from 1 to 100
(``_ROWS`` below, one row per budget where the grid changes) on a training family: random
Gaussians with random rotations, spectra from 1e-4 to 10 and means, d from 1 to 100, by the exact
KL of the output law; random Gaussian mixtures, multimodal and anisotropic ones with components
down to variance 1e-3 among them, by the squared MMD to the exact law with kernels down to the
smallest component's scale. The grid minimises the worst ratio of its error to the best of
diffusers' deterministic schedulers (DDIM, DPM-Solver++ 2M/3M, DEIS, UniPC), not the median.
Budgets above 100 use the row of 100.

What was measured where nothing was chosen: ``benchmarks/defaults.md`` has the held-out family's
Gaussians at every budget from 1 to 100; ``benchmarks/multimodal.md`` the held-out multimodal
mixtures (the ``modes-heldout`` family) at 13 budgets from 4 to 100. The numbers are there, not
here.

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
    (1, "3M", 0.04086, 9.77e-07, (0.195, 1.0, 0.169, 0.0491)),
    (2, "3M", 1.162, 0.000125, (0.134, 0.4, 0.0224, 1.0)),
    (3, "3M", 1.198, 6.92e-05, (0.00152, 1.0, 0.616, 0.000125)),
    (4, "3M", 2.054, 4.51e-05, (1.0, 0.757, 0.677, 0.64)),
    (5, "2M", 3.388, 4.11e-05, (0.77, 0.876, 0.72, 1.0)),
    (6, "2M", 5.252, 4.33e-05, (0.878, 0.996, 1.0, 0.96)),
    (7, "3M", 5.0, 6.02e-06, (0.635, 0.821, 1.0, 0.491)),
    (8, "3M", 5.016, 1.86e-06, (0.715, 0.787, 1.0, 0.491)),
    (9, "3M", 4.959, 1.38e-06, (0.665, 0.918, 1.0, 0.638)),
    (10, "3M", 5.055, 2.39e-05, (0.751, 1.0, 0.996, 0.696)),
    (11, "3M", 5.417, 2.49e-05, (0.518, 1.0, 0.951, 0.702)),
    (12, "3M", 5.108, 1.95e-06, (0.609, 1.0, 0.877, 0.601)),
    (13, "3M", 5.95, 2.45e-05, (0.405, 1.0, 0.798, 0.585)),
    (14, "2M", 5.252, 1.48e-05, (0.628, 0.749, 1.0, 0.902)),
    (15, "3M", 5.282, 8.01e-06, (0.621, 1.0, 0.789, 0.524)),
    (16, "3M", 5.259, 7.43e-06, (0.693, 1.0, 0.771, 0.5)),
    (17, "2M", 5.666, 3.2e-06, (0.346, 0.744, 1.0, 0.68)),
    (18, "3M", 5.416, 1.01e-08, (0.566, 1.0, 0.781, 0.535)),
    (19, "2M", 6.043, 2.43e-06, (0.234, 0.604, 0.795, 1.0)),
    (20, "3M", 5.754, 1.23e-08, (0.522, 1.0, 0.768, 0.476)),
    (21, "2M", 5.886, 2.15e-06, (0.21, 0.563, 0.741, 1.0)),
    (22, "3M", 6.222, 1.54e-08, (0.407, 1.0, 0.776, 0.412)),
    (23, "2M", 6.151, 1.26e-06, (0.156, 0.512, 0.682, 1.0)),
    (24, "3M", 6.74, 1.12e-08, (0.328, 1.0, 0.757, 0.353)),
    (25, "2M", 6.207, 1.45e-06, (0.136, 0.503, 0.679, 1.0)),
    (26, "2M", 6.13, 1.64e-06, (0.178, 0.733, 1.0, 0.976)),
    (27, "2M", 6.182, 1.74e-06, (0.156, 0.6, 0.821, 1.0)),
    (28, "2M", 6.253, 1.65e-06, (0.167, 0.727, 1.0, 0.959)),
    (29, "2M", 6.266, 1.24e-06, (0.159, 0.716, 0.994, 1.0)),
    (30, "2M", 6.325, 1.17e-06, (0.149, 0.712, 1.0, 0.752)),
    (31, "2M", 6.305, 1.08e-06, (0.154, 0.704, 1.0, 0.586)),
    (32, "2M", 6.387, 8.76e-07, (0.137, 0.701, 1.0, 0.599)),
    (33, "2M", 6.387, 9.31e-07, (0.145, 0.695, 1.0, 0.485)),
    (34, "2M", 6.514, 7.98e-07, (0.125, 0.699, 1.0, 0.531)),
    (35, "2M", 6.285, 1.24e-06, (0.148, 0.705, 1.0, 0.618)),
    (36, "2M", 6.562, 7.77e-07, (0.124, 0.7, 1.0, 0.472)),
    (37, "2M", 6.391, 1.16e-06, (0.145, 0.707, 1.0, 0.764)),
    (38, "2M", 6.63, 7.34e-07, (0.121, 0.696, 1.0, 0.469)),
    (39, "2M", 6.416, 1.24e-06, (0.139, 0.709, 1.0, 0.743)),
    (40, "2M", 6.652, 8.13e-07, (0.121, 0.7, 1.0, 0.522)),
    (41, "2M", 6.493, 1.19e-06, (0.134, 0.707, 1.0, 0.814)),
    (42, "2M", 6.682, 8.94e-07, (0.119, 0.709, 1.0, 0.645)),
    (43, "2M", 6.555, 1.13e-06, (0.131, 0.711, 1.0, 0.926)),
    (44, "2M", 6.688, 1.02e-06, (0.12, 0.715, 1.0, 0.768)),
    (45, "2M", 6.528, 1.22e-06, (0.124, 0.666, 0.935, 1.0)),
    (46, "2M", 6.591, 1.42e-06, (0.118, 0.715, 1.0, 0.694)),
    (47, "2M", 6.475, 1.39e-06, (0.113, 0.598, 0.84, 1.0)),
    (48, "2M", 6.55, 1.7e-06, (0.12, 0.718, 1.0, 0.816)),
    (49, "2M", 6.438, 1.5e-06, (0.104, 0.55, 0.771, 1.0)),
    (50, "2M", 6.525, 1.72e-06, (0.118, 0.711, 1.0, 0.744)),
    (51, "2M", 6.505, 2.14e-06, (0.127, 0.717, 1.0, 0.661)),
    (52, "2M", 6.672, 1.14e-06, (0.106, 0.704, 1.0, 0.644)),
    (53, "2M", 6.595, 1.63e-06, (0.123, 0.711, 1.0, 0.617)),
    (54, "2M", 6.71, 9.37e-07, (0.101, 0.694, 1.0, 0.57)),
    (55, "2M", 6.687, 1.24e-06, (0.122, 0.707, 1.0, 0.558)),
    (56, "2M", 6.73, 1.34e-06, (0.102, 0.713, 1.0, 0.579)),
    (57, "2M", 6.809, 1.25e-06, (0.12, 0.713, 1.0, 0.478)),
    (58, "2M", 6.796, 9.49e-07, (0.0976, 0.702, 1.0, 0.513)),
    (59, "2M", 6.849, 1.07e-06, (0.12, 0.713, 1.0, 0.49)),
    (60, "2M", 6.837, 1.32e-06, (0.0989, 0.718, 1.0, 0.526)),
    (61, "2M", 6.593, 1.1e-06, (0.122, 0.69, 1.0, 0.47)),
    (62, "2M", 6.834, 1.21e-06, (0.0992, 0.717, 1.0, 0.581)),
    (63, "2M", 6.734, 1.5e-06, (0.121, 0.715, 1.0, 0.579)),
    (64, "2M", 6.962, 1.13e-06, (0.0974, 0.721, 1.0, 0.495)),
    (65, "3M", 7.686, 1.67e-06, (0.0593, 0.613, 1.0, 0.305)),
    (66, "2M", 6.798, 1.26e-06, (0.098, 0.722, 1.0, 0.734)),
    (67, "2M", 6.821, 1.3e-06, (0.118, 0.723, 1.0, 0.818)),
    (68, "2M", 6.992, 9.95e-07, (0.0946, 0.719, 1.0, 0.591)),
    (69, "2M", 6.598, 1.88e-06, (0.121, 0.714, 1.0, 0.637)),
    (70, "3M", 7.881, 1.5e-06, (0.0556, 0.62, 1.0, 0.315)),
    (71, "2M", 6.557, 1.56e-06, (0.122, 0.703, 1.0, 0.696)),
    (72, "2M", 7.101, 6.35e-07, (0.0947, 0.717, 1.0, 0.541)),
    (73, "2M", 6.668, 1.65e-06, (0.117, 0.712, 1.0, 0.666)),
    (74, "2M", 7.188, 5.55e-07, (0.0909, 0.708, 1.0, 0.559)),
    (75, "3M", 8.083, 1.08e-06, (0.0505, 0.61, 1.0, 0.28)),
    (76, "3M", 7.134, 2.36e-06, (0.0696, 0.585, 1.0, 0.264)),
    (77, "3M", 8.115, 1.02e-06, (0.0492, 0.615, 1.0, 0.287)),
    (78, "2M", 7.37, 2.66e-07, (0.0846, 0.693, 1.0, 0.411)),
    (79, "2M", 7.634, 1.63e-07, (0.0564, 0.693, 1.0, 0.358)),
    (80, "3M", 8.121, 1.28e-06, (0.0505, 0.624, 1.0, 0.283)),
    (81, "3M", 8.212, 8.11e-07, (0.0452, 0.617, 1.0, 0.28)),
    (82, "2M", 7.278, 5.63e-07, (0.0812, 0.72, 1.0, 0.624)),
    (83, "2M", 7.396, 1.18e-07, (0.0568, 0.65, 1.0, 0.307)),
    (84, "2M", 7.418, 1.33e-07, (0.0597, 0.66, 1.0, 0.306)),
    (85, "2M", 7.544, 1.55e-07, (0.0547, 0.677, 1.0, 0.354)),
    (86, "2M", 7.569, 1.76e-07, (0.0753, 0.685, 1.0, 0.389)),
    (87, "2M", 7.467, 1.81e-07, (0.0558, 0.692, 1.0, 0.351)),
    (88, "2M", 7.184, 2.06e-07, (0.077, 0.663, 1.0, 0.316)),
    (89, "2M", 7.468, 1.06e-07, (0.0552, 0.655, 1.0, 0.331)),
    (90, "2M", 7.58, 2.31e-07, (0.0713, 0.703, 1.0, 0.469)),
    (91, "2M", 7.529, 7.92e-08, (0.0515, 0.628, 1.0, 0.299)),
    (92, "2M", 7.197, 2.17e-07, (0.0771, 0.65, 1.0, 0.355)),
    (93, "2M", 7.679, 9.8e-08, (0.0491, 0.661, 1.0, 0.305)),
    (94, "2M", 7.248, 2.79e-07, (0.0777, 0.667, 1.0, 0.378)),
    (95, "2M", 7.726, 1.22e-07, (0.0494, 0.676, 1.0, 0.371)),
    (96, "2M", 7.228, 2.56e-07, (0.0775, 0.677, 1.0, 0.394)),
    (97, "2M", 7.652, 8.71e-08, (0.0495, 0.658, 1.0, 0.307)),
    (98, "2M", 7.294, 1.66e-07, (0.073, 0.65, 1.0, 0.326)),
    (99, "2M", 7.728, 1.59e-07, (0.0497, 0.694, 1.0, 0.413)),
    (100, "2M", 7.512, 2.68e-07, (0.0707, 0.694, 1.0, 0.437)),
    # END rows
)
_SAMPLERS = {"3M": dpm_solver_pp_3m, "2M": dpm_solver_pp_2m}
DEFAULT_TABLE: tuple[tuple[int, Any, GridSpec], ...] = tuple(
    (nfe, _SAMPLERS[s], GridSpec(T, delta, density, True)) for nfe, s, T, delta, density in _ROWS)

# A trained model's rows (``default_plan(nfe, t_range=..., trained=True)``), one per budget: chosen
# inside the vector recipe's trained range [1e-3, 5] on the training family standardized as a model
# sees its data, by the mixtures' excess over their noise floors (what a user sees as artifacts)
# under the constraint of beating diffusers' schedulers; budgets above the last row use the rows above.
_TRAINED_ROWS: tuple[tuple[int, str, float, float, tuple[float, ...]], ...] = (
    # BEGIN trained rows written by benchmarks/choose_defaults.py --trained
    (1, "3M", 0.001, 0.001, (1.0, 0.0123, 0.271, 2.06e-09)),
    (2, "3M", 0.1967, 0.001, (0.095, 0.455, 0.0165, 1.0)),
    (3, "3M", 0.4548, 0.001, (0.00129, 1.0, 0.246, 0.000208)),
    (4, "3M", 0.9604, 0.00287, (1.0, 0.481, 0.678, 0.818)),
    (5, "2M", 1.101, 0.001, (0.915, 0.769, 1.0, 0.672)),
    (6, "2M", 1.251, 0.0016, (0.936, 0.386, 1.0, 0.749)),
    (7, "3M", 2.577, 0.001, (0.781, 0.68, 0.957, 1.0)),
    (8, "3M", 2.369, 0.001, (0.763, 0.675, 0.897, 1.0)),
    (9, "3M", 2.663, 0.001, (0.74, 0.665, 0.917, 1.0)),
    (10, "3M", 2.863, 0.001, (0.689, 0.69, 0.912, 1.0)),
    (11, "3M", 3.023, 0.001, (0.722, 0.648, 0.915, 1.0)),
    (12, "3M", 3.512, 0.001, (0.771, 0.726, 1.0, 0.957)),
    (13, "3M", 3.382, 0.001, (0.668, 0.644, 1.0, 0.828)),
    (14, "3M", 5.0, 0.001, (0.589, 0.753, 1.0, 0.91)),
    (15, "3M", 3.404, 0.001, (0.778, 0.717, 1.0, 0.616)),
    (16, "3M", 2.998, 0.001, (0.681, 0.874, 1.0, 0.511)),
    (17, "3M", 3.233, 0.001, (0.654, 0.747, 1.0, 0.488)),
    (18, "3M", 3.33, 0.001, (0.647, 1.0, 0.902, 0.499)),
    (19, "3M", 4.608, 0.001, (0.715, 1.0, 0.904, 0.66)),
    (20, "3M", 3.224, 0.001, (0.593, 0.629, 1.0, 0.307)),
    # END trained rows
)
TRAINED_TABLE: tuple[tuple[int, Any, GridSpec], ...] = tuple(
    (nfe, _SAMPLERS[s], GridSpec(T, delta, density, True)) for nfe, s, T, delta, density in _TRAINED_ROWS)


def evaluations_per_step(sampler: Any) -> int:
    """Score evaluations one step of ``sampler`` makes (1 unless the sampler says otherwise)."""
    return int(getattr(sampler, "evaluations_per_step", 1))


def default_plan(nfe: int, *, t_range: tuple[float, float] | None = None, trained: bool = False) -> SamplePlan:
    """The default sampler and grid for a budget of ``nfe`` score evaluations: the last row of
    ``DEFAULT_TABLE`` whose smallest budget is at most ``nfe`` (module docstring).

    ``t_range = (lo, hi)`` (OU time) is the range where the score may be evaluated, such as a
    trained model's: the row's start T and last positive time delta are clamped into it, the step
    density and the denoising step kept.

    ``trained=True``: the row of ``TRAINED_TABLE`` for a trained model's score on standardized data
    (chosen inside [1e-3, 5], where the exact table's rows, clamped, leave visible artifacts on
    multimodal data; ``benchmarks/defaults_trained.md``), up to its last budget.

    Parameters
    ----------
    nfe : int
        The budget of score evaluations per sample (at least 1).
    t_range : (float, float), optional
        The OU times (lo, hi) where the score may be evaluated; the row is clamped into it.
    trained : bool
        The trained-model table instead of the exact one (for models on standardized data).

    Returns
    -------
    SamplePlan
        The sampler, the grid (OU time) and the evaluations it makes (``nfe``).

    Examples
    --------
    >>> import sgmlab as sg
    >>> plan = sg.default_plan(10)
    >>> plan.evaluations, plan.grid.shape[0] - 1
    (10, 10)
    """
    nfe = _checks.positive_int("nfe", nfe)
    if not isinstance(trained, bool):
        raise TypeError(f"trained must be True or False; got {trained!r}")
    table = TRAINED_TABLE if trained and TRAINED_TABLE and nfe <= TRAINED_TABLE[-1][0] else DEFAULT_TABLE
    _, sampler, spec = [row for row in table if row[0] <= nfe][-1]
    if t_range is not None:
        if not isinstance(t_range, (tuple, list)) or len(t_range) != 2:
            raise ValueError(f"t_range must be a pair (lo, hi) of OU times; got {t_range!r}")
        lo = _checks.real("t_range[0]", t_range[0], low=0.0, low_open=True)
        hi = _checks.real("t_range[1]", t_range[1], low=lo, low_open=True)
        T = min(max(spec.T, lo), hi)
        spec = spec._replace(T=T, delta=min(max(spec.delta, lo), T))
        if spec.delta >= T and nfe > 1:  # one evaluation is the denoising step from T alone
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

    Parameters
    ----------
    score : callable
        s(x, t): the score at points x of shape (m, d) and time t in the process's clock.
    n, d : int
        How many samples, in how many dimensions.
    nfe : int
        The budget of score evaluations per sample; never exceeded.
    process : Process, optional
        The forward process (default OU); a tuned plan must have been tuned for it.
    sampler, grid : optional
        A sampler from ``sgmlab.samplers`` and its grid (in the process's clock), instead of the default.
    generator : torch.Generator, optional
        The prior draws' and a stochastic sampler's randomness.
    plan : SamplePlan or TunedPlan, optional
        The sampler and the grid together.
    batch_size : int, optional
        Rows per chunk.
    dtype : torch.dtype
        The state's, float64 (default) or float32.
    device : optional
        Where the state lives.

    Returns
    -------
    torch.Tensor
        The samples, shape (n, d).

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
        tuned = (getattr(plan, "tuned_for", None) or {}).get("process")
        if tuned is not None and tuned != repr(process):
            raise ValueError(f"the plan was tuned for the process {tuned} and its grid is in that process's clock; "
                             f"pass process= that process (got {process!r}), or tune for this one")
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
