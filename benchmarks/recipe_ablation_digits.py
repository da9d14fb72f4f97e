"""Which choices made the image recipe: write benchmarks/recipe_ablation_digits.md.

    .venv/bin/python benchmarks/recipe_ablation_digits.py [--seconds 240 --seed 0]

Each row trains sgmlab on the digits' fixed 80/20 split for the same wall time on one thread
(``recipe_vs_diffusers.train_sgmlab`` with the row's TrainConfig fields), samples 2000 images at 50
evaluations and scores them as ``benchmarks/recipe_vs_diffusers.py`` does; the diffusers rows run
that script's diffusers recipe at three learning rates. One seed: differences below about 0.5 in
FD are within the spread between seeds (see recipe_vs_diffusers.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import recipe_vs_diffusers as rv

OLD = dict(net="unet8", hidden=32, standardize="global")  # the recipe before: TrainConfig's defaults (OU, A3, ...)
VP_EPS = dict(process="vp-linear", T=1.0, time_sampling="uniform", weighting="eps")
OPT = dict(batch_size=128, lr_schedule="cosine", clip=1.0)
UNET = dict(net="unet", hidden=16, depth=1, standardize="global")
NEW = dict(lr=4e-3, adam_beta1=0.95, reference=1024)
ROWS = {
    "before: 8x8 U-Net (155k), OU, A3 weighting, log-uniform times, batch 512, Adam 2e-3": {**OLD},
    "before + batch 128, lr 1e-3, warm-up + cosine, clip 1": {**OLD, **OPT, "lr": 1e-3},
    "before + log-SNR time input": {**OLD, "embedding": "log-snr"},
    "before + VP-linear, uniform times, noise MSE": {**OLD, **VP_EPS},
    "... + batch 128, lr 1e-3, cosine, clip 1": {**OLD, **VP_EPS, **OPT, "lr": 1e-3},
    "... with 16 channels (more steps)": {**OLD, **VP_EPS, **OPT, "lr": 1e-3, "hidden": 16},
    "U-Net (UNet2DModel layout, 165k) + VP-linear, noise MSE, batch 128, cosine, clip, lr 1e-3":
        {**UNET, **VP_EPS, **OPT, "lr": 1e-3},
    "... lr 2e-3 (the recipe before this one)": {**UNET, **VP_EPS, **OPT, "lr": 2e-3},
    "... lr 4e-3": {**UNET, **VP_EPS, **OPT, "lr": 4e-3},
    "... lr 4e-3, log-SNR time input": {**UNET, **VP_EPS, **OPT, "lr": 4e-3, "embedding": "log-snr"},
    "... lr 4e-3, min-SNR-5 weighting": {**UNET, **VP_EPS, **OPT, "lr": 4e-3, "weighting": "min-snr"},
    "... lr 2e-3, v parametrization": {**UNET, **VP_EPS, **OPT, "lr": 2e-3, "parametrization": "v"},
    "... lr 2e-3, EDM: v, MSE of v, log-normal noise levels": {
        **UNET, **VP_EPS, **OPT, "lr": 2e-3, "parametrization": "v", "weighting": "edm", "time_sampling": "log-normal"},
    "... lr 2e-3, 24 channels (368k)": {**UNET, **VP_EPS, **OPT, "lr": 2e-3, "hidden": 24},
    "... lr 4e-3, Adam beta1 0.95, stable target over 1024 images": {**UNET, **VP_EPS, **OPT, **NEW},
    "... the same, 24 channels (368k)": {**UNET, **VP_EPS, **OPT, **NEW, "hidden": 24},
    "... the same, 32 channels (651k): the recipe": {**UNET, **VP_EPS, **OPT, **NEW, "hidden": 32},
}
DIFFUSERS_LRS = (1e-3, 2e-3, 4e-3)
KEYS = ("fd_train", "fd_test", "confidence", "nn_train", "steps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=240)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = rv.load("digits")
    ns = argparse.Namespace(diffusers_lr=None, vector_diffusers_lr=None, diffusers_width=16)
    lines = ["# The image recipe, choice by choice (digits)", "",
             f"Regenerate: `.venv/bin/python benchmarks/recipe_ablation_digits.py --seconds {args.seconds:g} --seed "
             f"{args.seed}` (one thread, {args.seconds:g} s of training per row, seed {args.seed}; 2000 samples at 50 "
             "evaluations). The FD that 2000 fresh draws of the data law would get is about 9.2 to the training "
             "split and 25 to the test split (recipe_vs_diffusers.md): FD to train below 9 means samples closer to "
             "the training images than new digits would be.", "",
             "| recipe | steps | FD to train | FD to test | classifier confidence | NN distance to train |",
             "|---|---|---|---|---|---|"]
    runs = [(name, "sgmlab", change) for name, change in ROWS.items()]
    runs += [(f"diffusers recipe, AdamW {lr:g}", "diffusers", lr) for lr in DIFFUSERS_LRS]
    for name, who, change in runs:
        ns.diffusers_lr = change if who == "diffusers" else None
        m = rv.run_recipe("digits", who, data, args.seconds, args.seed, ns, change if who == "sgmlab" else {},
                          use_recipe=False)[who]  # the row as the recipe samples (sgmlab with its box)
        row = (f"| {name} | {m['steps']} | {m['fd_train']:.3g} | {m['fd_test']:.3g} | {m['confidence']:.3f} | "
               f"{m['nn_train']:.3g} |")
        lines.append(row)
        print(row, flush=True)
    (Path(__file__).parent / "recipe_ablation_digits.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
