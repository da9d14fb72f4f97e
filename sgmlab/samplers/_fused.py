"""A sampler's update in one pass over the state instead of one torch operation per term.

Time outside the score is passes over memory: DPM-Solver++ 3M's step is 15 streams of the state
as torch operations (the data prediction, the scaling, three additions, the finite check) and 6
fused (read x, the score and two older data predictions; write x, and the new data prediction over
the oldest, which this step retires). Where torch has several threads, a kernel splits the state
into as many ranges and runs them in threads.
For contiguous float32/float64 CPU states the updates below run as numba kernels
(:mod:`sgmlab.samplers._kernels`); elsewhere (a GPU, numba missing, ``ENABLED = False``) as the
torch operations they replace, which the tests hold equal to rounding. Both draw the same noise
from the same generator calls. ``benchmarks/overhead.md`` measures the difference.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from .._random import TAIL, add_noise_, tail_draws

ENABLED = True
"""Whether CPU states use the numba kernels (switched off by the tests to compare the two paths)."""


@functools.cache
def _kernels() -> Any:
    try:
        from . import _kernels as k
    except ImportError:  # numba is a dependency; a platform without it keeps torch's operations
        return None
    return k


def kernels_for(x: torch.Tensor) -> Any:
    """The kernel module when ``x`` can use it, else None."""
    if not (ENABLED and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous()):
        return None
    return _kernels()


class Scratch:
    """Buffers one sampler run reuses from step to step: the float32 noise and the tail positions."""

    def __init__(self) -> None:
        self.z: torch.Tensor | None = None
        self.far = self.before = self.signs = np.empty(0)

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        if self.z is None or self.z.numel() != x.numel():
            n = x.numel()
            self.z = torch.empty(n, dtype=torch.float32)
            self.far, self.before, self.signs = np.empty(n, np.int64), np.empty(n), np.empty(n, np.float32)
        return self.z


_NO_NOISE = np.empty(0, dtype=np.float32)
_checked = threading.local()
_owned = threading.local()


@contextlib.contextmanager
def writable(x: torch.Tensor | None) -> Iterator[None]:
    """Within the block, a sampler's first step may update ``x`` in place (:func:`first_state`):
    for callers that drew ``x`` themselves and keep only the output, as ``sg.sample`` does with its
    prior draws. Only sgmlab's own samplers ask; a sampler still never writes a user's ``x_init``."""
    previous, _owned.x = getattr(_owned, "x", None), x
    try:
        yield
    finally:
        _owned.x = previous


def first_state(x: torch.Tensor) -> torch.Tensor:
    """The tensor a sampler's first step updates in place: ``x`` itself inside :func:`writable` (and
    contiguous), else a contiguous copy (``x_init`` is never written)."""
    if getattr(_owned, "x", None) is x and x.is_contiguous():
        return x
    return x.clone(memory_format=torch.contiguous_format)


def _finite(x: torch.Tensor, bad: int) -> None:
    """Record that a kernel found ``x`` finite as it wrote it (:func:`known_finite`)."""
    _checked.last = (weakref.ref(x), x._version) if bad == 0 else None


def known_finite(x: torch.Tensor) -> bool:
    """Whether the last kernel on this thread wrote ``x`` finite and nothing has written it since
    (torch's version counter; a step's own check then needs no pass over ``x``)."""
    last = getattr(_checked, "last", None)
    return last is not None and last[0]() is x and last[1] == x._version


PER_THREAD = 1 << 16
"""Numbers per thread below which a kernel runs on one thread: it splits its arrays into as many
ranges as torch has threads (``torch.get_num_threads()``), as torch's own operations would."""
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the process that made it: a forked child makes its own)


