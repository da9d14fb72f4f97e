"""diffusers' schedulers driven by an exact score, with their time-steps mapped to OU time exactly.

A diffusers scheduler with the DDPM training schedule (1000 steps, linear betas 1e-4..0.02) asks
for the noise prediction at timestep t. Its noise level there is the training
:math:`\\bar\\sigma(t) = \\sqrt{(1 - \\bar\\alpha_t)/\\bar\\alpha_t}`, interpolated linearly in t for
fractional timesteps (as diffusers' Euler schedulers do; exact at integers), which is OU time
:math:`\\tau = \\tfrac12\\log(1 + \\bar\\sigma^2)`. The exact score becomes the noise prediction
:math:`\\hat\\epsilon = -\\sigma_\\tau\\, s(x, \\tau)` with :math:`\\sigma_\\tau = \\sqrt{1 - e^{-2\\tau}}`.
Sample clipping and thresholding are off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..scores import ScoreFn


def _schedulers() -> dict[str, Callable[[], Any]]:
    import diffusers as D

    return {
        "ddpm": lambda: D.DDPMScheduler(clip_sample=False),
        "ddim": lambda: D.DDIMScheduler(clip_sample=False),
        "euler_ancestral": lambda: D.EulerAncestralDiscreteScheduler(),
        "dpmpp_2m": lambda: D.DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++"),
        "dpmpp_3m": lambda: D.DPMSolverMultistepScheduler(solver_order=3, algorithm_type="dpmsolver++"),
        "dpmpp_2m_sde": lambda: D.DPMSolverMultistepScheduler(solver_order=2, algorithm_type="sde-dpmsolver++"),
        "dpmpp_3m_sde": lambda: D.DPMSolverMultistepScheduler(solver_order=3, algorithm_type="sde-dpmsolver++"),
        "deis": lambda: D.DEISMultistepScheduler(),
        "unipc": lambda: D.UniPCMultistepScheduler(),
    }


PEERS = ("ddpm", "ddim", "euler_ancestral", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "dpmpp_3m_sde", "deis", "unipc")
DETERMINISTIC = {"ddim", "dpmpp_2m", "dpmpp_3m", "deis", "unipc"}


class DiffusersPeer:
    """A diffusers scheduler as an sgmlab sampler: ``peer(score, x_init, grid=None, *, process=None,
    generator=None, callback=None)`` runs ``nfe`` scheduler steps (one score evaluation each) from
    x_init ~ N(0, I); the grid is the scheduler's own (``grid`` is ignored)."""

    def __init__(self, name: str, nfe: int):
        if name not in PEERS:
            raise ValueError(f"unknown diffusers peer {name!r}; expected one of {PEERS}")
        self.name, self.nfe = name, int(nfe)
        self.deterministic = name in DETERMINISTIC

    def __repr__(self) -> str:
        return f"DiffusersPeer({self.name!r}, nfe={self.nfe})"

    def __call__(self, score: ScoreFn, x_init: torch.Tensor, grid: Any = None, *, process: Any = None,
                 generator: torch.Generator | None = None, callback: Any = None) -> torch.Tensor:
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)  # diffusers builds its tables assuming the default float32
        try:
            return self._run(score, x_init, generator)
        finally:
            torch.set_default_dtype(previous)

    def ou_grid(self) -> torch.Tensor:
        """The OU times of the scheduler's time-steps, then 0 where its last step goes to sigma = 0
        (DPM-Solver++, UniPC, DEIS with ``final_sigmas_type="zero"``): the grid on which sgmlab's
        samplers reproduce it (``UniPC(2)``, ``DPMSolverPP(3, lower_order_final=True)``)."""
        sched = _schedulers()[self.name]()
        sched.set_timesteps(self.nfe)
        times = _ou_times(sched)
        if getattr(sched.config, "final_sigmas_type", None) == "zero":
            times.append(0.0)
        return torch.tensor(times, dtype=torch.float64)

    def ou_path(self) -> torch.Tensor:
        """Every time the state passes through, in OU time: the scheduler's time-steps (where it
        evaluates the score), then where its last step ends (its last sigma, as a variance-exploding
        sigma^2 = e^(2 tau) - 1; DDIM's final alpha_bar; 0 for DDPM, whose last step draws x_0)."""
        sched = _schedulers()[self.name]()
        sched.set_timesteps(self.nfe)
        times = _ou_times(sched)
        sigmas = getattr(sched, "sigmas", None)
        if sigmas is not None and len(sigmas) == len(times) + 1:
            end = 0.5 * math.log1p(float(sigmas[-1]) ** 2)
        elif hasattr(sched, "final_alpha_cumprod"):
            end = max(0.0, -0.5 * math.log(float(sched.final_alpha_cumprod)))
        else:
            end = 0.0
        return torch.tensor(times + [end], dtype=torch.float64)

    def _run(self, score: ScoreFn, x_init: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        sched = _schedulers()[self.name]()
        sched.set_timesteps(self.nfe)
        return run_scheduler(sched, score, x_init, generator)


def run_scheduler(sched: Any, score: ScoreFn, x_init: torch.Tensor, generator: Any = None) -> torch.Tensor:
    """diffusers' sampling loop (as in ``DDPMPipeline``) for a scheduler whose ``set_timesteps`` was
    called, with the noise prediction of an exact score at the OU time of each timestep, in float64."""
    import inspect

    takes_generator = "generator" in inspect.signature(sched.step).parameters
    x = x_init.to(torch.float64) * float(sched.init_noise_sigma)
    for t, tau in zip(sched.timesteps, _ou_times(sched)):
        x_in = sched.scale_model_input(x, t)
        eps = -math.sqrt(-math.expm1(-2 * tau)) * score(x_in.to(torch.float64), tau)
        kw = {"generator": generator} if takes_generator else {}
        x = sched.step(eps, t, x, **kw).prev_sample.to(torch.float64)
    return x


def ou_time_of_timesteps(alphas_cumprod: Any, t: Any) -> np.ndarray:
    """OU time of (possibly fractional) training timesteps t: the training noise level
    sigma = sqrt((1 - abar) / abar) interpolated linearly in t, tau = log(1 + sigma^2) / 2."""
    abar = torch.as_tensor(alphas_cumprod).double().cpu().numpy()
    sig = np.interp(np.asarray(t, dtype=np.float64), np.arange(len(abar)), np.sqrt((1 - abar) / abar))
    return 0.5 * np.log1p(sig * sig)


def _ou_times(sched: Any) -> list[float]:
    """OU times of the scheduler's time-steps (:func:`ou_time_of_timesteps`)."""
    return ou_time_of_timesteps(sched.alphas_cumprod, sched.timesteps.double().cpu().numpy()).tolist()
