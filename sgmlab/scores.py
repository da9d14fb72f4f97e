"""Score functions s(x, t) ~ grad log q_t(x).

A score is any callable ``s(x, t) -> Tensor`` with x of shape (n, d) and t a forward time (float)
of the process it belongs to; the result has the shape of x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch

from . import _checks
from .processes import CLD, OU, Process
from .targets.base import Target


class ScoreFn(Protocol):
    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor: ...


class ExactScore:
    r"""The exact score :math:`\nabla \log q_t` of a target's noised law under a process.

    The marginal :math:`q_t` is built in closed form (``process.marginal(target, t)``) and cached
    for the most recent time, so a sampler that evaluates once per grid time builds each law once.
    """

    def __init__(self, target: Target, process: Process | None = None):
        if not isinstance(target, Target):
            raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
        if process is not None and not isinstance(process, (Process, CLD)):
            raise TypeError(f"process must be an sgmlab process; got {type(process).__name__}")
        self.target = target
        self.process = OU() if process is None else process
        self._cache: tuple[float, Target] | None = None

    def __repr__(self) -> str:
        return f"ExactScore({self.target!r}, {self.process!r})"

    def marginal(self, t: float) -> Target:
        t = float(t)
        if self._cache is None or self._cache[0] != t:
            self._cache = (t, self.process.marginal(self.target, t))
        return self._cache[1]

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        s = self.marginal(t).score(x)
        return self.process.score_part(s)

    def affine(self, t: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(A, c) with s(x, t) = x A^T + c for a Gaussian target (A = -P_t, c = P_t mu_t); None otherwise."""
        from .targets.gaussian import Gaussian

        qt = self.marginal(t)
        if not isinstance(qt, Gaussian):
            return None
        A, c = -qt.precision, qt.precision @ qt.mean
        if isinstance(self.process, CLD):  # velocity rows only: s_v(z) = z A_v^T + c_v
            d = qt.dim // 2
            return A[d:], c[d:]
        return A, c


def exact(target: Target, process: Process | None = None) -> ExactScore:
    """s(x, t) = grad log q_t(x) in closed form, for q_t the law at time t of ``process``
    (default OU) started at ``target``.

    Examples
    --------
    >>> import sgmlab as sg
    >>> score = sg.scores.exact(sg.targets.mixture2d(), sg.processes.OU())
    >>> score(torch.zeros(5, 2, dtype=torch.float64), 0.5).shape
    torch.Size([5, 2])
    """
    return ExactScore(target, process)


# ---------------------------------------------------------------------------------------------
# affine scores (Gaussian targets): s(x, t) = x A^T + c
# ---------------------------------------------------------------------------------------------

