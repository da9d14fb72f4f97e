r"""sgmlab's samplers as diffusers schedulers (``set_timesteps`` / ``step``), for pipelines such as
``DDPMPipeline``: :class:`ExponentialIntegratorScheduler` (the paper's sampler) and
:class:`PlanScheduler` (DPM-Solver++ or UniPC on an sgmlab plan: the default for the budget, or a
plan tuned by :func:`sgmlab.tune`).

The trained model's schedule. A diffusers model is trained on a discrete schedule
:math:`\bar\alpha_0 > \dots > \bar\alpha_{K-1}` built from the config exactly as diffusers'
``DDPMScheduler`` builds it (float32 betas; ``linear``, ``scaled_linear``, ``squaredcos_cap_v2``,
``sigmoid``, ``laplace`` or ``trained_betas``). Timestep t is OU time
:math:`\tau = -\tfrac12\log\bar\alpha_t = \tfrac12\log(1 + \bar\sigma_t^2)`,
:math:`\bar\sigma_t^2 = (1 - \bar\alpha_t)/\bar\alpha_t`; between integers :math:`\bar\sigma` is
interpolated linearly in t (diffusers' Euler schedulers' convention), so plans may use any time of
the training range :math:`[\tau_0, \tau_{K-1}]` through fractional timesteps. With
:math:`\alpha = e^{-\tau}`, :math:`\sigma = \sqrt{1 - e^{-2\tau}}`, the model's output is converted
exactly: ``epsilon`` :math:`\hat\epsilon`: score :math:`-\hat\epsilon/\sigma`, data prediction
:math:`(x - \sigma\hat\epsilon)/\alpha`; ``v_prediction`` :math:`\hat v`:
:math:`\hat\epsilon = \sigma x + \alpha\hat v`, :math:`\hat x_0 = \alpha x - \sigma\hat v`;
``sample``: :math:`\hat x_0` itself, score :math:`(\alpha\hat x_0 - x)/\sigma^2`.

Honest configuration: every key that describes the trained model or changes the output is
honoured exactly or refused with an error naming it. ``variance_type`` ``learned`` or
``learned_range`` (the model outputs twice the channels) keeps the first half, as diffusers'
DPM-Solver does; ``clip_sample`` and ``thresholding`` act on the data prediction as in diffusers'
DDPM scheduler (the output then no longer equals the library sampler's);
``rescale_betas_zero_snr=True`` (infinite OU time at the last timestep) and
``timestep_type="continuous"`` are refused. Keys that configure another scheduler's own stepping
(``solver_order``, ``timestep_spacing``, ``use_karras_sigmas``, ...) do not apply to these
samplers; diffusers drops them on ``from_config``, as between its own schedulers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers, SchedulerMixin, SchedulerOutput
from diffusers.utils import is_torchsde_available

from .. import catalogue
from ..samplers.base import standard_normal_
from ..samplers.dpm_solver_pp import DPMSolverPP, step_weights
from ..samplers.unipc import UniPC, unipc_update
from .peers import ou_time_of_timesteps

ExponentialIntegratorOutput = SchedulerOutput  # the name of the step's output before it was diffusers' own

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid", "laplace")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range")
PLAN_SAMPLERS = (catalogue.DEFAULT, *catalogue.PLAN_SAMPLERS)


def _choice(name: str, value: Any, allowed: tuple) -> Any:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; expected one of {allowed}")
    return value


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _positive(name: str, value: Any, *, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value <= high):
        raise ValueError(f"{name} must be a number in (0, {high}]; got {value!r}")
    return float(value)


def training_betas(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
                   trained_betas: Any) -> torch.Tensor:
    """The betas diffusers' ``DDPMScheduler`` trains with (float32), checked: K of them, each in (0, 1)."""
    from diffusers import DDPMScheduler

    if isinstance(num_train_timesteps, bool) or not isinstance(num_train_timesteps, int) or num_train_timesteps < 2:
        raise ValueError(f"num_train_timesteps must be an integer >= 2; got {num_train_timesteps!r}")
    if trained_betas is None:
        _choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
        _positive("beta_start", beta_start, high=1.0)
        _positive("beta_end", beta_end, high=1.0)
    elif len(trained_betas) != num_train_timesteps:
        raise ValueError(f"trained_betas has {len(trained_betas)} values but num_train_timesteps is "
                         f"{num_train_timesteps}; they must agree")
    betas = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                          beta_schedule=beta_schedule, trained_betas=trained_betas).betas
    bad = ~(torch.isfinite(betas) & (betas > 0) & (betas < 1))
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise ValueError(f"betas must lie in (0, 1); beta[{k}] = {float(betas[k])}")
    return betas


