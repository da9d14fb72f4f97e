"""Sampling across processes under ``torchrun``: each rank draws its shard of the samples with its
own seed (``seed + rank``), and the shards are gathered on rank 0 in rank order. The result is
that of one process running the same shards one after another (tested with two gloo processes).
With ``--device cuda`` each process samples on its own GPU; shards and metrics are gathered on the
CPU through gloo (NCCL serves training's gradients). Without torchrun everything here is the
single-process case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def init() -> tuple[int, int]:
    """Initialise the process group when launched by torchrun; returns (rank, world size)."""
    from .learn.train import init_distributed

    init_distributed()
    return world()


def device(value: Any = None) -> torch.device:
    """The device a process samples on: the CPU by default; ``"cuda"`` (no index) is the process's own
    GPU (under torchrun: its local rank's); anything else is checked to exist on this machine."""
    from . import _checks

    dev = _checks.device(value)
    if dev.type == "cuda" and dev.index is None:
        from .learn.train import default_device

        return default_device()
    return dev


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) without a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_sizes(n: int, parts: int, *, align: int = 1) -> list[int]:
    """Sizes of ``parts`` consecutive shards of n rows, as equal as can be; with ``align``, each shard
    holds whole blocks of the ``align`` blocks ``torch.tensor_split`` makes of the n rows (so that
    per-block statistics, such as the exact MMD's jackknife groups, shard cleanly)."""
    if align > 1:
        return [sum(b) for b in shard_blocks([t.shape[0] for t in torch.empty(n, 0).tensor_split(align)], parts)]
    return [t.shape[0] for t in torch.empty(n, 0).tensor_split(parts)]


def shard_blocks(blocks: list[int], parts: int) -> list[list[int]]:
    """Consecutive runs of the block sizes ``blocks``, one run per shard, as equal in count as can be."""
    out, i = [], 0
    for c in (t.shape[0] for t in torch.empty(len(blocks), 0).tensor_split(parts)):
        out.append(blocks[i:i + c])
        i += c
    return out


def gather_rows(x: torch.Tensor, sizes: list[int]) -> torch.Tensor | None:
    """The shards of all ranks stacked in rank order, on rank 0 (None elsewhere); ``x`` unchanged
    in one process. ``sizes``: every rank's row count."""
    rank, size = world()
    if size == 1:
        return x
    width = max(sizes)
    pad = torch.zeros(width, *x.shape[1:], dtype=x.dtype, device=x.device)
    pad[: x.shape[0]] = x
    parts = [torch.empty_like(pad) for _ in range(size)] if rank == 0 else None
    torch.distributed.gather(pad, parts, dst=0)
    if rank != 0:
        return None
    return torch.cat([p[:m] for p, m in zip(parts, sizes)])


def on_rank_zero(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 and give every rank its result (picklable), or the ValueError it raised,
    re-raised on every rank with the same message, so that no rank waits on a collective that will
    not come."""
    rank, size = world()
    if size == 1:
        return fn()
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except ValueError as e:
            error = str(e)
    box = [error, result]
    torch.distributed.broadcast_object_list(box, src=0)
    if box[0] is not None:
        raise ValueError(box[0])
    return box[1]
