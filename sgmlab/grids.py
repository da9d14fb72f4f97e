r"""Time grids: decreasing 1-D float64 tensors of forward times :math:`T = t_0 > t_1 > \dots > t_N = \delta > 0`.

A grid with N steps has N + 1 entries. Times are in the clock of the process the sampler runs
(OU time for :class:`sgmlab.processes.OU`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from . import _checks


def _check(T: Any, delta: Any, steps: Any) -> tuple[float, float, int]:
    T = _checks.real("T", T, low=0.0, low_open=True)
    delta = _checks.real("delta", delta, low=0.0, low_open=True)
    if delta >= T:
        raise ValueError(f"delta must be smaller than T; got delta={delta}, T={T}")
    return T, delta, _checks.positive_int("steps", steps)


def from_times(t: Any, *, allow_zero_end: bool = False) -> torch.Tensor:
    """Check and return a user grid: 1-D, at least 2 entries, finite, strictly decreasing, last > 0
    (or last = 0 with ``allow_zero_end``: a final denoising step, see :func:`denoised`).

    Parameters
    ----------
    t : array-like of float
        The times, from the start T down to the last.
    allow_zero_end : bool
        Whether the last time may be 0 (a final denoising step).

    Returns
    -------
    torch.Tensor
        The times as float64.

    Raises
    ------
    ValueError
        Naming the first pair of times that is not decreasing, or a last time out of range.
    """
    g = _checks.as_tensor("grid", t, ndim=1, dtype=torch.float64)
    if g.shape[0] < 2:
        raise ValueError(f"grid needs at least 2 times (one step); got {g.shape[0]}")
    steps = g[:-1] - g[1:]
    if bool((steps <= 0).any()):
        i = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(f"grid must be strictly decreasing; got t[{i}]={g[i].item():.6g} <= "
                         f"t[{i + 1}]={g[i + 1].item():.6g}")
    if g[-1] < 0 or g[-1] == 0 and not allow_zero_end:
        hint = (" (a grid ending at t = 0, a final denoising step, works only with samplers that take one, "
                "such as DPM-Solver++)" if g[-1] == 0 else "")
        raise ValueError(f"grid must end at a positive time delta (early stopping); got {g[-1].item():.6g}{hint}")
    return g


def denoised(grid: Any) -> torch.Tensor:
    r"""``grid`` with t = 0 appended: the last step returns the data prediction (Tweedie's
    :math:`E[X_0 | X_\delta]`) at the last time delta instead of a noisy sample at delta. Same number
    of score evaluations as ``grid``'s steps plus one. For DPM-Solver++.

    Parameters
    ----------
    grid : array-like of float
        A grid ending at delta > 0.

    Returns
    -------
    torch.Tensor
        The grid with 0 appended.
    """
    g = from_times(grid)
    return torch.cat([g, g.new_zeros(1)])


def start_at(grid: Any, T: float) -> torch.Tensor:
    r"""``grid`` with its first time moved up to T (at least the first time): the same steps, the
    first one longer. No extra score evaluations.

    The reverse process starts from N(0, I) in place of the noised data law :math:`q_T`. For data
    with mean m that mismatch is, to first order, a shift by :math:`e^{-T} m`: for the bench's
    digits (|m| = 5.6) a total variation of 0.015 at T = 5 that no solver removes afterwards, and
    2.7e-4 at T = 9. Far from the data the data prediction barely changes (by about
    :math:`e^{-t}` times its spread), so one long first step to the grid's second time loses little.

    Parameters
    ----------
    grid : array-like of float
        A grid (it may end at 0).
    T : float
        The new first time, at least the grid's.

    Returns
    -------
    torch.Tensor
        The grid with its first time T.
    """
    g = from_times(grid, allow_zero_end=True)
    T = _checks.real("T", T)
    if T < float(g[0]):
        raise ValueError(f"T must be at least the grid's first time {g[0].item():.6g}; got {T}")
    g = g.clone()
    g[0] = T
    return g


def uniform(T: float, delta: float, steps: int) -> torch.Tensor:
    """Equal steps h = (T - delta)/steps from T down to delta (the paper's grid).

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    g = torch.linspace(T, delta, steps + 1, dtype=torch.float64)
    g[0], g[-1] = T, delta
    return _finite(g, T)


def exponential(T: float, delta: float, steps: int) -> torch.Tensor:
    """Geometric grid: t_k = T (delta/T)^{k/steps}, steps proportional to t.

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    g = torch.exp(torch.linspace(math.log(T), math.log(delta), steps + 1, dtype=torch.float64))
    g[0], g[-1] = T, delta
    return _finite(g, T)


def two_phase(T: float, delta: float, steps: int) -> torch.Tensor:
    r"""Uniform far from the data, geometric near it (Benton et al. 2024: steps of size about
    :math:`\kappa\min(1, t)`).

    The grid is uniform in :math:`u = \phi(t)` with :math:`\phi(t) = t` for :math:`t \ge 1` and
    :math:`\phi(t) = 1 + \log t` below; :math:`\phi` is continuously differentiable, so the step is
    :math:`\approx \kappa` above t = 1 and :math:`\approx \kappa t` below, with
    :math:`\kappa = (\phi(T) - \phi(\delta))/N`.

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)

    def phi(t: float) -> float:
        return t if t >= 1 else 1 + math.log(t)

    u = torch.linspace(phi(T), phi(delta), steps + 1, dtype=torch.float64)
    g = torch.where(u >= 1, u, torch.exp(u.clamp(max=1) - 1))
    g[0], g[-1] = T, delta
    return _finite(g, T)


