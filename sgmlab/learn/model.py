"""A trained score: network + parametrization + process + data standardization."""

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
    (float64 for the samplers), only the network runs in float32, without gradients.
    """

    def __init__(self, net: nn.Module, parametrization: str = "noise", process: Process | None = None):
        super().__init__()
        self.net = net
        self.parametrization = param.check(parametrization)
        self.process = OU() if process is None else process

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tau = self.process.ou_time(t.detach().to(torch.float64))
        return torch.exp(-tau).to(t.device), torch.sqrt(-torch.expm1(-2 * tau)).to(t.device)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, sigma = (c.to(x.dtype)[:, None] for c in self.coefficients(t))
        out = self.net(x, (sigma.log() / 4).squeeze(1))
        return param.to_score(self.parametrization, out, x, a, sigma)

    def score_fn(self):
        return sampler_score(self)


def sampler_score(model: nn.Module):
    """The sampler contract s(x, t_float) for a module ``model(x, t)`` with t of shape (n,): the state
    keeps its dtype and device, the network runs in its own (float32), without gradients."""
    p = next(model.parameters())

    @torch.no_grad()
    def score(x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((x.shape[0],), float(t), dtype=torch.float64, device=p.device)
        return model(x.to(device=p.device, dtype=p.dtype), tt).to(device=x.device, dtype=x.dtype)

    return score
