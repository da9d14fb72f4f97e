r"""Forward noising processes: the paper's Ornstein-Uhlenbeck process and VP SDEs as its time changes.

Both are of the form :math:`dX = -\tfrac12 \beta(t) X\,dt + \sqrt{\beta(t)}\,dB` with
:math:`\beta = 2` for OU (Chen et al. 2023). With the OU clock
:math:`\tau(t) = \tfrac12 \int_0^t \beta(s)\,ds` the transition is

.. math::
    X_t = e^{-\tau(t)} X_0 + \sqrt{1 - e^{-2\tau(t)}}\, Z, \qquad Z \sim N(0, I_d),

so a VP process at time t has exactly the law of OU at time :math:`\tau(t)`; DDPM's
:math:`\bar\alpha(t) = e^{-2\tau(t)}`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Union

import torch

from . import _checks
from ._random import standard_normal_
from .targets.base import LOG_2PI, Target

Time = Union[float, torch.Tensor]
ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


def _t64(t: Time) -> torch.Tensor:
    return torch.as_tensor(t, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# beta schedules for VP
# ---------------------------------------------------------------------------------------------

class BetaSchedule(Protocol):
    """A noise-rate schedule beta(s) on [0, t_max] with integral B(s) = int_0^s beta."""

    t_max: float

    def beta(self, s: torch.Tensor) -> torch.Tensor: ...

    def integral(self, s: torch.Tensor) -> torch.Tensor: ...

    def integral_inverse(self, B: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class LinearBeta:
    r"""Linear schedule :math:`\beta(s) = \beta_{\min} + s(\beta_{\max} - \beta_{\min})`, s in [0, 1]
    (Song et al. 2021, continuous DDPM; defaults 0.1 and 20)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_max: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.beta_min <= self.beta_max) or not math.isfinite(self.beta_max):
            raise ValueError(f"LinearBeta needs 0 < beta_min <= beta_max < inf; got "
                             f"beta_min={self.beta_min}, beta_max={self.beta_max}")

    def beta(self, s: torch.Tensor) -> torch.Tensor:
        return self.beta_min + s * (self.beta_max - self.beta_min)

    def integral(self, s: torch.Tensor) -> torch.Tensor:
        return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s * s

    def integral_inverse(self, B: torch.Tensor) -> torch.Tensor:
        # root of beta_min s + (diff/2) s^2 = B, in the form without cancellation
        diff = self.beta_max - self.beta_min
        return 2 * B / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * diff * B))


@dataclass(frozen=True)
class CosineBeta:
    r"""Cosine schedule of Nichol and Dhariwal (2021):
    :math:`\bar\alpha(s) = f(s)/f(0)`, :math:`f(s) = \cos^2\bigl(\tfrac{s + \epsilon}{1 + \epsilon}\tfrac\pi2\bigr)`.

    :math:`\bar\alpha(1) = 0`, so times are restricted to [0, t_max] with t_max = 0.999 by default.
    """

    offset: float = 0.008
    t_max: float = 0.999

    def __post_init__(self) -> None:
        if not (self.offset > 0) or not (0 < self.t_max < 1):
            raise ValueError(f"CosineBeta needs offset > 0 and 0 < t_max < 1; got offset={self.offset}, "
                             f"t_max={self.t_max}")

    def _angle(self, s: torch.Tensor) -> torch.Tensor:
        return (s + self.offset) / (1 + self.offset) * (math.pi / 2)

    def beta(self, s: torch.Tensor) -> torch.Tensor:
        return math.pi / (1 + self.offset) * torch.tan(self._angle(s))

    def integral(self, s: torch.Tensor) -> torch.Tensor:
        c0 = math.cos(self.offset / (1 + self.offset) * math.pi / 2)
        return -2 * torch.log(torch.cos(self._angle(s)) / c0)

    def integral_inverse(self, B: torch.Tensor) -> torch.Tensor:
        c0 = math.cos(self.offset / (1 + self.offset) * math.pi / 2)
        return torch.arccos(torch.exp(-0.5 * B) * c0) * (2 * (1 + self.offset) / math.pi) - self.offset