def _log_snr(t: torch.Tensor) -> torch.Tensor:
    """lambda(t) = log(alpha_t / sigma_t) for OU time t: -t - log(1 - e^{-2t}) / 2."""
    return -t - 0.5 * torch.log(-torch.expm1(-2 * t))


def _ou_from_log_snr(lam: torch.Tensor) -> torch.Tensor:
    """OU time at log-SNR lam, t = log(1 + e^{-2 lam}) / 2, without overflow for lam << 0."""
    return 0.5 * torch.nn.functional.softplus(-2 * lam)


def _finite(g: torch.Tensor, T: float) -> torch.Tensor:
    """The grid, or an error when its times are not finite in float64 (a horizon too large)."""
    if not bool(torch.isfinite(g).all()):
        raise ValueError(f"T={T:g} is too large: the grid's times are not finite in float64")
    return g


def log_snr(T: float, delta: float, steps: int) -> torch.Tensor:
    r"""Uniform in the log signal-to-noise ratio :math:`\lambda = \log(\alpha_t/\sigma_t)` (OU time),
    the grid of DPM-Solver: :math:`t = \tfrac12\log(1 + e^{-2\lambda})`.

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    lam = torch.linspace(float(_log_snr(torch.tensor(T, dtype=torch.float64))),
                         float(_log_snr(torch.tensor(delta, dtype=torch.float64))), steps + 1, dtype=torch.float64)
    g = _ou_from_log_snr(lam)
    g[0], g[-1] = T, delta
    return _finite(g, T)


def log_snr_focused(T: float, delta: float, steps: int, *, center: float = -0.5, width: float = 2.0,
                    gain: float = 1.3) -> torch.Tensor:
    r"""Uniform in :math:`u(\lambda) = \lambda + g\,w\tanh((\lambda - c)/w)` for
    :math:`\lambda = \log(\alpha_t/\sigma_t)`: a :func:`log_snr` grid whose steps are denser by up to
    the factor :math:`1 + g` around :math:`\lambda = c` (step density
    :math:`\propto 1 + g\,\mathrm{sech}^2((\lambda - c)/w)`; ``gain`` g, ``center`` c, ``width`` w).

    The default centre :math:`\lambda = -1/2` is noise about 1.6 times the signal, where, for data of
    unit scale, trajectories choose among the data's modes or points (t from about 0.2 to 1.3); the
    few-step default (``sgmlab.defaults``) spends its extra steps there. ``gain=0`` is
    :func:`log_snr`. :math:`u` is increasing, inverted by bisection to machine precision.

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.
    center, width, gain : float
        Where the steps are denser (log-SNR c), over what width w, and by what factor 1 + g.

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    center = _checks.real("center", center)
    width = _checks.real("width", width, low=0.0, low_open=True)
    gain = _checks.real("gain", gain, low=0.0)

    def u(lam: torch.Tensor) -> torch.Tensor:
        return lam + gain * width * torch.tanh((lam - center) / width)

    ends = _log_snr(torch.tensor([T, delta], dtype=torch.float64))
    target = torch.linspace(float(u(ends[0])), float(u(ends[1])), steps + 1, dtype=torch.float64)
    lo, hi = ends[0].expand(steps + 1).clone(), ends[1].expand(steps + 1).clone()
    for _ in range(100):  # bisection: the bracket halves each time, from |lambda(delta) - lambda(T)|
        mid = 0.5 * (lo + hi)
        below = u(mid) < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    g = _ou_from_log_snr(0.5 * (lo + hi))
    g[0], g[-1] = T, delta
    return _finite(g, T)


