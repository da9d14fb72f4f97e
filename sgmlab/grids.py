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


def from_times(t: Any) -> torch.Tensor:
    """Check and return a user grid: 1-D, at least 2 entries, finite, strictly decreasing, last > 0."""
    g = _checks.as_tensor("grid", t, ndim=1, dtype=torch.float64)
    if g.shape[0] < 2:
        raise ValueError(f"grid needs at least 2 times (one step); got {g.shape[0]}")
    steps = g[:-1] - g[1:]
    if bool((steps <= 0).any()):
        i = int(torch.nonzero(steps <= 0)[0])
        raise ValueError(f"grid must be strictly decreasing; got t[{i}]={g[i].item():.6g} <= "
                         f"t[{i + 1}]={g[i + 1].item():.6g}")
    if g[-1] <= 0:
        raise ValueError(f"grid must end at a positive time delta (early stopping); got {g[-1].item():.6g}")
    return g


def uniform(T: float, delta: float, steps: int) -> torch.Tensor:
    """Equal steps h = (T - delta)/steps from T down to delta (the paper's grid)."""
    T, delta, steps = _check(T, delta, steps)
    g = torch.linspace(T, delta, steps + 1, dtype=torch.float64)
    g[0], g[-1] = T, delta
    return g


def exponential(T: float, delta: float, steps: int) -> torch.Tensor:
    """Geometric grid: t_k = T (delta/T)^{k/steps}, steps proportional to t."""
    T, delta, steps = _check(T, delta, steps)
    g = torch.exp(torch.linspace(math.log(T), math.log(delta), steps + 1, dtype=torch.float64))
    g[0], g[-1] = T, delta
    return g


def two_phase(T: float, delta: float, steps: int) -> torch.Tensor:
    r"""Uniform far from the data, geometric near it (Benton et al. 2024: steps of size about
    :math:`\kappa\min(1, t)`).

    The grid is uniform in :math:`u = \phi(t)` with :math:`\phi(t) = t` for :math:`t \ge 1` and
    :math:`\phi(t) = 1 + \log t` below; :math:`\phi` is continuously differentiable, so the step is
    :math:`\approx \kappa` above t = 1 and :math:`\approx \kappa t` below, with
    :math:`\kappa = (\phi(T) - \phi(\delta))/N`.
    """
    T, delta, steps = _check(T, delta, steps)

    def phi(t: float) -> float:
        return t if t >= 1 else 1 + math.log(t)

    u = torch.linspace(phi(T), phi(delta), steps + 1, dtype=torch.float64)
    g = torch.where(u >= 1, u, torch.exp(u.clamp(max=1) - 1))
    g[0], g[-1] = T, delta
    return g