def affine_form(score: ScoreFn, t: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(A, c) with s(x, t) = x A^T + c when the score is known to be affine at t, else None.

    Exact scores of Gaussian targets are affine (A = -P_t, c = P_t mu_t); so are those plus a
    bias that does not depend on x.
    """
    fn = getattr(score, "affine", None)
    return fn(t) if callable(fn) else None


# ---------------------------------------------------------------------------------------------
# perturbed scores: an error of a chosen L2(q_t) size
# ---------------------------------------------------------------------------------------------

class ErrorSize(NamedTuple):
    """Sizes of a score error e = s - grad log q_t at one time: its L2(q_t) norm and its sup norm."""

    l2: float
    linf: float


class MeasuredError(NamedTuple):
    """Monte-Carlo measurement of a score error under q_t: L2 norm with standard error, and the
    largest |e| seen on the sample (a lower bound on the sup norm)."""

    l2: float
    l2_stderr: float
    linf_seen: float


def _projected_1d(law: Target, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Law of v.X as a 1-D Gaussian mixture: weights, means, standard deviations."""
    from .targets.gaussian import Gaussian
    from .targets.mixture import GaussianMixture

    if isinstance(law, Gaussian):
        return torch.ones(1, dtype=v.dtype), (law.mean @ v).reshape(1), (v @ law.cov @ v).sqrt().reshape(1)
    if isinstance(law, GaussianMixture):
        covs = law.cov_matrices()
        return law.weights, law.means @ v, torch.einsum("i,kij,j->k", v, covs, v).sqrt()
    raise TypeError(f"a localized error needs a Gaussian or mixture law at time t; got {type(law).__name__}")


def _halfspace_threshold(law: Target, v: torch.Tensor, mass: float) -> float:
    """c with q(v.X > c) = mass, by bisection on the exact 1-D mixture survival function."""
    w, m, s = _projected_1d(law, v)

    def tail(c: float) -> float:  # erfc(z / sqrt 2) / 2: no cancellation (1 - cdf(z) and torch's ndtr(-z) have it)
        return float((w * torch.special.erfc((c - m) / (s * math.sqrt(2))) / 2).sum())

    lo, hi = float((m - 40 * s).min()), float((m + 40 * s).max())
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tail(mid) > mass else (lo, mid)
    return 0.5 * (lo + hi)


class PerturbedScore:
    r"""A score with an added error :math:`e_t` of chosen L2(q_t) size :math:`\varepsilon(t)`,
    :math:`\tilde s(x, t) = s(x, t) + e_t(x)`, in one of two shapes:

    - ``"bias"``: :math:`e_t(x) = \varepsilon(t)\, v`, a smooth global bias. L2 and sup norms are
      both :math:`\varepsilon(t)`.
    - ``"localized"``: :math:`e_t(x) = \varepsilon(t)\, p^{-1/2}\, v\, \mathbf 1\{v^\top x > c_t\}` with
      :math:`q_t(v^\top x > c_t) = p` (``mass``) exactly. The L2 norm is :math:`\varepsilon(t)` but
      the sup norm is :math:`\varepsilon(t)/\sqrt p`: small in L2, huge in L-infinity
      (Chen et al. 2023, assumption A3 and point (1) of the abstract).

    The L2 size is exact by construction when ``score`` is the exact score of ``target``; it is
    the size of the added error in any case.
    """

    SHAPES = ("bias", "localized")

    def __init__(self, score: ScoreFn, target: Target, eps: float | Callable[[float], float], *,
                 shape: str = "bias", process: Process | None = None, mass: float = 1e-3,
                 direction: Any = None):
        if not callable(score):
            raise TypeError(f"score must be a callable s(x, t); got {type(score).__name__}")
        if not isinstance(target, Target):
            raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
        if shape not in self.SHAPES:
            raise ValueError(f"shape must be one of {self.SHAPES}; got {shape!r}")
        if not callable(eps):
            _checks.real("eps", eps, low=0.0)
        self.score, self.target, self.eps, self.shape = score, target, eps, shape
        self.process = OU() if process is None else process
        self.mass = _checks.real("mass", mass, low=0.0, high=1.0, low_open=True, high_open=True)
        d = target.dim
        v = torch.zeros(d, dtype=torch.float64) if direction is None else _checks.as_tensor("direction", direction, ndim=1)
        if direction is None:
            v[0] = 1.0
        if v.shape[0] != d or float(v.norm()) == 0:
            raise ValueError(f"direction must be a non-zero vector of length {d}")
        self.direction = v / v.norm()
        self._threshold: dict[float, float] = {}

    def __repr__(self) -> str:
        return f"PerturbedScore({self.score!r}, shape={self.shape!r}, mass={self.mass})"

    def eps_at(self, t: float) -> float:
        e = float(self.eps(t)) if callable(self.eps) else float(self.eps)
        if not (e >= 0) or e == float("inf"):
            raise ValueError(f"eps({t}) must be a finite number >= 0; got {e}")
        return e

    def threshold(self, t: float) -> float:
        """c_t with q_t(v.x > c_t) = mass (localized shape)."""
        t = float(t)
        if t not in self._threshold:
            self._threshold[t] = _halfspace_threshold(self.process.marginal(self.target, t), self.direction, self.mass)
        return self._threshold[t]

    def sizes(self, t: float) -> ErrorSize:
        e = self.eps_at(t)
        return ErrorSize(e, e if self.shape == "bias" else e / self.mass**0.5)

    def error(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """e_t(x), shape of x."""
        v = self.direction.to(x)
        e = self.eps_at(t)
        if self.shape == "bias":
            return (e * v).expand_as(x)
        inside = (x @ v > self.threshold(t)).to(x.dtype)
        return (e / self.mass**0.5) * inside[:, None] * v

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.score(x, t) + self.error(x, t)

    def affine(self, t: float) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.shape != "bias":
            return None
        base = affine_form(self.score, t)
        return None if base is None else (base[0], base[1] + self.eps_at(t) * self.direction)

    def measure(self, t: float, n: int = 100_000, *, generator: torch.Generator | None = None) -> MeasuredError:
        """Measure |s~ - grad log q_t| under q_t by Monte Carlo (the whole error, base score included)."""
        qt = self.process.marginal(self.target, t)
        x = qt.sample(_checks.positive_int("n", n, minimum=2), generator=generator)
        sq = ((self(x, t) - qt.score(x)) ** 2).sum(1)
        l2sq, se_sq = float(sq.mean()), float(sq.std()) / n**0.5
        l2 = l2sq**0.5
        return MeasuredError(l2, se_sq / (2 * l2) if l2 > 0 else se_sq**0.5, float(sq.max().sqrt()))


def perturbed(score: ScoreFn, target: Target, eps: float | Callable[[float], float], *, shape: str = "bias",
              process: Process | None = None, mass: float = 1e-3, direction: Any = None) -> PerturbedScore:
    """``score`` plus an error of L2(q_t) size ``eps`` (a number or a function of t); see
    :class:`PerturbedScore` for the shapes.

    Examples
    --------
    >>> import sgmlab as sg
    >>> q = sg.targets.mixture2d()
    >>> s = sg.scores.perturbed(sg.scores.exact(q), q, 0.1, shape="localized", mass=1e-3)
    >>> s.sizes(0.5)   # small in L2, large in L-infinity
    ErrorSize(l2=0.1, linf=3.16...)
    """
    return PerturbedScore(score, target, eps, shape=shape, process=process, mass=mass, direction=direction)
