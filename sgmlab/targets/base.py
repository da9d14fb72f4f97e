"""The interface every target distribution implements."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch

# Largest number of intermediate elements one chunk of a batched evaluation may hold (16 MiB in
# float64). Scores and log-densities of large batches are computed chunk by chunk: memory stays
# bounded, and chunks this size stay in cache (about 2x faster than one pass over n = 1e5).
CHUNK_ELEMENTS = 2**21

LOG_2PI = math.log(2 * math.pi)


def chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, per_row: int) -> torch.Tensor:
    """Apply a row-wise ``fn`` to ``x`` in chunks of rows so that a chunk needs at most
    ``CHUNK_ELEMENTS`` intermediate elements, given ``per_row`` elements per row."""
    rows = max(1, CHUNK_ELEMENTS // max(per_row, 1))
    if x.shape[0] <= rows:
        return fn(x)
    return torch.cat([fn(c) for c in x.split(rows)])


class Target(ABC):
    """A probability law on R^d with exact sampling, and (where it has one) exact log-density and score.

    Every target is closed under the forward processes' transition
    ``X -> a X + sigma Z`` (Z standard normal): see :meth:`noised`.
    """

    @property
    @abstractmethod
    def dim(self) -> int:
        """Dimension d."""

    @abstractmethod
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` exact samples, shape (n, d)."""

    @abstractmethod
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density at ``x`` of shape (n, d); returns shape (n,)."""

    @abstractmethod
    def score(self, x: torch.Tensor) -> torch.Tensor:
        """grad log density at ``x`` of shape (n, d); returns shape (n, d)."""

    @abstractmethod
    def noised(self, a: float, sigma: float) -> Target:
        """Law of ``a X + sigma Z`` for X from this target and Z ~ N(0, I_d) independent."""

    @abstractmethod
    def project(self, dims: Sequence[int]) -> Target:
        """Marginal law of the coordinates ``dims``."""

    @abstractmethod
    def second_moment(self) -> float:
        """m_2^2 = E |X|^2 (PAPER.md, assumption A2)."""

    def _check_dims(self, dims: Sequence[int]) -> list[int]:
        dims = [int(i) for i in dims]
        if not dims or any(i < 0 or i >= self.dim for i in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"dims must be distinct indices in [0, {self.dim}); got {dims}")
        return dims
