"""Input checks shared by the public entry points.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the offending
argument, what was received and what was expected.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch

DTYPE = torch.float64


def as_tensor(name: str, value: Any, *, ndim: int | None = None, dtype: torch.dtype | None = None,
              device: torch.device | str | None = None) -> torch.Tensor:
    """Convert ``value`` to a finite floating tensor: float64, or float32 if it already is one.
    Integers are promoted to float64, and so are float16 and bfloat16 (the linear algebra the
    targets need, Cholesky factors and solves, does not run in them); bool and complex are refused.

    Raises
    ------
    TypeError
        If the value cannot be read as numbers.
    ValueError
        If it has the wrong number of dimensions, is empty, or holds NaN or infinite values.
    """
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must hold real numbers; got a {value.dtype} tensor")
        if dtype is None:
            dtype = value.dtype if value.dtype in (torch.float32, torch.float64) else DTYPE
        t = value.to(dtype=dtype, device=device if device is not None else value.device)
    else:
        try:
            t = torch.as_tensor(value, dtype=dtype or DTYPE, device=device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be an array of numbers; got {type(value).__name__} ({e})") from None
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s); got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); expected at least one value")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def all_finite(x: torch.Tensor) -> bool:
    """Whether every entry is finite: one reduction (a sum is finite when every entry is), the full
    test only when the sum is not (it may have overflowed). For checks on hot paths."""
    return bool(torch.isfinite(x.sum())) or bool(torch.isfinite(x).all())


def points(name: str, x: Any, d: int, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Check a batch of points of shape (n, d), n >= 1, finite; cast to the dtype and device of ``like``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, {d}); got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}); got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); expected n >= 1 points")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold real numbers; got a {x.dtype} tensor")
    if not all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values ({int((~torch.isfinite(x)).any(1).sum())} of "
                         f"{x.shape[0]} points)")
    if like is not None and (x.dtype != like.dtype or x.device != like.device):
        x = x.to(like)
    return x


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
            isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point()):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value}")
    return value


def real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number in [low, high] (or the open variants)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}; got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}; got {value}")
    return value


def device(value: Any) -> torch.device:
    """A torch device that exists on this machine, or a clear error."""
    try:
        dev = torch.device(value if value is not None else "cpu")
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {value!r} is not a device torch knows (cpu, cuda, cuda:1, mps, ...): {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {value!r} is not available: this torch build has no CUDA device to use")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {value!r} is not available: there are {torch.cuda.device_count()} CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {value!r} is not available on this machine")
    return dev


def generator_for(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    if generator is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"generator is on {generator.device} but the tensors are on {device}")
    return generator
