"""How many steps for TV <= eps: by the theorem (orders of magnitude), by the certified bound
(rigorous, searched numerically), and by later analyses."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from .. import _checks, grids
from ..scores import exact
from ..targets.base import Target
from ..targets.gaussian import Gaussian
from .bounds import DDPMComplexity, LaterRates, ddpm_complexity, later_rates
from .certified import CertifiedBound, certified_bound, init_tv_bound
from .constants import ProblemConstants, problem_constants

GridMaker = Callable[[float, float, int], torch.Tensor]
DEFAULT_GRIDS: Mapping[str, GridMaker] = {"uniform": grids.uniform, "two_phase": grids.two_phase}


@dataclass(frozen=True)
class CertifiedPlan:
    """The smallest N (found by search) whose certified bound with the exact score is <= eps/2,
    T chosen so that init_tv <= eps/4, and the L2 score error that keeps the total <= eps:
    ``eps_score = (sqrt(2) (eps - init_tv) - sqrt(path_kl)) / sqrt(T - delta)`` (Minkowski in
    L2 of the path: sqrt(KL) <= sqrt(KL_exact) + eps_score sqrt(T - delta)). ``reached`` is False
    when N_max did not suffice (then N = N_max and the bound is above eps/2)."""

    grid: str
    T: float
    N: int
    max_step: float
    eps_score: float
    bound: CertifiedBound
    reached: bool


@dataclass(frozen=True)
class Plan:
    eps: float
    delta: float
    constants: ProblemConstants
    theorem: DDPMComplexity
    certified: dict[str, CertifiedPlan] = field(default_factory=dict)
    later: LaterRates | None = None


def _choose_T(target: Target, budget: float, delta: float) -> float:
    T = 1.0
    while init_tv_bound(target, T) > budget:
        T += 0.5
        if T > 50:
            raise ValueError("the prior's TV to q_T did not fall below the budget by T = 50")
    return max(T, 2 * delta)


def plan_certified(target: Target, eps: float, *, delta: float = 1e-3, grid: GridMaker = grids.uniform,
                   name: str = "grid", N_max: int = 1 << 20, n_paths: int = 500, nodes: int = 2,
                   generator: torch.Generator | None = None,
                   progress: Callable[[str], None] | None = None) -> CertifiedPlan:
    """Search the smallest N with certified_bound(exact score, grid(T, delta, N)) <= eps/2.

    Doubling from N = 4, then bisection. For non-Gaussian targets every evaluation is a Monte
    Carlo estimate (``n_paths`` paths, common random numbers through a fixed seed); use a smaller
    N_max there (each evaluation costs N x 3 x nodes score evaluations).
    """
    eps = _checks.real("eps", eps, low=0.0, high=1.0, low_open=True)
    N_max = _checks.positive_int("N_max", N_max)
    T = _choose_T(target, eps / 4, delta)
    score = exact(target)
    seed = int(torch.randint(0, 2**31, (1,), generator=generator)) if generator is not None else 0

    def bound(N: int) -> CertifiedBound:
        b = certified_bound(target, score, grid(T, delta, N), generator=torch.Generator().manual_seed(seed),
                            n_paths=n_paths, nodes=nodes)
        if progress is not None:
            progress(f"{name}: N={N}: certified TV bound {b.chain_tv:.4g}")
        return b

    lo, hi = 0, 4
    b_hi = bound(hi)
    while b_hi.chain_tv > eps / 2 and hi < N_max:  # the route whose init term T was chosen for
        lo, hi = hi, min(2 * hi, N_max)
        b_hi = bound(hi)
    reached = b_hi.chain_tv <= eps / 2
    if reached:
        while hi - lo > max(1, hi // 64):
            mid = (lo + hi) // 2
            b = bound(mid)
            if b.chain_tv <= eps / 2:
                hi, b_hi = mid, b
            else:
                lo = mid
    g = grid(T, delta, hi)
    slack = math.sqrt(2) * (eps - b_hi.init_tv) - math.sqrt(b_hi.path_kl)
    eps_score = max(slack, 0.0) / math.sqrt(T - delta)
    return CertifiedPlan(name, T, hi, float((g[:-1] - g[1:]).max()), eps_score, b_hi, reached)


def plan(target: Target, eps: float, *, delta: float = 1e-3, C: float = 1.0,
         grid_makers: Mapping[str, GridMaker] = DEFAULT_GRIDS, N_max: int | None = None,
         generator: torch.Generator | None = None, progress: Callable[[str], None] | None = None) -> Plan:
    """Steps for TV(p, q_delta) <= eps: (a) Theorem 2's corollary with C, from the target's
    constants; (b) the certified bound, searched for each grid in ``grid_makers``; (c) later rates.

    N_max defaults to 2^20 for Gaussian targets (closed form) and 2^12 otherwise (Monte Carlo).
    """
    eps = _checks.real("eps", eps, low=0.0, high=1.0, low_open=True)
    delta = _checks.real("delta", delta, low=0.0, low_open=True)
    consts = problem_constants(target, delta=delta, generator=generator)
    theorem = ddpm_complexity(eps, L=consts.L, d=consts.d, kl=consts.kl, m2=consts.m2, C=C)
    if N_max is None:
        N_max = 1 << 20 if isinstance(target, Gaussian) else 1 << 12
    certified = {name: plan_certified(target, eps, delta=delta, grid=fn, name=name, N_max=N_max,
                                      generator=generator, progress=progress)
                 for name, fn in grid_makers.items()}
    later = later_rates(eps, d=consts.d, L=max(consts.L, 1.0), delta=min(delta, 0.5), C=C)
    return Plan(eps, delta, consts, theorem, certified, later)
