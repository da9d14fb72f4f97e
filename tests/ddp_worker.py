"""Run under torchrun: train briefly with DDP (gloo, CPU) and save the final parameters."""

import sys

import torch

import sgmlab as sg
from sgmlab.learn import TrainConfig, train


def main() -> None:
    torch.distributed.init_process_group("gloo")
    out = sys.argv[1]
    data = sg.targets.mixture2d().sample(2000, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(steps=15, batch_size=64, hidden=32, depth=2, eval_every=15, checkpoint_every=15)
    res = train(data, config)
    if torch.distributed.get_rank() == 0:
        torch.save({k: v.clone() for k, v in res.model.net.state_dict().items()}, out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
