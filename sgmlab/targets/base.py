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
# On a GPU small chunks leave it waiting on kernel launches: 256 MiB in float64 (benchmarks/gpu.md).
CUDA_CHUNK_ELEMENTS = 2**25

LOG_2PI = math.log(2 * math.pi)


def chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, per_row: int) -> torch.Tensor:
    """Apply a row-wise ``fn`` to ``x`` in chunks of rows so that a chunk needs at most
    ``CHUNK_ELEMENTS`` intermediate elements, given ``per_row`` elements per row."""
    rows = max(1, (CUDA_CHUNK_ELEMENTS if x.is_cuda else CHUNK_ELEMENTS) // max(per_row, 1))
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
        """m_2^2 = E |X|^2 (Chen et al. 2023, assumption A2)."""

    def smallest_scale(self) -> float | None:
        """The smallest standard deviation of the law's Gaussian pieces (the square root of the
        smallest covariance eigenvalue of any component), where the law has them; ``None`` otherwise.
        Kernels that measure the law's shape reach down to it (:func:`sgmlab.metrics.scale_ladder`)."""
        return None

    def to(self, device: torch.device | str) -> Target:
        """The same law with its tensors on ``device`` (this target itself when they are there), so
        that its exact scores evaluate there: ``sg.sample(sg.scores.exact(q.to("cuda")), ...,
        device="cuda")``."""
        raise NotImplementedError(f"{type(self).__name__} cannot move to another device")

    def characteristic_function(self, w: torch.Tensor) -> torch.Tensor:
        r""":math:`\varphi(w) = E\, e^{i w^\top X}` at the frequencies ``w`` of shape (D, d);
        returns a complex tensor of shape (D,). Targets without a closed form raise."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form characteristic function")

    def _check_frequencies(self, w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"w must be a torch.Tensor of shape (D, {self.dim}); got {type(w).__name__}")
        if w.ndim != 2 or w.shape[1] != self.dim:
            raise ValueError(f"w must have shape (D, {self.dim}); got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError("w contains NaN or infinite values")
        return w.to(like)

    def _check_dims(self, dims: Sequence[int]) -> list[int]:
        dims = [int(i) for i in dims]
        if not dims or any(i < 0 or i >= self.dim for i in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"dims must be distinct indices in [0, {self.dim}); got {dims}")
        return dims