def log_snr_density(T: float, delta: float, steps: int, density: Any = (1.0,)) -> torch.Tensor:
    r"""Steps uniform in :math:`\int \rho\,d\lambda` for a piecewise-constant density :math:`\rho` in the
    log-SNR :math:`\lambda = \log(\alpha_t/\sigma_t)` (OU time): ``density`` holds :math:`\rho` on K
    equal pieces of :math:`[\lambda(T), \lambda(\delta)]`, from T towards delta, so a piece with twice
    the density gets twice the steps per unit of log-SNR. One piece (the default) is :func:`log_snr`.
    The grid family the tuner searches (:func:`sgmlab.tune`) and the defaults' rows use; inverted
    exactly (the integral is piecewise linear).

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.
    density : sequence of float
        The step density on K equal pieces of the log-SNR range, from T towards delta (positive).

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    rho = _checks.as_tensor("density", density, ndim=1)
    if bool((rho <= 0).any()):
        raise ValueError(f"density must be positive; got {rho.tolist()}")
    lo, hi = (float(v) for v in _log_snr(torch.tensor([T, delta], dtype=torch.float64)))
    edges = torch.linspace(lo, hi, rho.shape[0] + 1, dtype=torch.float64)
    cum = torch.cat([rho.new_zeros(1), torch.cumsum(rho / rho.sum(), 0)]).to(torch.float64)
    u = torch.linspace(0, float(cum[-1]), steps + 1, dtype=torch.float64)
    k = torch.searchsorted(cum, u, right=True).clamp(1, rho.shape[0]) - 1
    lam = edges[k] + (u - cum[k]) / (cum[k + 1] - cum[k]) * (edges[k + 1] - edges[k])
    g = _ou_from_log_snr(lam)
    g[0], g[-1] = T, delta
    if bool((g[:-1] <= g[1:]).any()):
        raise ValueError("density is too uneven for this many steps: two times of the grid coincide in "
                         "float64; use a smoother density")
    return _finite(g, T)


def vp_linear(T: float, delta: float, steps: int, beta_min: float = 0.1, beta_max: float = 20.0) -> torch.Tensor:
    r"""Uniform in the clock s of the linear VP schedule :math:`\beta(s) = \beta_{\min} + s(\beta_{\max} -
    \beta_{\min})` (DDPM's spacing, which diffusers' schedulers use): OU time
    :math:`t = \tfrac12(\beta_{\min}s + \tfrac12(\beta_{\max} - \beta_{\min})s^2)`, inverted exactly; s may run
    past 1 when T exceeds the schedule's :math:`(\beta_{\min} + \beta_{\max})/4`.

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.
    beta_min, beta_max : float
        The linear VP schedule's ends.

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    b0 = _checks.real("beta_min", beta_min, low=0.0, low_open=True)
    b1 = _checks.real("beta_max", beta_max, low=b0)
    c = 0.5 * (b1 - b0)

    def clock(t: float) -> float:  # root of c s^2 + b0 s - 2t = 0
        return 4 * t / (b0 + math.sqrt(b0 * b0 + 8 * c * t))

    s = torch.linspace(clock(T), clock(delta), steps + 1, dtype=torch.float64)
    g = 0.5 * (b0 * s + c * s * s)
    g[0], g[-1] = T, delta
    return _finite(g, T)


def karras(T: float, delta: float, steps: int, rho: float = 7.0) -> torch.Tensor:
    r"""Karras et al. (2022) grid: uniform in :math:`\bar\sigma^{1/\rho}` for the EDM noise level
    :math:`\bar\sigma = \sigma_t/\alpha_t = \sqrt{e^{2t} - 1}` (OU time), :math:`t = \tfrac12\log(1 + \bar\sigma^2)`.

    Parameters
    ----------
    T : float
        The first time (OU time), where the reverse process starts.
    delta : float
        The last time, 0 < delta < T (early stopping).
    steps : int
        The number of steps; the grid has steps + 1 times.
    rho : float
        The exponent of the EDM spacing (7 in Karras et al.).

    Returns
    -------
    torch.Tensor
        The times, float64, strictly decreasing from T to delta.
    """
    T, delta, steps = _check(T, delta, steps)
    rho = _checks.real("rho", rho, low=0.0, low_open=True)
    smax, smin = math.sqrt(math.expm1(2 * T)), math.sqrt(math.expm1(2 * delta))
    i = torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    sig = (smax ** (1 / rho) + i * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    g = 0.5 * torch.log1p(sig**2)
    g[0], g[-1] = T, delta
    return _finite(g, T)
