"""A trained score: network + parametrization + process + data standardization, and the box of
the training data onto which the sampler's denoised estimates are projected."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..processes import OU, Process
from . import parametrization as param


@dataclass(frozen=True)
class Standardizer:
    """x_std = (x - mean) / scale; stored with the model and undone on sampling."""

    mean: torch.Tensor
    scale: torch.Tensor

    @classmethod
    def fit(cls, data: torch.Tensor, kind: str = "feature") -> Standardizer:
        """``"feature"``: per column; ``"global"``: one mean and scale (images); ``"none"``."""
        d = data.shape[1]
        if kind == "feature":
            return cls(data.mean(0), data.std(0).clamp_min(1e-8))
        if kind == "global":
            return cls(data.mean().expand(d).clone(), data.std().clamp_min(1e-8).expand(d).clone())
        if kind == "none":
            return cls(torch.zeros(d, dtype=data.dtype), torch.ones(d, dtype=data.dtype))
        raise ValueError(f"standardize must be 'feature', 'global' or 'none'; got {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.scale.to(x)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x) + self.mean.to(x)


class ScoreModel(nn.Module):
    """s_theta(x, t) from a network: ``forward(x, t)`` with t of shape (n,) in the process's clock.

    ``score_fn()`` gives the sampler contract ``s(x, t_float)``: the state stays in its own dtype
    (float64 for the samplers), only the network runs in float32, without gradients. With a
    ``box`` (lo, hi), the box of the training data in the model's units, ``score_fn()`` projects
    the denoised estimate onto it (:func:`box_score`); ``forward`` (training) never does.
    """

    def __init__(self, net: nn.Module, parametrization: str = "noise", process: Process | None = None,
                 box: tuple[torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        self.net = net
        self.parametrization = param.check(parametrization)
        self.process = OU() if process is None else process
        self.box = box

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tau = self.process.ou_time(t.detach().to(torch.float64))
        return torch.exp(-tau).to(t.device), torch.sqrt(-torch.expm1(-2 * tau)).to(t.device)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sigma = (c.to(x.dtype)[:, None] for c in self.coefficients(t))
        out = self.net(x, (sigma.log() / 4).squeeze(1))
        return param.to_score(self.parametrization, out, x, a, sigma)

    def score_fn(self):
        score = sampler_score(self)
        return score if self.box is None else box_score(score, self.process, *self.box)


def data_box(x: torch.Tensor, kind: str = "feature") -> tuple[torch.Tensor, torch.Tensor]:
    """The box of data x (n, d): per column, or one range for all columns when ``kind`` is
    ``"global"`` (images: the pixel range), as float64 (lo, hi) of shape (d,); ``kind`` follows
    the standardization's names."""
    if kind not in ("feature", "global", "none"):
        raise ValueError(f"kind must be 'feature', 'global' or 'none' (per column); got {kind!r}")
    x = x.detach().to(torch.float64)
    if kind == "global":
        return x.min().expand(x.shape[1]).clone(), x.max().expand(x.shape[1]).clone()
    return x.min(0).values, x.max(0).values


BOX_MAX_SNR = 4.0  # the box acts where a_t^2 / sigma_t^2 <= 4: benchmarks/recipe_vs_diffusers.md


def box_score(score, process: Process, lo: torch.Tensor, hi: torch.Tensor, max_snr: float = BOX_MAX_SNR):
    r"""The score whose denoised estimate is projected onto the box [lo, hi] at the noise levels where
    the signal-to-noise ratio :math:`a_t^2/\sigma_t^2` is at most ``max_snr`` (``inf``: at every t).

    The denoised estimate of s at x_t = a x_0 + sigma z is Tweedie's :math:`\hat x_0 = (x + \sigma^2
    s)/a`; the result is :math:`s + a(\Pi(\hat x_0) - \hat x_0)/\sigma^2` with :math:`\Pi` the
    projection onto the box: s itself, bitwise, wherever the estimate lies in the box. When the
    law's own denoiser E[x_0 | x_t] lies in the box (always for the empirical law of the data
    whose box it is: it is a mean of data rows), the projection can only bring the estimate nearer
    to it, coordinate by coordinate, so the score error does not grow at any x and t. A model
    extrapolating far outside the data (an MLP grows linearly there) is what it stops: samples no
    longer run away in the tails. At little noise the denoiser of the data's law is nearly x_t
    itself, which can lie beyond the box of a finite sample (a law with tails); there the box
    stays off."""
    lo, hi = torch.as_tensor(lo, dtype=torch.float64), torch.as_tensor(hi, dtype=torch.float64)
    if lo.shape != hi.shape or lo.ndim != 1 or not bool((lo <= hi).all()):
        raise ValueError("a box needs two vectors of one length with lo <= hi (and no NaN)")
    if not max_snr >= 0:
        raise ValueError(f"max_snr must be >= 0; got {max_snr}")

    def boxed(x: torch.Tensor, t: float) -> torch.Tensor:
        s = score(x, t)
        a, var = float(process.mean_coef(t)), float(process.std(t)) ** 2
        if a * a > max_snr * var:
            return s
        d = (x + var * s) / a
        return s + (a / var) * (torch.clamp(d, lo.to(d), hi.to(d)) - d)

    return boxed


def sampler_score(model: nn.Module):
    """The sampler contract s(x, t_float) for a module ``model(x, t)`` with t of shape (n,): the state
    keeps its dtype and device, the network runs in its own (float32), without gradients."""
    p = next(model.parameters())

    @torch.no_grad()
    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((x.shape[0],), float(t), dtype=torch.float64, device=p.device)
        return model(x.to(device=p.device, dtype=p.dtype), tt).to(device=x.device, dtype=x.dtype)

    return score
