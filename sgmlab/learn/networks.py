"""Score networks: an MLP with a time embedding for vectors of any d, and a small U-Net for
8x8 single-channel images. Both map (x of shape (n, d), c_noise of shape (n,)) to (n, d); the
time enters through c_noise = log(sigma_t) / 4 (EDM's conditioning)."""

from __future__ import annotations

import math

import torch
from torch import nn


EMBEDDINGS = ("v1", "log", "log-snr")
NETS = ("mlp", "unet8", "unet")


class FourierEmbedding(nn.Module):
    """[sin(w_k c), cos(w_k c)], k = 0..n-1, of c_noise = log(sigma_t) / 4 (about [-0.8, 0] for OU
    times in [1e-3, 5]). ``"log"``: w_k log-spaced from 0.5 to 100, so that the slowest feature is
    monotone over that range and the fastest turns about a dozen times; ``"v1"`` (models trained
    before): w_k = 2^k pi / 8, whose fastest features turn thousands of times there. The frequencies
    are a buffer, saved with the model. ``"log-snr"``: the same frequencies on log(sigma_t / a_t) / 4
    = -log SNR / 8 (EDM's c_noise for a VP process), recovered exactly from c_noise; unlike
    log(sigma_t), which flattens to 0 as sigma_t -> 1, it keeps growing with the noise level."""

    def __init__(self, n: int = 16, kind: str = "v1"):
        super().__init__()
        if kind not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}; got {kind!r}")
        freqs = (2.0 ** torch.arange(n, dtype=torch.float32) * math.pi / 8 if kind == "v1"
                 else 2.0 ** torch.linspace(-1.0, math.log2(100.0), n, dtype=torch.float32))
        self.register_buffer("freqs", freqs)
        self.kind = kind

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if self.kind == "log-snr":  # log(sigma / a) / 4 with a^2 = 1 - sigma^2 = -expm1(8 c)
            c = c - torch.log((-torch.expm1(8 * c)).clamp_min(1e-12)) / 8
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


class _Attention(nn.Module):
    """Single-head self-attention over the pixels, residual."""

    def __init__(self, c: int):
        super().__init__()
        self.norm, self.qkv, self.proj = nn.GroupNorm(min(8, c), c), nn.Conv2d(c, 3 * c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, c, h * w).unbind(1)
        a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), -1)
        return x + self.proj((v @ a.transpose(1, 2)).reshape(n, c, h, w))


class UNet(nn.Module):
    """A U-Net for single-channel H x W images of any size (flattened to d = H W), after DDPM's
    (Ho et al. 2020) as diffusers' ``UNet2DModel`` builds it: ``levels`` resolutions with ``channels``
    times 1, 2, ... channels, ``blocks`` residual blocks per level going down and ``blocks`` + 1 coming
    up, self-attention between two blocks at the coarsest level, and the time embedding through an
    MLP of width 4 ``channels`` into every block."""

    def __init__(self, dim: int, shape: tuple[int, int], channels: int = 16, levels: int = 2, blocks: int = 1,
                 embedding: int = 16, embedding_kind: str = "log"):
        super().__init__()
        if len(shape) != 2 or shape[0] * shape[1] != dim:
            raise ValueError(f"image shape {tuple(shape)} does not hold d = {dim} pixels")
        self.dim, self.shape = dim, (int(shape[0]), int(shape[1]))
        widths = [channels * (k + 1) for k in range(levels)]
        e = 4 * channels
        self.embed = nn.Sequential(FourierEmbedding(embedding, embedding_kind), nn.Linear(2 * embedding, e), nn.SiLU(),
                                   nn.Linear(e, e))
        self.inp = nn.Conv2d(1, channels, 3, padding=1)
        self.down, self.downsample, skips, c = nn.ModuleList(), nn.ModuleList(), [channels], channels
        for i, wd in enumerate(widths):
            for _ in range(blocks):
                self.down.append(_Block(c, wd, e))
                c = wd
                skips.append(c)
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1, self.attn, self.mid2 = _Block(c, c, e), _Attention(c), _Block(c, c, e)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, wd in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up.append(_Block(c + skips.pop(), wd, e))
                c = wd
            if i > 0:
                self.upsample.append(nn.Conv2d(c, c, 3, padding=1))
        self.blocks, self.levels = blocks, levels
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        e = self.embed(c_noise)
        h = self.inp(x.view(-1, 1, *self.shape))
        skips, down, k = [h], iter(self.down), 0
        for i in range(self.levels):
            for _ in range(self.blocks):
                h = next(down)(h, e)
                skips.append(h)
            if i < self.levels - 1:
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        up = iter(self.up)
        for i in reversed(range(self.levels)):
            for _ in range(self.blocks + 1):
                h = next(up)(torch.cat([h, skips.pop()], 1), e)
            if i > 0:
                h = nn.functional.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
                h = self.upsample[k](h)
                k += 1
        return self.out(h).reshape(x.shape[0], self.dim)


def unet_levels(shape: tuple[int, int]) -> int:
    """Resolutions of the U-Net for an image shape: halve (rounding up) while the smaller side exceeds 4, at most 4."""
    side, levels = min(shape), 1
    while side > 4 and levels < 4:
        side, levels = -(-side // 2), levels + 1
    return levels


def build(kind: str, dim: int, hidden: int = 128, depth: int = 3, out_dim: int | None = None,
          embedding: str = "v1", image_shape: tuple[int, int] | None = None) -> nn.Module:
    """The network named by a config: ``"mlp"`` (width ``hidden``, ``depth`` blocks; input ``dim``,
    output ``out_dim``, default ``dim``), ``"unet8"`` (``hidden`` channels) or ``"unet"`` (images of
    ``image_shape``, default square; ``hidden`` channels, ``depth`` blocks per level)."""
    if kind not in NETS:
        raise ValueError(f"net must be one of {NETS}; got {kind!r}")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the same float32 initialisation whatever the caller's default
    try:
        if kind != "mlp" and out_dim not in (None, dim):
            raise ValueError(f"{kind} maps images to images; CLD velocity scores need net='mlp'")
        if kind == "mlp":
            return MLP(dim, hidden, depth, out_dim=out_dim, embedding_kind=embedding)
        if kind == "unet8":
            return UNet8(dim, channels=hidden, embedding_kind=embedding)
        if image_shape is None:
            side = math.isqrt(dim)
            if side * side != dim:
                raise ValueError(f"net 'unet' needs image_shape for d = {dim}, which is not a square")
            image_shape = (side, side)
        return UNet(dim, tuple(image_shape), channels=hidden, levels=unet_levels(image_shape), blocks=depth,
                    embedding_kind=embedding)
    finally:
        torch.set_default_dtype(previous)
