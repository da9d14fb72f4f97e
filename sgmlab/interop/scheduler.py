"""The paper's exponential integrator as a diffusers scheduler (``set_timesteps`` / ``step``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..samplers.base import standard_normal_


@dataclass
class ExponentialIntegratorOutput:
    prev_sample: torch.Tensor


class ExponentialIntegratorScheduler(SchedulerMixin, ConfigMixin):
    r"""Chen et al.'s DDPM sampler (the exponential integrator) for diffusers pipelines: noise prediction in,
    sample out. With the training schedule's :math:`\bar\alpha_t`, OU time is
    :math:`\tau_t = -\tfrac12\log\bar\alpha_t`, the score :math:`-\hat\epsilon/\sqrt{1 - \bar\alpha_t}`, and a
    step from timestep t to the next one t' is
    :math:`x' = e^h x + 2(e^h - 1)s + \sqrt{e^{2h} - 1}\,\xi`, :math:`h = \tau_t - \tau_{t'}`.
    Timesteps are evenly spaced from T - 1 down to 1; the last step goes to timestep 0 (early
    stopping at :math:`\delta = \tau_0`). ``ou_grid()`` is the same grid for
    :func:`sgmlab.samplers.exponential_integrator`, which this scheduler matches step for step.
    """

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64)
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)
        self.init_noise_sigma = 1.0
        self.timesteps: torch.Tensor | None = None
        self._next: dict[int, int] = {}

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        K = self.config.num_train_timesteps
        if not (1 <= num_inference_steps <= K - 1):
            raise ValueError(f"num_inference_steps must be in [1, {K - 1}]; got {num_inference_steps}")
        ts = np.round(np.linspace(K - 1, 1, num_inference_steps)).astype(np.int64)
        self.timesteps = torch.from_numpy(ts).to(device)
        self._next = dict(zip(ts.tolist(), ts[1:].tolist() + [0]))

    def ou_time(self, t: int) -> float:
        return -0.5 * math.log(float(self.alphas_cumprod[int(t)]))

    def ou_grid(self) -> torch.Tensor:
        """OU times of the timesteps and of the final timestep 0: the sampler's grid."""
        ts = self.timesteps.tolist()
        return torch.tensor([self.ou_time(t) for t in ts] + [self.ou_time(0)], dtype=torch.float64)

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        return sample

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True):
        t = int(timestep)
        if t not in self._next:
            raise ValueError(f"timestep {t} is not one of this scheduler's timesteps; call set_timesteps first")
        h = self.ou_time(t) - self.ou_time(self._next[t])
        s = -model_output / math.sqrt(1 - float(self.alphas_cumprod[t]))
        noise = standard_normal_(torch.empty_like(sample), generator)
        prev = math.exp(h) * sample + 2 * math.expm1(h) * s + math.sqrt(math.expm1(2 * h)) * noise
        return ExponentialIntegratorOutput(prev) if return_dict else (prev,)
