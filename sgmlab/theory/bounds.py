r"""The paper's guarantees as calculators (Chen et al. 2023, Theorem 2 onwards).

The theorems hide universal constants. Every calculator here takes a constant ``C`` (default 1)
that multiplies each hidden-constant term, and labels its result ``ORDER``: the numbers are
orders of magnitude, not certified values. :func:`sgmlab.theory.certified_bound` gives rigorous
numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import _checks

ORDER = "order of magnitude: universal constants hidden by the theorem, each set to C"
RIGOROUS = "rigorous upper bound (explicit constants)"
ESTIMATE = "estimate (Monte Carlo, with its standard error): not a rigorous bound"
QUADRATURE = ("exact integrand, time integral by quadrature with its estimated error added: rigorous up to that "
              "estimate")


def _pos(name: str, v: float) -> float:
    return _checks.real(name, v, low=0.0, low_open=True)


def _nonneg(name: str, v: float) -> float:
    return _checks.real(name, v, low=0.0)


@dataclass(frozen=True)
class DDPMBound:
    r"""Theorem 2: :math:`TV(p_T, q) \lesssim \sqrt{KL(q\|\gamma^d)}e^{-T} + (L\sqrt{dh} + L m_2 h)\sqrt T + \varepsilon\sqrt T`."""

    init: float
    discretisation: float
    score: float
    total: float
    kind: str
    C: float


def ddpm_theorem(*, L: float, d: int, m2: float, kl: float, h: float, T: float, eps_score: float = 0.0,
                 C: float = 1.0) -> DDPMBound:
    """Evaluate the three terms of Theorem 2 (Chen et al. 2023) with constant ``C``.

    Parameters
    ----------
    L : Lipschitz constant of the scores grad log q_t (>= 1, assumption A1)
    d : dimension
    m2 : RMS norm sqrt(E|x|^2) of the data (assumption A2)
    kl : KL(q || N(0, I_d))
    h : step size (the largest step for a non-uniform grid); the theorem needs h <~ 1/L
    T : time horizon
    eps_score : L2 score error (assumption A3)
    """
    L = _checks.real("L", L, low=1.0)
    d = _checks.positive_int("d", d)
    m2, kl, eps_score = _nonneg("m2", m2), _nonneg("kl", kl), _nonneg("eps_score", eps_score)
    h, T, C = _pos("h", h), _pos("T", T), _pos("C", C)
    init = C * math.sqrt(kl) * math.exp(-T)
    disc = C * (L * math.sqrt(d * h) + L * m2 * h) * math.sqrt(T)
    score = C * eps_score * math.sqrt(T)
    return DDPMBound(init, disc, score, init + disc + score, ORDER, C)


@dataclass(frozen=True)
class DDPMComplexity:
    r"""The complexity corollary for TV <= eps: T, and (h, N) both as in the paper,
    :math:`h = \varepsilon^2/(L^2 d)`, and clean, :math:`h = \varepsilon^2/(L^2 d T)`, with the
    score accuracy :math:`\varepsilon_{score} = \varepsilon/\sqrt T` they need."""

    eps: float
    T: float
    h_paper: float
    N_paper: int
    h_clean: float
    N_clean: int
    eps_score: float
    bound_paper: DDPMBound
    bound_clean: DDPMBound
    kind: str


def ddpm_complexity(eps: float, *, L: float, d: int, kl: float, m2: float | None = None, C: float = 1.0) -> DDPMComplexity:
    """Step size and number of steps from the corollary of Theorem 2.

    T = max(1, log(sqrt(KL)/eps)) makes the initialisation term at most eps (C = 1). With the
    paper's h = eps^2/(L^2 d) the discretisation term is eps sqrt(T) [derived]; the clean choice
    h = eps^2/(L^2 d T) makes it eps and changes N only by the factor T. ``m2`` defaults to d
    (the corollary's assumption m2 <= d). Both bounds are evaluated with :func:`ddpm_theorem`.
    """
    eps = _checks.real("eps", eps, low=0.0, high=1.0, low_open=True)
    L = _checks.real("L", L, low=1.0)
    d = _checks.positive_int("d", d)
    kl = _nonneg("kl", kl)
    m2 = float(d) if m2 is None else _nonneg("m2", m2)
    T = max(1.0, math.log(math.sqrt(kl) / eps)) if kl > 0 else 1.0
    h_paper = min(eps**2 / (L**2 * d), 1.0 / L)
    h_clean = min(h_paper / T, 1.0 / L)
    eps_score = eps / math.sqrt(T)
    common = dict(L=L, d=d, m2=m2, kl=kl, T=T, eps_score=eps_score, C=C)
    return DDPMComplexity(eps, T, h_paper, math.ceil(T / h_paper), h_clean, math.ceil(T / h_clean), eps_score,
                          ddpm_theorem(h=h_paper, **common), ddpm_theorem(h=h_clean, **common), ORDER)


@dataclass(frozen=True)
class CompactSupport:
    r"""Early stopping for data in a ball of radius R (Chen et al. 2023):
    :math:`\delta = \varepsilon_W^2/(\sqrt d (R\vee\sqrt d))` gives :math:`W_2(q_\delta, q) \le \varepsilon_W`,
    :math:`L = dR^2(R\vee\sqrt d)^2/\varepsilon_W^4`, and
    :math:`N = d^3R^4(R\vee\sqrt d)^4/(\varepsilon_{TV}^2\varepsilon_W^8)` steps for TV <= eps_TV to q_delta.
    Also the derived rates for one accuracy eps: bounded-Lipschitz (eps_TV = eps_W = eps, ~eps^-10)
    and W2 after projecting onto the ball (eps_W = eps/2, eps_TV = eps^2/(16 R^2), ~eps^-12)."""

    delta: float
    L: float
    N: float
    N_bounded_lipschitz: float
    N_projected_w2: float
    kind: str


def compact_support(*, R: float, d: int, eps_tv: float, eps_w: float, C: float = 1.0) -> CompactSupport:
    """Corollaries for data supported in a ball of radius R >= 1 (no density needed).

    ``N_bounded_lipschitz`` and ``N_projected_w2`` are for accuracy ``eps_tv`` in those metrics
    [derived: d_BL <= TV + W1; W2 between laws on a ball of radius R is <= 2R sqrt(TV), and the
    projection is 1-Lipschitz].
    """
    R = _checks.real("R", R, low=1.0)
    d = _checks.positive_int("d", d)
    eps_tv = _checks.real("eps_tv", eps_tv, low=0.0, high=1.0, low_open=True)
    eps_w, C = _pos("eps_w", eps_w), _pos("C", C)
    Rd = max(R, math.sqrt(d))

    def steps(e_tv: float, e_w: float) -> float:
        return C * d**3 * R**4 * Rd**4 / (e_tv**2 * e_w**8)

    eps = eps_tv
    return CompactSupport(
        delta=eps_w**2 / (math.sqrt(d) * Rd), L=d * R**2 * Rd**2 / eps_w**4, N=steps(eps_tv, eps_w),
        N_bounded_lipschitz=steps(eps, eps), N_projected_w2=steps(eps**2 / (16 * R**2), eps / 2), kind=ORDER)


@dataclass(frozen=True)
class CLDBound(DDPMBound):
    r"""CLD analogue of Theorem 2 (Chen et al. 2023, the CLD section): the forward term involves KL and the
    Fisher information of q relative to :math:`\gamma^d`; the other two terms are as for DDPM."""


def cld_theorem(*, L: float, d: int, m2: float, kl: float, fisher: float, h: float, T: float,
                eps_score: float = 0.0, C: float = 1.0) -> CLDBound:
    r""":math:`TV \lesssim \sqrt{KL(q\|\gamma^d) + FI(q\|\gamma^d)}\,e^{-T} + (L\sqrt{dh} + Lm_2h)\sqrt T
    + \varepsilon_{score}\sqrt T` (the decay rate of the first term is a universal constant c; taken as 1)."""
    fisher = _nonneg("fisher", fisher)
    ddpm = ddpm_theorem(L=L, d=d, m2=m2, kl=kl + fisher, h=h, T=T, eps_score=eps_score, C=C)
    return CLDBound(ddpm.init, ddpm.discretisation, ddpm.score, ddpm.total, ORDER, C)


@dataclass(frozen=True)
class LaterRates:
    """Steps for TV <= eps by later analyses, with logs and constants dropped in every one of the
    four headline rates: this paper L^2 d/eps^2 (its T = log(sqrt(KL)/eps) factor dropped); Benton
    et al. (2024) d/eps^2 (KL <= eps^2 to q_delta; log^2(1/delta) dropped); Chen et al. (2023, ODE
    + corrector) L^2 sqrt(d)/eps; Li and Yan d/eps (log^3 N dropped).

    With the log factors their papers state: ``benton_logs`` = d log^2(1/delta)/eps^2 and
    ``li_yan_logs`` = the smallest N such that d log^3 N'/N' <= eps for every N' >= N (the
    function rises up to N = e^3 and falls after it)."""

    eps: float
    this_paper: float
    benton: float
    chen_ode: float
    li_yan: float
    kind: str
    benton_logs: float = math.nan
    li_yan_logs: float = math.nan


def _li_yan_steps(d: int, eps: float, C: float) -> int:
    """Smallest N with C d log^3(N')/N' <= eps for all N' >= N."""
    def f(n: float) -> float:
        return C * d * math.log(n) ** 3 / n

    if f(20) <= eps:  # f rises up to e^3 = 20.09 and falls after: over the integers its maximum is f(20)
        return 1
    lo, hi = 20, 40  # f(lo) > eps >= f(hi) once the doubling below stops
    while f(hi) > eps:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # f decreases on [20, inf): the first integer with f <= eps
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if f(mid) <= eps else (mid, hi)
    return hi


def later_rates(eps: float, *, d: int, L: float = 1.0, delta: float = 1e-3, C: float = 1.0) -> LaterRates:
    """The later analyses' step counts for TV <= eps (:class:`LaterRates`)."""
    eps = _checks.real("eps", eps, low=0.0, high=1.0, low_open=True)
    d = _checks.positive_int("d", d)
    L = _checks.real("L", L, low=1.0)
    delta = _checks.real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
    C = _pos("C", C)
    rates = (C * L**2 * d / eps / eps, C * d / eps / eps, C * L**2 * math.sqrt(d) / eps, C * d / eps,
             C * d * math.log(1 / delta) ** 2 / eps / eps)
    if not all(math.isfinite(r) for r in rates):
        raise ValueError(f"eps={eps:g} is too small: the step counts overflow float64")
    return LaterRates(eps, *rates[:4], ORDER, rates[4], _li_yan_steps(d, eps, C))
