"""Score networks: an MLP with a time embedding for vectors of any d, and a small U-Net for
8x8 single-channel images. Both map (x of shape (n, d), c_noise of shape (n,)) to (n, d); the
time enters through c_noise = log(sigma_t) / 4 (EDM's conditioning)."""

from __future__ import annotations

import math

import torch
from torch import nn


EMBEDDINGS = ("v1", "log")


class FourierEmbedding(nn.Module):
    """[sin(w_k c), cos(w_k c)], k = 0..n-1, of c_noise = log(sigma_t) / 4 (about [-0.8, 0] for OU
    times in [1e-3, 5]). ``"log"``: w_k log-spaced from 0.5 to 100, so that the slowest feature is
    monotone over that range and the fastest turns about a dozen times; ``"v1"`` (models trained
    before): w_k = 2^k pi / 8, whose fastest features turn thousands of times there. The frequencies
    are a buffer, saved with the model."""

    def __init__(self, n: int = 16, kind: str = "v1"):
        super().__init__()
        if kind not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}; got {kind!r}")
        freqs = (2.0 ** torch.arange(n, dtype=torch.float32) * math.pi / 8 if kind == "v1"
                 else 2.0 ** torch.linspace(-1.0, math.log2(100.0), n, dtype=torch.float32))
        self.register_buffer("freqs", freqs)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        arg = c[:, None] * self.freqs
        return torch.cat([arg.sin(), arg.cos()], 1)


class MLP(nn.Module):
    """Residual MLP: input [x, embedding(c_noise)], ``depth`` hidden layers of width ``hidden``."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, embedding: int = 16, out_dim: int | None = None,
                 embedding_kind: str = "v1"):
        super().__init__()
        self.dim, self.hidden, self.depth = dim, hidden, depth
        out_dim = dim if out_dim is None else out_dim
        self.embed = FourierEmbedding(embedding, embedding_kind)
        self.inp = nn.Linear(dim + 2 * embedding, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        h = self.inp(torch.cat([x, self.embed(c_noise)], 1))
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.temb = nn.Linear(emb, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.norm1 = nn.GroupNorm(min(8, cin), cin)
        self.norm2 = nn.GroupNorm(8, cout)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.temb(e)[:, :, None, None]
        h = self.conv2(nn.functional.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet8(nn.Module):
    """A small U-Net for 8x8 single-channel images (flattened to d = 64): 8x8 -> 4x4 -> 8x8."""

    side = 8

    def __init__(self, dim: int = 64, channels: int = 32, embedding: int = 16, embedding_kind: str = "v1"):
        super().__init__()
        if dim != self.side * self.side:
            raise ValueError(f"UNet8 works on 8x8 images (d = 64); got d = {dim}")
        self.dim, self.channels = dim, channels
        c, e = channels, 2 * embedding
        self.embed = nn.Sequential(FourierEmbedding(embedding, embedding_kind), nn.Linear(e, e), nn.SiLU())
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.down1 = _Block(c, c, e)
        self.pool = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.mid = _Block(2 * c, 2 * c, e)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.up1 = _Block(2 * c, c, e)
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        e = self.embed(c_noise)
        h0 = self.down1(self.inp(x.view(-1, 1, self.side, self.side)), e)
        h = self.mid(self.pool(h0), e)
        h = self.up1(torch.cat([self.up(h), h0], 1), e)
        return self.out(h).view(x.shape[0], self.dim)


def build(kind: str, dim: int, hidden: int = 128, depth: int = 3, out_dim: int | None = None,
          embedding: str = "v1") -> nn.Module:
    """The network named by a config: ``"mlp"`` (width ``hidden``, ``depth`` blocks; input ``dim``,
    output ``out_dim``, default ``dim``) or ``"unet8"`` (``hidden`` channels)."""
    if kind not in ("mlp", "unet8"):
        raise ValueError(f"net must be 'mlp' or 'unet8'; got {kind!r}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the same float32 initialisation whatever the caller's default
    try:
        if kind == "unet8" and out_dim not in (None, dim):
            raise ValueError("unet8 maps images to images; CLD velocity scores need net='mlp'")
        return (MLP(dim, hidden, depth, out_dim=out_dim, embedding_kind=embedding) if kind == "mlp"
                else UNet8(dim, channels=hidden, embedding_kind=embedding))
    finally:
        torch.set_default_dtype(previous)