class DiscreteBetas:
    r"""A DDPM discrete schedule :math:`\beta_0, \dots, \beta_{K-1}` as an exact time change of OU.

    Timestep k (0-based, as in diffusers) sits at VP time :math:`s_k = (k+1)/K`, where
    :math:`\int_0^{s_k}\beta = -\log \bar\alpha_k = -\sum_{j \le k} \log(1 - \beta_j)`; between
    timesteps the integral is linear. So OU time :math:`t_k = -\tfrac12 \log \bar\alpha_k` exactly.

    Parameters
    ----------
    betas : array of shape (K,), entries in (0, 1)
    """

    def __init__(self, betas: Any):
        self.betas = _checks.as_tensor("betas", betas, ndim=1)
        if bool(((self.betas <= 0) | (self.betas >= 1)).any()):
            raise ValueError("betas must lie in (0, 1)")
        K = self.betas.shape[0]
        self.t_max = 1.0
        self._B = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(-torch.log1p(-self.betas), 0)])
        self._rate = -torch.log1p(-self.betas) * K  # beta(s) on each interval

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DiscreteBetas) and torch.equal(self.betas, other.betas)

    def __hash__(self) -> int:
        return hash(("DiscreteBetas", self.betas.shape[0], float(self.betas.sum())))

    @classmethod
    def linear(cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiscreteBetas:
        """Ho et al.'s linear schedule (diffusers' ``beta_schedule="linear"`` defaults)."""
        return cls(torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64))

    @property
    def num_timesteps(self) -> int:
        return self.betas.shape[0]

    def _locate(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = s * self.num_timesteps
        i = u.floor().long().clamp(0, self.num_timesteps - 1)
        return i, u - i

    def beta(self, s: torch.Tensor) -> torch.Tensor:
        return self._rate[self._locate(s)[0]]

    def integral(self, s: torch.Tensor) -> torch.Tensor:
        i, frac = self._locate(s)
        return self._B[i] + frac * (self._B[i + 1] - self._B[i])

    def integral_inverse(self, B: torch.Tensor) -> torch.Tensor:
        i = (torch.searchsorted(self._B, B, right=True) - 1).clamp(0, self.num_timesteps - 1)
        frac = (B - self._B[i]) / (self._B[i + 1] - self._B[i])
        return (i + frac) / self.num_timesteps

    def timestep_to_time(self, k: Time) -> torch.Tensor:
        """VP time s_k = (k+1)/K of DDPM timestep k."""
        return (_t64(k) + 1) / self.num_timesteps

    def time_to_timestep(self, s: Time) -> torch.Tensor:
        """Inverse of :meth:`timestep_to_time` (fractional in general)."""
        return _t64(s) * self.num_timesteps - 1

    def alphas_cumprod(self) -> torch.Tensor:
        """DDPM's :math:`\\bar\\alpha_k = \\prod_{j \\le k} (1 - \\beta_j)`."""
        return torch.cumprod(1 - self.betas, 0)


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------

class Process(ABC):
    r"""A forward process :math:`dX = -\tfrac12\beta(t) X dt + \sqrt{\beta(t)} dB` started at the data.

    Subclasses give :math:`\beta` and the OU clock :math:`\tau(t)`; everything else follows.
    """

    t_max: float = math.inf

    @abstractmethod
    def beta(self, t: Time) -> torch.Tensor:
        """Noise rate beta(t) (OU: 2)."""

    @abstractmethod
    def ou_time(self, t: Time) -> torch.Tensor:
        """OU time tau(t) = (1/2) int_0^t beta: the law at t equals OU's law at tau(t)."""

    @abstractmethod
    def time_from_ou(self, tau: Time) -> torch.Tensor:
        """Inverse of :meth:`ou_time`."""

    def check_time(self, t: Time, name: str = "t") -> float:
        return _checks.real(name, t, low=0.0, high=self.t_max)

    def score_part(self, full_score: torch.Tensor) -> torch.Tensor:
        """The part of grad log q_t a sampler of this process uses: all of it (CLD: the velocity part)."""
        return full_score

    # -- transition --------------------------------------------------------------------------

    def mean_coef(self, t: Time) -> torch.Tensor:
        """a(t) = e^{-tau(t)}: the mean of X_t given X_0 is a(t) X_0."""
        return torch.exp(-self.ou_time(t))

    def std(self, t: Time) -> torch.Tensor:
        """sigma(t) = sqrt(1 - e^{-2 tau(t)}): the standard deviation of X_t given X_0."""
        return torch.sqrt(-torch.expm1(-2 * self.ou_time(t)))

    def marginal_prob(self, x0: torch.Tensor, t: Time) -> tuple[torch.Tensor, float]:
        """Mean a(t) x0 and standard deviation sigma(t) of X_t given X_0 = x0."""
        t = self.check_time(t)
        return float(self.mean_coef(t)) * x0, float(self.std(t))

    def marginal(self, target: Target, t: Time) -> Target:
        """The exact law q_t of X_t when X_0 ~ target (same family as the target)."""
        if not isinstance(target, Target):
            raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
        t = self.check_time(t)
        return target.noised(float(self.mean_coef(t)), float(self.std(t)))

    # -- SDE coefficients ----------------------------------------------------------------------

    def drift(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """f(x, t) = -beta(t) x / 2."""
        return -0.5 * float(self.beta(t)) * x

    def diffusion(self, t: Time) -> float:
        """g(t) = sqrt(beta(t))."""
        return math.sqrt(float(self.beta(t)))

    def reverse_drift(self, x: torch.Tensor, t: Time, score: ScoreFn, *, probability_flow: bool = False
                      ) -> torch.Tensor:
        r"""Drift of the time reversal, in reverse time, at forward time t:
        :math:`-f(x, t) + c\, g(t)^2 s(x, t)` with c = 1 (SDE) or 1/2 (probability-flow ODE).
        For OU and the SDE this is the paper's :math:`x + 2 \nabla\log q_t(x)`."""
        c = 0.5 if probability_flow else 1.0
        return -self.drift(x, t) + c * float(self.beta(t)) * score(x, float(t))

    # -- stationary law ------------------------------------------------------------------------

    def prior_sample(self, n: int, d: int, *, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """n draws from the stationary law N(0, I_d), shape (n, d)."""
        n = _checks.positive_int("n", n, minimum=0)
        d = _checks.positive_int("d", d)
        device = _checks.device(device)
        _checks.generator_for(generator, device)
        return standard_normal_(torch.empty(n, d, dtype=dtype, device=device), generator)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log N(x; 0, I_d) for x of shape (n, d)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            raise ValueError(f"x must be a tensor of shape (n, d); got {getattr(x, 'shape', type(x).__name__)}")
        return -0.5 * (x * x).sum(1) - 0.5 * x.shape[1] * LOG_2PI


class OU(Process):
    r"""The paper's forward process :math:`dX_t = -X_t dt + \sqrt2 dB_t` (Chen et al. 2023).

    Examples
    --------
    >>> import sgmlab as sg
    >>> ou = sg.processes.OU()
    >>> q1 = ou.marginal(sg.targets.Gaussian([3.0], [[1.0]]), 1.0)   # N(3/e, 1)
    """

    def __repr__(self) -> str:
        return "OU()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OU)

    def __hash__(self) -> int:
        return hash("OU")

    def beta(self, t: Time) -> torch.Tensor:
        return torch.full_like(_t64(t), 2.0)

    def ou_time(self, t: Time) -> torch.Tensor:
        return _t64(t)

    def time_from_ou(self, tau: Time) -> torch.Tensor:
        return _t64(tau)


class VP(Process):
    r"""Variance-preserving SDE :math:`dX = -\tfrac12\beta(t)X dt + \sqrt{\beta(t)} dB` (Song et al. 2021),
    an exact time change of OU: :math:`\tau(t) = \tfrac12\int_0^t\beta`.

    Parameters
    ----------
    schedule : LinearBeta, CosineBeta or DiscreteBetas (default ``LinearBeta()``)

    Examples
    --------
    >>> import sgmlab as sg
    >>> vp = sg.processes.VP(sg.processes.CosineBeta())
    >>> float(vp.time_from_ou(vp.ou_time(0.3)))   # round trip
    0.3
    """

    def __init__(self, schedule: BetaSchedule | None = None):
        self.schedule = LinearBeta() if schedule is None else schedule
        for attr in ("beta", "integral", "integral_inverse", "t_max"):
            if not hasattr(self.schedule, attr):
                raise TypeError(f"schedule must provide {attr}; got {type(self.schedule).__name__}")
        self.t_max = float(self.schedule.t_max)

    def __repr__(self) -> str:
        return f"VP({self.schedule!r})"

    def __eq__(self, other: object) -> bool:  # the same process: the same schedule, not only the same class
        return isinstance(other, VP) and self.schedule == other.schedule

    def __hash__(self) -> int:
        return hash(("VP", self.schedule))

    def beta(self, t: Time) -> torch.Tensor:
        return self.schedule.beta(_t64(t))

    def ou_time(self, t: Time) -> torch.Tensor:
        return 0.5 * self.schedule.integral(_t64(t))

    def time_from_ou(self, tau: Time) -> torch.Tensor:
        tau = _t64(tau)
        if bool((tau > self.ou_time(self.t_max) * (1 + 1e-12)).any()):
            raise ValueError(f"OU time {tau.max().item():.6g} is beyond this VP process's range "
                             f"(at most {float(self.ou_time(self.t_max)):.6g})")
        return self.schedule.integral_inverse(2 * tau)


# ---------------------------------------------------------------------------------------------
# critically damped Langevin diffusion
# ---------------------------------------------------------------------------------------------

def expm2(A: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r""":math:`e^{tA}` for a 2x2 matrix A and a batch of times t (shape (m,) -> (m, 2, 2)), in closed form:
    :math:`e^{tA} = e^{st}\bigl(c(t) I + g(t)(A - sI)\bigr)` with :math:`s = \mathrm{tr}A/2`,
    :math:`\omega^2 = s^2 - \det A` and (c, g) = (cosh, sinh/omega), (cos, sin/|omega|) or the series
    (1 + omega^2 t^2/2, t (1 + omega^2 t^2/6)) near critical damping."""
    t = torch.as_tensor(t, dtype=torch.float64)
    s = float(A.trace()) / 2
    w2 = s * s - float(torch.linalg.det(A))
    N = A - s * torch.eye(2, dtype=torch.float64)
    if abs(w2) * float(t.abs().max()) ** 2 < 1e-8:
        c, g = 1 + w2 * t**2 / 2, t * (1 + w2 * t**2 / 6)
    elif w2 > 0:
        w = w2**0.5
        c, g = torch.cosh(w * t), torch.sinh(w * t) / w
    else:
        w = (-w2) ** 0.5
        c, g = torch.cos(w * t), torch.sin(w * t) / w
    e = torch.exp(s * t)
    return e[..., None, None] * (c[..., None, None] * torch.eye(2, dtype=torch.float64) + g[..., None, None] * N)


class CLD:
    r"""Critically damped Langevin diffusion (Chen et al. 2023), state :math:`z = [x, v]` of shape (n, 2d):

    .. math::
        dX = M^{-1} V dt, \qquad dV = -X dt - \Gamma M^{-1} V dt + \sqrt{2\Gamma}\, dB,

    started at :math:`q \otimes N(0, \gamma M I_d)`, :math:`\gamma` = ``init_velocity`` (1, the
    stationary velocity law, as in Chen et al. 2023; CLD-SGM (Dockhorn et al. 2022) uses
    :math:`\gamma = 0.04`, which ``CLD(init_velocity=0.04)`` runs). Per coordinate pair the drift matrix is
    :math:`A = [[0, 1/M], [-1, -\Gamma/M]]`, the noise covariance rate :math:`Q = \mathrm{diag}(0, 2\Gamma)`
    and the stationary law :math:`N(0, \mathrm{diag}(1, M))`; the defaults :math:`\Gamma = 2, M = 1` are the
    paper's (critical damping :math:`\Gamma^2 = 4M`, :math:`A = [[0, 1], [-1, -2]]`, stationary
    :math:`N(0, I_{2d})`). The transition is exact: mean :math:`e^{tA}z_0`, covariance
    :math:`\Sigma_\infty - e^{tA}\Sigma_\infty e^{tA^\top}`.
    """

    t_max: float = math.inf

    def __init__(self, friction: float = 2.0, mass: float = 1.0, init_velocity: float = 1.0):
        self.friction = _checks.real("friction", friction, low=0.0, low_open=True)
        self.mass = _checks.real("mass", mass, low=0.0, low_open=True)
        self.init_velocity = _checks.real("init_velocity", init_velocity, low=0.0)
        self.velocity_var0 = self.init_velocity * self.mass  # the variance of V_0
        G, M = self.friction, self.mass
        self.A = torch.tensor([[0.0, 1.0 / M], [-1.0, -G / M]], dtype=torch.float64)
        self.Q = torch.tensor([[0.0, 0.0], [0.0, 2.0 * G]], dtype=torch.float64)
        self.stationary_cov = torch.tensor([[1.0, 0.0], [0.0, M]], dtype=torch.float64)

    def __repr__(self) -> str:
        more = f", init_velocity={self.init_velocity}" if self.init_velocity != 1.0 else ""
        return f"CLD(friction={self.friction}, mass={self.mass}{more})"

    def _key(self) -> tuple[float, float, float]:
        return self.friction, self.mass, self.init_velocity

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CLD) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("CLD", *self._key()))

    def check_time(self, t: Time, name: str = "t") -> float:
        return _checks.real(name, t, low=0.0)

    def transition(self, t: Time) -> tuple[torch.Tensor, torch.Tensor]:
        """2x2 mean matrix e^{tA} and noise covariance Sigma_inf - e^{tA} Sigma_inf e^{tA^T}, per coordinate pair."""
        t = self.check_time(t)
        E = expm2(self.A, torch.tensor(t, dtype=torch.float64))
        return E, self.stationary_cov - E @ self.stationary_cov @ E.T

    def _kron(self, B: torch.Tensor, d: int) -> torch.Tensor:
        """The 2d x 2d matrix acting as B on each pair (x_i, v_i) in the layout [x, v]."""
        return torch.kron(B, torch.eye(d, dtype=B.dtype))

    def marginal(self, target: Target, t: Time) -> Target:
        """Exact law of [X_t, V_t] for X_0 ~ target, V_0 ~ N(0, gamma M I): a Gaussian or Gaussian mixture over R^{2d}."""
        from .targets.gaussian import Gaussian
        from .targets.mixture import GaussianMixture

        if not isinstance(target, Target):
            raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
        E, S = self.transition(t)
        d = target.dim
        EE, SS = self._kron(E, d), self._kron(S, d)
        v0 = self.velocity_var0 * torch.eye(d, dtype=torch.float64)

        def law(mean_x: torch.Tensor, cov_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            c0 = torch.block_diag(cov_x, v0)
            cov = EE @ c0 @ EE.T + SS
            return EE @ torch.cat([mean_x, torch.zeros(d, dtype=torch.float64)]), 0.5 * (cov + cov.T)

        if isinstance(target, Gaussian):
            return Gaussian(*law(target.mean, target.cov))
        if isinstance(target, GaussianMixture):
            covs = target.cov_matrices()
            parts = [law(target.means[k], covs[k]) for k in range(target.n_components)]
            return GaussianMixture(target.weights, torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]))
        from .targets.empirical import Empirical

        if isinstance(target, Empirical):
            if float(t) == 0:
                raise ValueError("the CLD law of a point set at t = 0 has no density in x; use t > 0")
            zero = torch.zeros(d, d, dtype=torch.float64)
            parts = [law(p, zero) for p in target.points]
            return GaussianMixture(target.weights, torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts]))
        raise TypeError(f"CLD marginals need a Gaussian, mixture or empirical target; got {type(target).__name__}")

    def score_part(self, full_score: torch.Tensor) -> torch.Tensor:
        """The velocity score grad_v log q_t from the full score over [x, v]: its last d columns."""
        return full_score[:, full_score.shape[1] // 2:]

    def prior_sample(self, n: int, d: int, *, generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """n draws of the stationary law N(0, diag(I_d, M I_d)) over [x, v], shape (n, 2d)."""
        n = _checks.positive_int("n", n, minimum=0)
        d = _checks.positive_int("d", d)
        device = _checks.device(device)
        _checks.generator_for(generator, device)
        z = standard_normal_(torch.empty(n, 2 * d, dtype=dtype, device=device), generator)
        z[:, d:] *= math.sqrt(self.mass)
        return z

    @staticmethod
    def positions(z: torch.Tensor) -> torch.Tensor:
        """The x-marginal of states of shape (n, 2d): the first d columns."""
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] % 2:
            raise ValueError(f"a CLD state must have shape (n, 2d); got {getattr(z, 'shape', type(z).__name__)}")
        return z[:, : z.shape[1] // 2]