class _TrainingSchedule(SchedulerMixin, ConfigMixin):
    """What both schedulers share: the training schedule, timestep <-> OU time, model output ->
    score or data prediction, ``add_noise``, noise from one generator or one per sample."""

    # diffusers' schedulers of a discrete DDPM training schedule (EDM's sigmas are another model
    # convention); DPMSolverSDEScheduler when its torchsde is installed.
    _compatibles = [e.name for e in KarrasDiffusionSchedulers if e.name != "EDMEulerScheduler"
                    and (e.name != "DPMSolverSDEScheduler" or is_torchsde_available())]
    order = 1
    init_noise_sigma = 1.0

    def _setup(self, num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
               trained_betas: Any, prediction_type: str, variance_type: str | None, clip_sample: bool,
               clip_sample_range: float, thresholding: bool, dynamic_thresholding_ratio: float,
               sample_max_value: float, rescale_betas_zero_snr: bool, timestep_type: str) -> None:
        _choice("prediction_type", prediction_type, PREDICTION_TYPES)
        _choice("variance_type", variance_type, VARIANCE_TYPES + (None,))
        _choice("timestep_type", timestep_type, ("discrete",))
        _flag("clip_sample", clip_sample)
        _flag("thresholding", thresholding)
        _positive("clip_sample_range", clip_sample_range)
        _positive("dynamic_thresholding_ratio", dynamic_thresholding_ratio, high=1.0)
        if not (isinstance(sample_max_value, (int, float)) and 1 <= sample_max_value < math.inf):
            raise ValueError(f"sample_max_value must be a finite number >= 1; got {sample_max_value!r}")
        if _flag("rescale_betas_zero_snr", rescale_betas_zero_snr):
            raise ValueError("rescale_betas_zero_snr=True puts the last timestep at infinite OU time (zero SNR), "
                             "where sgmlab's samplers cannot start; not supported")
        self.betas = training_betas(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # float32, as diffusers trains with
        abar = self.alphas_cumprod.double().numpy()
        self._sigma_bar = np.sqrt((1 - abar) / abar)  # increasing in t: timestep_for inverts ou_time
        self.timesteps: torch.Tensor | None = None
        self.num_inference_steps: int | None = None

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    @property
    def ou_range(self) -> tuple[float, float]:
        """OU times of the first and last training timesteps: where the model can be evaluated."""
        return float(self.ou_time(0)), float(self.ou_time(len(self) - 1))

    def ou_time(self, t: Any) -> Any:
        """OU time of (possibly fractional) training timesteps t in [0, K - 1]: a float or an array."""
        tau = ou_time_of_timesteps(self.alphas_cumprod, t)
        return float(tau) if np.ndim(tau) == 0 else tau

    def timestep_for(self, tau: Any) -> Any:
        """The (fractional) training timestep at OU time tau: the inverse of :meth:`ou_time`."""
        t = np.interp(np.sqrt(np.expm1(2 * np.asarray(tau, dtype=np.float64))), self._sigma_bar,
                      np.arange(len(self), dtype=np.float64))
        return float(t) if np.ndim(t) == 0 else t

    def _timestep(self, timestep: Any) -> float:
        if isinstance(timestep, torch.Tensor):
            if timestep.numel() == 0 or not bool((timestep.flatten() == timestep.flatten()[0]).all()):
                raise ValueError(f"step takes one timestep for the whole batch; got {timestep.tolist()}")
            timestep = timestep.flatten()[0].item()
        if isinstance(timestep, bool) or not isinstance(timestep, (int, float, np.integer, np.floating)):
            raise TypeError(f"timestep must be a number; got {type(timestep).__name__}")
        t = float(timestep)
        if not (0 <= t <= len(self) - 1):
            raise ValueError(f"timestep {t:g} is outside the training range [0, {len(self) - 1}]")
        if self.timesteps is not None:  # a scheduled timestep that went through float32 is that timestep
            ts = self.timesteps.double().cpu().numpy()
            near = np.flatnonzero(np.abs(ts - t) <= 1e-6 * np.maximum(1.0, np.abs(ts)))
            if near.size:
                return float(ts[near[0]])
        return t

    def scale_model_input(self, sample: torch.Tensor, timestep: Any = None) -> torch.Tensor:
        """The identity: a variance-preserving model takes the state as it is."""
        return sample

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: Any) -> torch.Tensor:
        r"""The forward process at training timesteps: :math:`\sqrt{\bar\alpha_t}x + \sqrt{1 - \bar\alpha_t}\epsilon`,
        computed as ``DDPMScheduler.add_noise`` does at integer timesteps (equal to it), and through
        the OU time of fractional ones."""
        if original_samples.shape != noise.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected the samples' {tuple(original_samples.shape)}")
        t = torch.as_tensor(timesteps, device=original_samples.device).flatten()
        if t.numel() not in (1, original_samples.shape[0]) or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"timesteps must be one number or one per sample; got {t.numel()} for a batch of "
                             f"{original_samples.shape[0]}")
        if not bool(torch.isfinite(t.double()).all()) or bool(((t < 0) | (t > len(self) - 1)).any()):
            raise ValueError(f"timesteps must lie in the training range [0, {len(self) - 1}]; got {t.tolist()}")
        if not t.is_floating_point() or bool((t == t.round()).all()):
            abar = self.alphas_cumprod.to(device=original_samples.device, dtype=original_samples.dtype)[t.long()]
        else:
            tau = torch.from_numpy(np.atleast_1d(self.ou_time(t.double().cpu().numpy())))
            abar = torch.exp(-2 * tau).to(device=original_samples.device, dtype=original_samples.dtype)
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        sqrt_alpha, sqrt_one_minus = (abar**0.5).reshape(shape), ((1 - abar) ** 0.5).reshape(shape)
        return sqrt_alpha * original_samples + sqrt_one_minus * noise

    # -- the model's output -------------------------------------------------------------------------
    def _model_output(self, model_output: Any, sample: torch.Tensor) -> torch.Tensor:
        if not isinstance(model_output, torch.Tensor):
            raise TypeError(f"model_output must be a tensor; got {type(model_output).__name__}")
        if self.config.variance_type in ("learned", "learned_range") and model_output.ndim >= 2 \
                and model_output.shape[1] == 2 * sample.shape[1]:
            model_output = model_output[:, : sample.shape[1]]
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output has shape {tuple(model_output.shape)}; expected the sample's "
                             f"{tuple(sample.shape)}" + (" (twice the channels with variance_type "
                                                         f"{self.config.variance_type!r})"
                                                         if self.config.variance_type in ("learned", "learned_range")
                                                         else ""))
        bad = int((~torch.isfinite(model_output)).sum())
        if bad:
            raise FloatingPointError(f"the model's output has {bad} NaN or infinite values (of {model_output.numel()}); "
                                     "a step from it would be NaN")
        return model_output

    def _limit(self, x0: torch.Tensor) -> torch.Tensor:
        """Dynamic thresholding (Saharia et al. 2022) or clipping of a data prediction, as diffusers does."""
        cfg = self.config
        if cfg.thresholding:
            flat = x0.reshape(x0.shape[0], -1)
            s = torch.quantile(flat.abs().float(), cfg.dynamic_thresholding_ratio, dim=1)
            s = s.clamp(min=1, max=cfg.sample_max_value).to(x0.dtype)[:, None]
            return (torch.maximum(torch.minimum(flat, s), -s) / s).reshape(x0.shape)
        if cfg.clip_sample:
            return x0.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)
        return x0

    @property
    def _limited(self) -> bool:
        return bool(self.config.thresholding or self.config.clip_sample)

    def data_prediction(self, model_output: torch.Tensor, x: torch.Tensor, tau: float, *,
                        limit: bool = True) -> torch.Tensor:
        r""":math:`\hat x_0` at state x and OU time tau from the model's output (module docstring);
        clipped or thresholded when the config says so and ``limit``."""
        a, s = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau))
        kind = self.config.prediction_type
        if kind == "epsilon":
            x0 = torch.add(x, model_output, alpha=-s).div_(a)
        elif kind == "v_prediction":
            x0 = torch.mul(x, a).add_(model_output, alpha=-s)
        else:
            x0 = model_output
        return self._limit(x0) if limit else x0

    def score(self, model_output: torch.Tensor, x: torch.Tensor, tau: float, *, limit: bool = True) -> torch.Tensor:
        r"""The score :math:`\nabla\log q_\tau(x)` the model's output stands for (module docstring);
        through the clipped or thresholded data prediction when the config says so and ``limit``."""
        a, s = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau))
        kind = self.config.prediction_type
        if limit and self._limited or kind == "sample":
            x0 = self.data_prediction(model_output, x, tau, limit=limit)
            return torch.mul(x0, a).sub_(x).div_(s * s)
        if kind == "epsilon":
            return model_output / -s
        return torch.mul(x, s).add_(model_output, alpha=a).div_(-s)  # v: eps = sigma x + alpha v

    def score_of(self, model: Any, shape: tuple[int, ...], *, limit: bool = True) -> Any:
        """An sgmlab score s(x, tau) for points x of shape (n, d), d = prod(shape), at OU time tau,
        from a diffusers model ``model(sample, timestep)`` (a ``UNet2DModel``, or any callable
        returning a tensor or an object with ``.sample``) trained on this schedule; for
        :func:`sgmlab.tune` (with ``t_range=self.ou_range``) or :func:`sgmlab.sample`.

        ``limit`` (default): through the clipped or thresholded data prediction when the config
        says so (``clip_sample``, ``thresholding``), the score :meth:`step` runs with in the
        pipeline, so that a plan is tuned for the score it will run with. A trained network's small
        errors at high noise become large errors of the data prediction (divided by alpha), which a
        deterministic sampler carries to its output; clipping bounds them as diffusers' DDPM and
        DDIM do (``benchmarks/trained_unet.md``). ``limit=False``: the model's own score."""
        _flag("limit", limit)
        shape = tuple(int(v) for v in shape)
        lo, hi = self.ou_range

        def s(x: torch.Tensor, tau: float) -> torch.Tensor:
            if not (lo * (1 - 1e-9) <= tau <= hi * (1 + 1e-9)):
                raise ValueError(f"OU time {tau:.6g} is outside the model's training range [{lo:.6g}, {hi:.6g}]")
            dtype = getattr(model, "dtype", x.dtype)
            xs = x.reshape(x.shape[0], *shape)
            t = torch.full((x.shape[0],), self.timestep_for(tau), dtype=torch.float64, device=x.device)
            with torch.no_grad():  # inference: the samplers write in place, which autograd forbids
                out = model(xs.to(dtype), t)
            out = self._model_output(getattr(out, "sample", out).detach(), xs).to(x.dtype)
            return self.score(out, xs, tau, limit=limit).reshape(x.shape)

        return s

    def _noise(self, like: torch.Tensor, generator: Any) -> torch.Tensor:
        """N(0, I) draws shaped like ``like``: from one generator (as the library samplers draw), or
        row i from ``generator[i]`` (a list, one per sample, as pipelines pass)."""
        gens = generator if isinstance(generator, (list, tuple)) else None
        if gens is not None and len(gens) != like.shape[0]:
            raise ValueError(f"got {len(gens)} generators for a batch of {like.shape[0]}; pass one per sample, "
                             "or a single generator")

        def draw(shape: tuple[int, ...], g: torch.Generator | None) -> torch.Tensor:
            device = g.device if g is not None else like.device
            return standard_normal_(torch.empty(shape, dtype=like.dtype, device=device), g).to(like.device)

        if gens is None:
            return draw(tuple(like.shape), generator)
        return torch.cat([draw((1, *like.shape[1:]), g) for g in gens])

    def _check_sample(self, sample: Any) -> None:
        if not isinstance(sample, torch.Tensor) or not sample.is_floating_point() or sample.ndim < 2:
            raise TypeError("sample must be a floating tensor of shape (batch, ...); got "
                            f"{tuple(sample.shape) if isinstance(sample, torch.Tensor) else type(sample).__name__}")
        bad = int((~torch.isfinite(sample)).sum())
        if bad:
            raise FloatingPointError(f"sample has {bad} NaN or infinite values (of {sample.numel()})")


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