def _split(kernel: Any, n: int, *args: Any) -> list[Any]:
    """``kernel`` on contiguous ranges of its arrays of length ``n`` (other arguments whole), the
    ranges in threads (the kernels release the GIL); the list of their results, in order."""
    global _pool
    parts = max(1, min(torch.get_num_threads(), n // PER_THREAD))
    if parts == 1:
        return [kernel(*args)]
    if _pool is None or _pool[0] != os.getpid() or _pool[1]._max_workers < parts - 1:
        _pool = (os.getpid(), ThreadPoolExecutor(parts - 1, thread_name_prefix="sgmlab-kernel"))
    edges = [n * p // parts for p in range(parts + 1)]

    def part(p: int) -> list[Any]:
        return [a[edges[p]:edges[p + 1]] if isinstance(a, np.ndarray) and a.shape[0] == n else a for a in args]

    rest = [_pool[1].submit(kernel, *part(p)) for p in range(1, parts)]
    return [kernel(*part(0)), *(f.result() for f in rest)]


def _far(k: Any, z: np.ndarray, out: np.ndarray) -> int:
    """The positions of the draws beyond ``TAIL`` into ``out`` (:func:`sgmlab.samplers._kernels.far`
    on ranges in threads, then merged in order); returns how many."""
    n, count = z.shape[0], 0
    counts = _split(k.far, n, z, TAIL, out)
    if len(counts) == 1:
        return counts[0]
    for p, c in enumerate(counts):  # each range wrote its own positions, relative, at its start
        lo = n * p // len(counts)
        out[count:count + c] = out[lo:lo + c] + lo
        count += c
    return count


def _flat(y: torch.Tensor) -> np.ndarray:
    return y.detach().contiguous().view(-1).numpy()


def _terms(terms: Sequence[tuple[float, torch.Tensor]]) -> list[Any]:
    """(y0, b0, y1, b1, y2, b2, k): absent terms repeat y0 with weight 0 (not read)."""
    arrays = [_flat(y) for _, y in terms]
    out: list[Any] = []
    for j in range(3):
        out += [arrays[j], terms[j][0]] if j < len(terms) else [arrays[0], 0.0]
    return out + [len(terms)]


def affine_(x: torch.Tensor, a: float, terms: Sequence[tuple[float, torch.Tensor]], std: float = 0.0,
            generator: torch.Generator | None = None, scratch: Scratch | None = None) -> torch.Tensor:
    """``x <- a x + sum_j b_j y_j + std z`` in place for 1 to 3 ``terms`` (b_j, y_j), z ~ N(0, I)
    drawn as :func:`sgmlab._random.add_noise_` draws it (the same generator calls: a float32 body,
    exact float64 tails beyond ``TAIL`` for a float64 state). Returns ``x``."""
    k = kernels_for(x) if 1 <= len(terms) <= 3 else None
    if k is None:
        x.mul_(a)
        for b, y in terms:
            x.add_(y, alpha=b)
        return add_noise_(x, std, generator) if std else x
    flat, args = x.view(-1), _terms(terms)
    if not std:
        _finite(x, sum(_split(k.combine, x.numel(), flat.numpy(), a, *args, _NO_NOISE, 0.0)))
        return x
    scratch = scratch or Scratch()
    z, X = scratch.noise(x).normal_(generator=generator).numpy(), flat.numpy()
    count = _far(k, z, scratch.far) if x.dtype == torch.float64 else 0
    if count:  # the noiseless update and the draws where the tail draws replace them, before combine's pass
        k.gather(scratch.far, count, X, a, *args, scratch.before, z, scratch.signs)
    bad = sum(_split(k.combine, x.numel(), X, a, *args, z, std))
    if count:
        tail = tail_draws(torch.from_numpy(scratch.signs[:count]), generator).numpy()
        bad += k.scatter(X, scratch.far, count, scratch.before, std, tail)
    _finite(x, bad)
    return x


def tail_positions(z: torch.Tensor) -> torch.Tensor:
    """The positions of the float32 draws ``z`` (1-d) beyond ``TAIL``, in order: a one-pass scan
    on the CPU, torch's comparison elsewhere."""
    k = kernels_for(z)
    if k is None:
        return (z.abs() > TAIL).nonzero().squeeze(1)
    out = np.empty(z.numel(), dtype=np.int64)
    return torch.from_numpy(out[:_far(k, z.numpy(), out)])


def data_prediction_(x: torch.Tensor, s: torch.Tensor, sig2: float, out: torch.Tensor | None, r: float,
                     weights: Sequence[float], older: Sequence[torch.Tensor]) -> torch.Tensor:
    """DPM-Solver++'s update: ``m = x + sig2 s`` (into ``out`` when given), then in place
    ``x <- r x + weights[0] m + sum_j weights[j] older[j - 1]`` (up to two older ones, newest
    first). ``out`` may be the oldest of them, which is then read before m overwrites it. Returns m."""
    over = bool(older) and out is older[-1]
    k = kernels_for(x) if len(weights) == len(older) + 1 <= 3 else None
    if k is None:
        m = torch.add(x, s, alpha=sig2, out=None if over else out)
        x.mul_(r)
        for c, mj in zip(weights, [m, *older]):
            x.add_(mj, alpha=c)
        return m  # when out was a term, m is a new tensor
    m = torch.empty_like(x) if out is None else out
    m_flat, n = m.view(-1).numpy(), x.numel()
    X, S = x.view(-1).numpy(), _flat(s)
    if over:
        m1 = _flat(older[0]) if len(older) == 2 else m_flat
        bad = _split(k.data_prediction_over, n, X, S, sig2, r, weights[0], m1, weights[1] if len(older) == 2 else 0.0,
                     m_flat, weights[-1], len(weights))
    else:
        arrays = [_flat(mj) for mj in older] + [m_flat] * 2
        w = list(weights) + [0.0] * (3 - len(weights))
        bad = _split(k.data_prediction, n, X, S, sig2, m_flat, r, w[0], arrays[0], w[1], arrays[1], w[2], len(weights))
    _finite(x, sum(bad))
    return m
