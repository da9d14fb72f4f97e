"""Gaussian noise for the samplers and the prior: float64 draws with exact tails, cheaper than inverting
every draw."""

from __future__ import annotations

import math

import torch

TAIL = 3.0  # standard_normal_: beyond |z| = TAIL, float64 draws come from exact inversion
_TAIL_MASS = 0.5 * math.erfc(TAIL / math.sqrt(2.0))  # P(Z > TAIL)


def standard_normal_(out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``out`` with independent N(0, 1) draws, in place.

    float64: a composition with exact tails. torch's float32 ``normal_`` (Box-Muller on 24-bit
    uniforms) gives the body; every draw beyond ``TAIL`` = 3 (0.27% of them) is replaced by an
    exact draw of the tail, sign kept, by float64 inversion: ``|z| = -ndtri(U P(Z > 3))`` with U
    uniform on 53 bits, so tails reach beyond 8 standard deviations with their exact law, where
    float32 Box-Muller alone stops at 5.8. Cheaper than inverting every draw in float64
    (``benchmarks/bench_core.py`` times both); the body's density and the tail law are tested
    against N(0, 1) in ``tests/test_samplers.py``. Other dtypes use ``normal_``.
    """
    if out.dtype != torch.float64:
        return out.normal_(generator=generator)
    from .samplers import _fused  # the same draws without torch's passes, where its kernels apply

    fused = _fused.standard_normal_(out, generator)
    return add_noise_(out.zero_(), 1.0, generator) if fused is None else fused


def add_noise_(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x += std * z`` in place, z independent N(0, 1) draws: for float64 those of
    :func:`standard_normal_` (the same draws from the same generator state, the same sums bitwise),
    without materialising z in float64, which saves two passes over the state."""
    if x.dtype != torch.float64:
        return x.add_(torch.empty_like(x).normal_(generator=generator), alpha=std)
    if not x.is_contiguous():  # a strided view: draw into a contiguous buffer, the same numbers
        return x.add_(add_noise_(torch.zeros(x.shape, dtype=x.dtype, device=x.device), 1.0, generator), alpha=std)
    z = torch.empty(x.shape, dtype=torch.float32, device=x.device).normal_(generator=generator).view(-1)
    flat = x.view(-1)
    far = (z.abs() > TAIL).nonzero().squeeze(1)
    before = flat[far]  # a copy (0.27% of the entries)
    flat.add_(z, alpha=std)
    if far.numel():
        flat[far] = before.add_(tail_draws(z[far], generator), alpha=std)
    return x


def tail_draws(signs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Exact float64 draws of N(0, 1) conditioned on ``|z| > TAIL``, one per entry of ``signs`` and
    with its sign, by inversion of 53-bit uniforms from ``generator``."""
    u = torch.empty(signs.shape, dtype=torch.float64, device=signs.device).uniform_(generator=generator)
    return torch.special.ndtri(u.clamp_(min=2.0**-53).mul_(_TAIL_MASS)).neg_().copysign_(signs.double())