class ExponentialIntegratorScheduler(_TrainingSchedule):
    r"""Chen et al.'s DDPM sampler (the exponential integrator) for diffusers pipelines. With the
    score s the model's output stands for (module docstring), a step from timestep t to the next
    one t' is :math:`x' = e^h x + 2(e^h - 1)s + \sqrt{e^{2h} - 1}\,\xi`, :math:`h = \tau_t - \tau_{t'}`.

    Timesteps are evenly spaced from K - 1 down to 1 (or given to ``set_timesteps``); the last step
    goes to timestep 0 (early stopping at :math:`\delta = \tau_0`). ``step`` also takes a timestep
    off the schedule and goes to the next scheduled time below it. ``ou_grid()`` is the same grid
    for :func:`sgmlab.samplers.exponential_integrator`, which this scheduler matches step for step
    with the same generator. A list of generators gives sample i its noise from generator i.
    """

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Any = None, prediction_type: str = "epsilon",
                 variance_type: str | None = "fixed_small", clip_sample: bool = False, clip_sample_range: float = 1.0,
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 rescale_betas_zero_snr: bool = False, timestep_type: str = "discrete"):
        self._setup(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type,
                    variance_type, clip_sample, clip_sample_range, thresholding, dynamic_thresholding_ratio,
                    sample_max_value, rescale_betas_zero_snr, timestep_type)
        self._times: list[float] = []  # the scheduled timesteps, then 0

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None,
                      timesteps: Any = None) -> None:
        K = len(self)
        if timesteps is not None:
            if num_inference_steps is not None:
                raise ValueError("pass num_inference_steps or timesteps, not both")
            ts = np.asarray(timesteps, dtype=np.float64).reshape(-1)
            if ts.size == 0 or not np.isfinite(ts).all() or (ts <= 0).any() or (ts > K - 1).any() \
                    or (np.diff(ts) >= 0).any():
                raise ValueError(f"timesteps must decrease strictly within (0, {K - 1}] (the last step goes to 0); "
                                 f"got {[float(v) for v in ts]}")
        else:
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)) \
                    or not (1 <= num_inference_steps <= K - 1):
                raise ValueError(f"num_inference_steps must be an integer in [1, {K - 1}]; got {num_inference_steps!r}")
            ts = np.round(np.linspace(K - 1, 1, int(num_inference_steps))).astype(np.int64)
        self.timesteps = torch.from_numpy(ts).to(device)
        self.num_inference_steps = len(ts)
        self._times = [float(v) for v in ts] + [0.0]

    def ou_grid(self) -> torch.Tensor:
        """OU times of the timesteps and of the final timestep 0: the sampler's grid."""
        if not self._times:
            raise ValueError("call set_timesteps first")
        return torch.tensor([self.ou_time(t) for t in self._times], dtype=torch.float64)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, generator: Any = None,
             return_dict: bool = True) -> SchedulerOutput | tuple[torch.Tensor]:
        if not self._times:
            raise ValueError("call set_timesteps before step")
        self._check_sample(sample)
        t = self._timestep(timestep)
        below = [v for v in self._times if v < t]
        if not below:
            raise ValueError(f"timestep {t:g} is where the schedule ends (early stopping at timestep 0); "
                             "there is no step from it")
        tau, tau_next = self.ou_time(t), self.ou_time(below[0])
        h = tau - tau_next
        x = sample.to(_compute_dtype(sample))
        s = self.score(self._model_output(model_output, sample).to(x.dtype), x, tau)
        noise = self._noise(x, generator)
        prev = (math.exp(h) * x + 2 * math.expm1(h) * s + math.sqrt(math.expm1(2 * h)) * noise).to(sample.dtype)
        return SchedulerOutput(prev) if return_dict else (prev,)


