r"""Denoising score matching (Vincent 2011) for the OU/VP processes.

With :math:`x_t = a_t x_0 + \sigma_t z`, :math:`E[-z/\sigma_t \mid x_t] = \nabla\log q_t(x_t)`, so

.. math::
    E\,|s(x_t, t) + z/\sigma_t|^2 = E\,|s(x_t, t) - \nabla\log q_t(x_t)|^2 + \underbrace{d/\sigma_t^2 - J(q_t)}_{C(t)}

with :math:`J(q_t) = E|\nabla\log q_t|^2`. Averaged over t uniform on [delta, T] the first term is
the time average of :math:`\varepsilon_{score}(t)^2` (assumption A3): that is the ``"a3"``
weighting. Times are drawn uniformly or log-uniformly; the weights correct for the sampling
density, so the loss estimates the same average either way. ``"likelihood"`` weights by
:math:`\beta(t)` (Song et al. 2021: the loss then bounds a KL).

Any target with conditional mean :math:`E[z \mid x_t]` gives the same gradient in expectation;
:func:`stable_target` (the stable target field, Xu et al. 2023) averages z over the posterior of a
set of reference rows, which removes most of the target's variance at high noise
(benchmarks/recipe_ablation_time.md measures what it buys at equal CPU time).
"""

from __future__ import annotations

import math

import torch
from scipy import integrate

from ..processes import Process
from ..targets.gaussian import Gaussian

WEIGHTINGS = ("a3", "likelihood", "eps", "min-snr", "edm")
MIN_SNR_GAMMA = 5.0  # "min-snr": Hang et al. 2023
TIME_SAMPLINGS = ("uniform", "log-uniform", "log-normal")
# "log-normal": log sigma_EDM ~ N(-1.2, 1.2^2) truncated to [delta, T], sigma_EDM = sigma_t / a_t (Karras et al. 2022)
LOG_NORMAL = (-1.2, 1.2)


def _log_sigma_edm(t: torch.Tensor, process: Process) -> torch.Tensor:
    tau = process.ou_time(t.to(torch.float64))
    return 0.5 * torch.log(torch.expm1(2 * tau))


