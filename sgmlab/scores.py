"""Score functions s(x, t) ~ grad log q_t(x).

A score is any callable ``s(x, t) -> Tensor`` with x of shape (n, d) and t a forward time (float)
of the process it belongs to; the result has the shape of x.
"""

from __future__ import annotations

from typing import Protocol

import torch

from .processes import OU, Process
from .targets.base import Target


class ScoreFn(Protocol):
    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor: ...


class ExactScore:
    r"""The exact score :math:`\nabla \log q_t` of a target's noised law under a process.

    The marginal :math:`q_t` is built in closed form (``process.marginal(target, t)``) and cached
    for the most recent time, so a sampler that evaluates once per grid time builds each law once.
    """

    def __init__(self, target: Target, process: Process | None = None):
        if not isinstance(target, Target):
            raise TypeError(f"target must be an sgmlab target; got {type(target).__name__}")
        if process is not None and not isinstance(process, Process):
            raise TypeError(f"process must be an sgmlab process; got {type(process).__name__}")
        self.target = target
        self.process = OU() if process is None else process
        self._cache: tuple[float, Target] | None = None

    def __repr__(self) -> str:
        return f"ExactScore({self.target!r}, {self.process!r})"

    def marginal(self, t: float) -> Target:
        t = float(t)
        if self._cache is None or self._cache[0] != t:
            self._cache = (t, self.process.marginal(self.target, t))
        return self._cache[1]

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.marginal(t).score(x)


def exact(target: Target, process: Process | None = None) -> ExactScore:
    """s(x, t) = grad log q_t(x) in closed form, for q_t the law at time t of ``process``
    (default OU) started at ``target``.

    Examples
    --------
    >>> import sgmlab as sg
    >>> score = sg.scores.exact(sg.targets.mixture2d(), sg.processes.OU())
    >>> score(torch.zeros(5, 2, dtype=torch.float64), 0.5).shape
    torch.Size([5, 2])
    """
    return ExactScore(target, process)
