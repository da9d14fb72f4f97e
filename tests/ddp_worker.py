"""Run under torchrun: train briefly with DDP (gloo, CPU) and save the final parameters."""

import os
import sys

import torch

import sgmlab as sg
from sgmlab.learn import TrainConfig, recipe, train


def setup(kind: str) -> tuple[torch.Tensor, TrainConfig]:
    """The data and config of the DDP test: the vector recipe (MLP) on the 2-d mixture, or the image recipe (U-Net) on 4x4 images."""
    if kind == "image":
        data = torch.rand(200, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        return data, recipe((4, 4), hidden=8, batch_size=32, steps=12, eval_every=12, checkpoint_every=12)
    data = sg.targets.mixture2d().sample(2000, generator=torch.Generator().manual_seed(0))
    # the vector recipe, its stable target's reference rows included (the global batch, then draws)
    return data, recipe(steps=15, batch_size=64, hidden=32, depth=2, reference=160, eval_every=15, checkpoint_every=15)


def main() -> None:
    torch.distributed.init_process_group("gloo")
    out, kind = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "mlp"
    data, config = setup(kind)
    res = train(data, config)
    if torch.distributed.get_rank() == 0:
        torch.save({k: v.clone() for k, v in res.model.net.state_dict().items()}, out)
    torch.distributed.barrier()  # no rank tears gloo down while another still uses it (as the CLI does)
    torch.distributed.destroy_process_group()
    # The work is saved and every rank is past the barrier: leave without the interpreter's teardown,
    # where a native thread still joinable at exit aborted a rank now and then ("terminate called
    # without an active exception", SIGABRT: 1 run in 6 before the barrier, 1 in about 20 after it)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
