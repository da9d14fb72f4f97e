r"""Network outputs and scores: the three parametrizations, converted in one place.

With :math:`x_t = a_t x_0 + \sigma_t z` (a, sigma from the process at time t):

- ``"noise"``: the network predicts z; :math:`s = -\hat z/\sigma_t`.
- ``"score"``: the network predicts the score itself.
- ``"data"``: the network predicts :math:`x_0`; :math:`s = (a_t\hat x_0 - x_t)/\sigma_t^2`.
- ``"v"``: the network predicts :math:`v = (z - \sigma_t x_t)/a_t` (Salimans and Ho 2022; EDM's
  preconditioned output for a VP process and unit data variance, up to sign);
  :math:`s = -(\sigma_t x_t + a_t\hat v)/\sigma_t`.
"""

from __future__ import annotations

import torch

PARAMETRIZATIONS = ("noise", "score", "data", "v")


def check(kind: str) -> str:
    if kind not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}; got {kind!r}")
    return kind


def to_score(kind: str, out: torch.Tensor, x: torch.Tensor, a: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Score from a network output; a and sigma broadcast against x (shape (n, 1) or scalars)."""
    if kind == "noise":
        return -out / sigma
    if kind == "score":
        return out
    if kind == "data":
        return (a * out - x) / sigma**2
    if kind == "v":
        return -(sigma * x + a * out) / sigma
    raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}; got {kind!r}")


def from_score(kind: str, s: torch.Tensor, x: torch.Tensor, a: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The network output that represents score s (inverse of :func:`to_score`)."""
    if kind == "noise":
        return -sigma * s
    if kind == "score":
        return s
    if kind == "data":
        return (x + sigma**2 * s) / a
    if kind == "v":
        return (-sigma * s - sigma * x) / a
    raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}; got {kind!r}")
