"""Interoperability with diffusers (an optional dependency: ``pip install sgmlab[bench]``):
``PlanScheduler`` and ``ExponentialIntegratorScheduler`` (sgmlab's samplers as diffusers
schedulers, :mod:`sgmlab.interop.scheduler`) and diffusers' schedulers as sgmlab samplers
(:mod:`sgmlab.interop.peers`)."""

from __future__ import annotations

import importlib
from typing import Any

_SCHEDULERS = ("PlanScheduler", "ExponentialIntegratorScheduler")


def __getattr__(name: str) -> Any:
    if name in _SCHEDULERS:
        try:
            module = importlib.import_module(".scheduler", __name__)
        except ImportError as e:
            raise ImportError(f"sgmlab.interop.{name} needs diffusers: pip install 'sgmlab[bench]' ({e})") from e
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_SCHEDULERS)
