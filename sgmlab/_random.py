"""Gaussian noise for the samplers and the prior: float64 draws with exact tails, cheaper than inverting
every draw."""

from __future__ import annotations

import math

import torch

TAIL = 3.0  # standard_normal_: beyond |z| = TAIL, float64 draws come from exact inversion
_TAIL_MASS = 0.5 * math.erfc(TAIL / math.sqrt(2.0))  # P(Z > TAIL)
CHUNK = 1 << 22  # standard_normal_: float32 draws per piece (16 MiB; rounded down to a multiple of 16)


def standard_normal_(out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``out`` with independent N(0, 1) draws, in place.

    float64: a composition with exact tails. torch's float32 ``normal_`` (Box-Muller on 24-bit
    uniforms) gives the body; every draw beyond ``TAIL`` = 3 (0.27% of them) is replaced by an
    exact draw of the tail, sign kept, by float64 inversion: ``|z| = -ndtri(U P(Z > 3))`` with U
    uniform on 53 bits, so tails reach beyond 8 standard deviations with their exact law, where
    float32 Box-Muller alone stops at 5.8. Cheaper than inverting every draw in float64
    (``benchmarks/bench_core.py`` times both); the body's density and the tail law are tested
    against N(0, 1) in ``tests/test_samplers.py``. Other dtypes use ``normal_``.

    The float32 body is drawn ``CHUNK`` numbers at a time (torch's ``normal_`` gives the same
    numbers in pieces of a multiple of 16, the last at least 16, as in one call), so the working
    memory beside ``out`` does not grow with its size; the tails follow, in one draw.
    """
    if out.dtype != torch.float64:
        return out.normal_(generator=generator)
    if not out.is_contiguous():  # a strided view: draw into a contiguous buffer, the same numbers
        return out.copy_(standard_normal_(torch.empty(out.shape, dtype=out.dtype, device=out.device), generator))
    from .samplers import _fused  # a one-pass scan for the tail positions on the CPU

    flat = out.view(-1)
    n = flat.numel()
    edges = [*range(0, n, max(16, CHUNK // 16 * 16)), n]
    if len(edges) > 2 and n - edges[-2] < 16:
        edges.pop(-2)
    z = torch.empty(min(n, CHUNK + 16), dtype=torch.float32, device=out.device)
    far, signs = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        piece = z[:hi - lo].normal_(generator=generator)
        flat[lo:hi].copy_(piece)
        at = _fused.tail_positions(piece)
        far.append(at + lo)
        signs.append(piece[at])
    if far and (at := torch.cat(far)).numel():
        flat[at] = tail_draws(torch.cat(signs), generator)
    return out


def add_noise_(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x += std * z`` in place, z independent N(0, 1) draws: for float64 those of
    :func:`standard_normal_` (the same draws from the same generator state, the same sums bitwise),
    without materialising z in float64, which saves two passes over the state."""
    if x.dtype != torch.float64:
        return x.add_(torch.empty_like(x).normal_(generator=generator), alpha=std)
    if not x.is_contiguous():  # a strided view: draw into a contiguous buffer, the same numbers
        return x.add_(add_noise_(torch.zeros(x.shape, dtype=x.dtype, device=x.device), 1.0, generator), alpha=std)
    from .samplers import _fused  # the tail positions, found as standard_normal_ finds them

    z = torch.empty(x.shape, dtype=torch.float32, device=x.device).normal_(generator=generator).view(-1)
    flat = x.view(-1)
    far = _fused.tail_positions(z)
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