def sample_times(n: int, T: float, delta: float, kind: str, generator: torch.Generator | None,
                 process: Process | None = None) -> torch.Tensor:
    """n training times on [delta, T] (the process's clock; default OU): uniform, log-uniform, or
    log-normal in sigma_EDM (by inversion of the truncated normal)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    if kind == "uniform":
        return delta + (T - delta) * u
    if kind == "log-uniform":
        return delta * (T / delta) ** u
    if kind == "log-normal":
        from ..processes import OU

        process = OU() if process is None else process
        m, s = LOG_NORMAL
        lo, hi = (torch.special.ndtr((_log_sigma_edm(torch.tensor([v]), process) - m) / s) for v in (delta, T))
        ls = m + s * torch.special.ndtri(lo + (hi - lo) * u)
        tau = 0.5 * torch.log1p(torch.exp(2 * ls))
        return process.time_from_ou(tau).to(torch.float64).clamp(delta, T)
    raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}; got {kind!r}")


def _log_normal_density(t: torch.Tensor, T: float, delta: float, process: Process) -> torch.Tensor:
    """Density on [delta, T] of the times ``sample_times(..., "log-normal")`` draws."""
    m, s = LOG_NORMAL
    lo, hi = (float(torch.special.ndtr((_log_sigma_edm(torch.tensor([v]), process) - m) / s)) for v in (delta, T))
    tt = t.to(torch.float64)
    tau = process.ou_time(tt)
    # phi((ls - m)/s) / (s (hi - lo)) * d(ls)/dt, ls = log sigma_EDM, d ls / d tau = e^{2 tau} / (e^{2 tau} - 1)
    dls = torch.exp(2 * tau) / torch.expm1(2 * tau) * 0.5 * process.beta(tt)
    z = (_log_sigma_edm(tt, process) - m) / s
    return torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi) / (s * (hi - lo)) * dls


def time_weights(t: torch.Tensor, T: float, delta: float, sampling: str, weighting: str, process: Process) -> torch.Tensor:
    """w(t) = lambda(t) / (p(t) (T - delta)): importance weight to the uniform time average."""
    # the log-normal density, once, where the sampling or EDM's weighting needs it
    ln = (_log_normal_density(t, T, delta, process) * (T - delta)
          if sampling == "log-normal" or weighting == "edm" else None)
    if sampling == "log-normal":
        inv_density = (1.0 / ln).to(t.dtype)
    else:
        inv_density = torch.ones_like(t) if sampling == "uniform" else t * math.log(T / delta) / (T - delta)
    if weighting == "a3":
        return inv_density
    if weighting == "likelihood":
        return inv_density * process.beta(t)
    if weighting in ("eps", "min-snr", "edm"):  # sigma_t^2: the plain MSE of the predicted noise
        tau = process.ou_time(t)
        s2 = -torch.expm1(-2 * tau)
        w = inv_density * s2.to(t.dtype)
        if weighting == "min-snr":  # times min(SNR, gamma) / SNR: the low-noise end down-weighted
            snr = torch.exp(-2 * tau) / s2
            w = w * (snr.clamp(max=MIN_SNR_GAMMA) / snr).to(t.dtype)
        if weighting == "edm":  # / a_t^2 (the MSE of v) at EDM's log-normal noise levels: with log-normal times, 1
            w = w * (torch.exp(2 * tau) * ln).to(t.dtype)
        return w
    raise ValueError(f"weighting must be one of {WEIGHTINGS}; got {weighting!r}")


def stable_target(x0: torch.Tensor, z: torch.Tensor, a: torch.Tensor, sigma: torch.Tensor,
                  reference: torch.Tensor) -> torch.Tensor:
    r"""The noise target of the stable target field (Xu et al. 2023): E[z | x_t] under the uniform
    law on the ``reference`` rows (which must hold each row of x0), in place of z itself.

    With x_t = a x0 + sigma z, the posterior weight of a reference row c is the softmax over c of
    -|x_t - a c|^2 / (2 sigma^2), and E[z | x_t] = z - (a / sigma)(E[c | x_t] - x0). Where sigma is
    small the weight sits on x0 and the target is z; where it is large the target averages z over
    many rows, and the regression target's variance falls. Its conditional mean given x_t is the
    score target of DSM up to the reference's finite size. ``a`` and ``sigma`` have shape (n, 1).
    """
    r = a / sigma
    logits = (r * z + r * r * x0) @ reference.T - 0.5 * (r * r) * (reference * reference).sum(1)
    return z - r * (torch.softmax(logits, 1) @ reference - x0)


def dsm_loss(score: torch.nn.Module, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor, w: torch.Tensor,
             process: Process, reference: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample weighted DSM loss w(t) |s(x_t, t) + target / sigma_t|^2, shape (n,): the target is
    the noise z, or with ``reference`` rows its stable-target-field average (:func:`stable_target`)."""
    tau = process.ou_time(t)
    a = torch.exp(-tau).to(x0.dtype)[:, None]
    sigma = torch.sqrt(-torch.expm1(-2 * tau)).to(x0.dtype)[:, None]
    s = score(a * x0 + sigma * z, t)
    target = z if reference is None else stable_target(x0, z, a, sigma, reference)
    return w.to(x0.dtype) * ((s + target / sigma) ** 2).sum(1)


def dsm_constant(target: Gaussian, process: Process, T: float, delta: float) -> float:
    """The DSM loss ("a3" weighting) of the exact score of a Gaussian target:
    (1/(T - delta)) int_delta^T [d / sigma_t^2 - tr(Sigma_t^{-1})] dt. The exact score minimises
    the loss, and the minimum is this constant."""
    lam = torch.linalg.eigvalsh(target.cov)

    def c(t: float) -> float:
        tau = float(process.ou_time(t))
        s2 = -math.expm1(-2 * tau)
        return target.dim / s2 - float((1 / (math.exp(-2 * tau) * lam + s2)).sum())

    val, _ = integrate.quad(c, delta, T, limit=200, epsabs=1e-12, epsrel=1e-12, points=[delta * 10, delta * 100])
    return val / (T - delta)