def _plan_sampler(name: str) -> Any:
    from .. import samplers

    return getattr(samplers, _choice("plan_sampler", name, PLAN_SAMPLERS[1:]))


def _plan_sampler_name(sampler: Any) -> str:
    for name in PLAN_SAMPLERS[1:]:
        if _plan_sampler(name) == sampler:
            return name
    raise ValueError(f"a PlanScheduler runs {', '.join(PLAN_SAMPLERS[1:])}; this plan's sampler is {sampler!r}")


class PlanScheduler(_TrainingSchedule):
    r"""An sgmlab plan in a diffusers pipeline: DPM-Solver++ or UniPC (data prediction, multistep)
    on the plan's OU times, which it asks the model for at (fractional) training timesteps.

    With ``plan_grid=None`` the plan is :func:`sgmlab.default_plan` for the pipeline's
    ``num_inference_steps``, its start and delta clamped into the model's range :attr:`ou_range`
    (``plan_sampler`` may replace its sampler). With ``plan_grid`` (OU times, decreasing, the last
    possibly 0 for the denoising step) the plan is fixed: use :meth:`from_plan` with a
    :class:`sgmlab.defaults.SamplePlan`, a :class:`sgmlab.TunedPlan`, or a plan file written by
    ``sgmlab tune``; the pipeline must then ask for the plan's number of evaluations.

    One model evaluation per timestep; ``step`` matches the library sampler step for step
    (:attr:`plan` is the :class:`~sgmlab.defaults.SamplePlan` to pass to :func:`sgmlab.sample`).
    A step from a time that is not where the previous step ended starts a new history (first
    order), so ``step`` accepts any timestep of the training range; it goes to the next plan time
    below it.
    """

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Any = None, prediction_type: str = "epsilon",
                 variance_type: str | None = "fixed_small", clip_sample: bool = False, clip_sample_range: float = 1.0,
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 rescale_betas_zero_snr: bool = False, timestep_type: str = "discrete",
                 plan_sampler: str = "default", plan_grid: list[float] | None = None):
        self._setup(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, prediction_type,
                    variance_type, clip_sample, clip_sample_range, thresholding, dynamic_thresholding_ratio,
                    sample_max_value, rescale_betas_zero_snr, timestep_type)
        _choice("plan_sampler", plan_sampler, PLAN_SAMPLERS)
        if plan_grid is not None:
            if plan_sampler == "default":
                raise ValueError("a fixed plan_grid needs its plan_sampler (e.g. 'dpm_solver_pp_3m')")
            self._check_grid(plan_grid)
        self._grid: list[float] = []
        self._sampler: Any = None
        self._reset()

    @classmethod
    def from_plan(cls, plan: Any, **config: Any) -> PlanScheduler:
        """A scheduler for a fixed plan: a ``SamplePlan``, a ``TunedPlan`` (OU time, the default
        process), or the path of a plan file written by ``sgmlab tune`` / ``TunedPlan.save``;
        ``config`` gives the model's training schedule (``num_train_timesteps``, ``beta_schedule``,
        ``prediction_type``, ...)."""
        if isinstance(plan, (str, Path)):
            from ..tuning import TunedPlan

            plan = TunedPlan.load(plan)
        if not all(hasattr(plan, a) for a in ("sampler", "grid", "evaluations")):
            raise TypeError(f"plan must be a SamplePlan, a TunedPlan or a plan file; got {type(plan).__name__}")
        # a pipeline's whole scheduler config is welcome (``**pipe.scheduler.config``): keys of other
        # schedulers' stepping are dropped as diffusers' from_config drops them, and the plan's own win
        mine = ("plan_sampler", "plan_grid")
        config = {k: v for k, v in config.items() if k not in mine}
        if "_use_default_values" in config:  # diffusers would put the defaults back for keys listed there
            config["_use_default_values"] = [k for k in config["_use_default_values"] if k not in mine]
        return cls.from_config({**config, "plan_sampler": _plan_sampler_name(plan.sampler),
                                "plan_grid": [float(v) for v in torch.as_tensor(plan.grid).tolist()]})

    def _check_grid(self, grid: Any) -> list[float]:
        g = np.asarray(grid, dtype=np.float64).reshape(-1)
        lo, hi = self.ou_range
        pos = g[g > 0] if g.size and g[-1] == 0 else g
        if g.size < 2 or not np.isfinite(g).all() or (np.diff(g) >= 0).any() or (g < 0).any():
            raise ValueError("plan_grid must be at least two OU times decreasing to delta > 0 or to 0; got "
                             f"{[float(v) for v in g]}")
        bad = pos[(pos < lo * (1 - 1e-9)) | (pos > hi * (1 + 1e-9))]
        if bad.size:
            raise ValueError(f"plan time {bad[0]:.6g} is outside the model's training range [{lo:.6g}, {hi:.6g}] "
                             "(OU time); tune the plan with t_range=scheduler.ou_range")
        return [float(v) for v in g]

    def _reset(self) -> None:
        self._hist: list[tuple[float, torch.Tensor]] = []  # (log-SNR, data prediction), newest last
        self._last: tuple[torch.Tensor, int, float, float] | None = None  # UniPC: start state, order, lam, sigma
        self._end: float | None = None  # OU time where the previous step ended

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None,
                      timesteps: Any = None) -> None:
        from ..defaults import default_plan

        cfg = self.config
        if timesteps is not None:
            if num_inference_steps is not None:
                raise ValueError("pass num_inference_steps or timesteps, not both")
            ts = np.asarray(timesteps, dtype=np.float64).reshape(-1)
            if ts.size == 0 or not np.isfinite(ts).all() or (ts < 0).any() or (ts > len(self) - 1).any():
                raise ValueError(f"timesteps must lie in [0, {len(self) - 1}]; got {[float(v) for v in ts]}")
            grid = self._check_grid(list(self.ou_time(ts)) + [0.0])
            name = cfg.plan_sampler
            sampler = default_plan(len(ts)).sampler if name == "default" else _plan_sampler(name)
        elif cfg.plan_grid is not None:
            grid = self._check_grid(cfg.plan_grid)
            if num_inference_steps is not None and num_inference_steps != len(grid) - 1:
                raise ValueError(f"this scheduler holds a fixed plan of {len(grid) - 1} evaluations; call the "
                                 f"pipeline with num_inference_steps={len(grid) - 1} (got {num_inference_steps})")
            sampler = _plan_sampler(cfg.plan_sampler)
        else:
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)) \
                    or num_inference_steps < 1:
                raise ValueError(f"num_inference_steps must be an integer >= 1; got {num_inference_steps!r}")
            plan = default_plan(int(num_inference_steps), t_range=self.ou_range)
            grid = self._check_grid(plan.grid.tolist())
            sampler = plan.sampler if cfg.plan_sampler == "default" else _plan_sampler(cfg.plan_sampler)
        self._grid, self._sampler = grid, sampler
        ts = self.timestep_for(np.array(grid[:-1]))
        on_mps = torch.device(device).type == "mps" if device is not None else False
        self.timesteps = torch.from_numpy(np.atleast_1d(ts)).to(device, torch.float32 if on_mps else torch.float64)
        self.num_inference_steps = len(grid) - 1
        self._reset()

    @property
    def plan(self) -> Any:
        """The :class:`sgmlab.defaults.SamplePlan` this scheduler runs (after ``set_timesteps``):
        ``sg.sample(score, n, d, nfe=plan.evaluations, plan=plan)`` runs the same sampler."""
        from ..defaults import SamplePlan

        if not self._grid:
            raise ValueError("call set_timesteps first")
        return SamplePlan(self._sampler, torch.tensor(self._grid, dtype=torch.float64), len(self._grid) - 1)

    def _times(self, timestep: Any) -> tuple[float, float, int]:
        """OU time of ``timestep``, the next plan time below it, and the steps left after this one."""
        t = self._timestep(timestep)
        ts = self.timesteps.tolist()
        if t in ts:
            i = ts.index(t)
            return self._grid[i], self._grid[i + 1], len(ts) - 1 - i
        tau = self.ou_time(t)
        below = [v for v in self._grid if v < tau]
        if not below:
            raise ValueError(f"timestep {t:g} (OU time {tau:.6g}) is at or below the plan's last time; "
                             "there is no step from it")
        return tau, below[0], len(below) - 1

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, generator: Any = None,
             return_dict: bool = True) -> SchedulerOutput | tuple[torch.Tensor]:
        """One step of the plan's sampler from ``timestep`` (deterministic: ``generator`` is not used)."""
        if not self._grid:
            raise ValueError("call set_timesteps before step")
        self._check_sample(sample)
        tau, tau_next, left = self._times(timestep)
        if self._end != tau:  # not where the previous step ended: a new history
            self._reset()
        x = sample.to(_compute_dtype(sample))
        m = self.data_prediction(self._model_output(model_output, sample).to(x.dtype), x, tau)
        prev = self._update(x, m, tau, tau_next, left)
        self._end = tau_next
        prev = prev.to(sample.dtype)
        return SchedulerOutput(prev) if return_dict else (prev,)

    def _update(self, x: torch.Tensor, m: torch.Tensor, tau: float, tau_next: float, left: int) -> torch.Tensor:
        """The library samplers' step (:class:`sgmlab.samplers.DPMSolverPP`, :class:`sgmlab.samplers.UniPC`)
        from OU time tau to tau_next, with the history kept between calls."""
        alpha, sigma = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau))
        alpha_n, sigma_n = math.exp(-tau_next), math.sqrt(-math.expm1(-2 * tau_next))
        lam = math.log(alpha / sigma)
        lam_n = math.log(alpha_n / sigma_n) if sigma_n > 0 else math.inf
        sp = self._sampler
        order = sp.order
        cap = left + 1 if sp.lower_order_final else order
        if isinstance(sp, UniPC):
            if sp.corrector and self._last is not None:
                x_prev, k, lam_p, sigma_p = self._last
                x = unipc_update(x_prev, lam_p, lam, alpha, sigma / sigma_p, self._hist[-k:], m)
            self._hist = (self._hist + [(lam, m)])[-order:]
            if sigma_n == 0:
                return alpha_n * m
            k = min(order, len(self._hist), cap)
            self._last = (x, k, lam, sigma)
            return unipc_update(x, lam, lam_n, alpha_n, sigma_n / sigma, self._hist[-k:], None)
        assert isinstance(sp, DPMSolverPP)
        self._hist = (self._hist + [(lam, m)])[-3:]
        if sigma_n == 0:
            return alpha_n * m
        k = min(order, len(self._hist), cap)
        out = torch.mul(x, sigma_n / sigma)
        lams = [v for v, _ in self._hist[-k:]] + [lam_n]
        for c, (_, mj) in zip(step_weights(k, lams, alpha_n), reversed(self._hist)):
            out.add_(mj, alpha=c)
        return out


def load_pipeline(folder: str | Path) -> tuple[Any, PlanScheduler, tuple[int, ...]]:
    """The denoising network of a diffusers pipeline saved with ``save_pretrained`` in ``folder``
    (its ``unet``), a :class:`PlanScheduler` on the pipeline's own training schedule (read from its
    scheduler's config), and the shape of one sample, (channels, height, width)."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"--diffusers {folder}: no model_index.json there; save the pipeline with "
                         "pipe.save_pretrained(folder)")
    from diffusers import DiffusionPipeline

    try:
        pipe = DiffusionPipeline.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"--diffusers {folder}: diffusers cannot load the pipeline ({type(e).__name__}: {e})") from None
    unet = getattr(pipe, "unet", None)
    if unet is None or getattr(pipe, "scheduler", None) is None:
        raise ValueError(f"--diffusers {folder}: the pipeline has no unet and scheduler to tune a plan for "
                         f"({type(pipe).__name__})")
    size = unet.config.sample_size
    hw = (size, size) if isinstance(size, int) else tuple(size)
    sched = PlanScheduler.from_config(dict(pipe.scheduler.config))
    return unet, sched, (int(unet.config.in_channels), *map(int, hw))
