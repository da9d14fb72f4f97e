"""sgmlab's training recipe against the diffusers recipe at equal CPU time, on the digits: write
benchmarks/recipe_vs_diffusers.md.

    .venv/bin/python benchmarks/recipe_vs_diffusers.py [--seconds 475 --seeds 0 1 2 --n 2000]

Both recipes train in the same session, one after the other, for the same wall time on the same
threads, on the same fixed 80/20 split of scikit-learn's digits, and each samples n images with 50
score evaluations:

- sgmlab: ``sgmlab train --data digits``'s recipe (`sg.learn.train` with the 8x8 U-Net, global
  standardization), sampled with ``sg.sample``'s default plan (``TrainResult.sample``);
- diffusers: the recipe of diffusers' ``train_unconditional`` example, sized for 8x8 images: a
  UNet2DModel of 164k parameters (blocks 16, 32), DDPM's linear schedule with 1000 steps, epsilon
  MSE, AdamW 1e-4 with 500 warm-up steps and cosine decay, gradient clipping at 1, EMA with
  warm-up (power 3/4, max 0.9999), batch 128, data scaled to [-1, 1]; sampled with
  DPM-Solver++ (``DPMSolverMultistepScheduler``) at 50 steps from the EMA weights.

Both outputs are clamped to the pixel range 0..16, as diffusers' pipeline clamps its images. Each
recipe's step count is set from the time of 40 steps after 10 of warm-up, so that its training
takes the given seconds.

Metrics: Frechet distance of Gaussian fits in 64-d pixel space to the training and the test split;
MMD^2 (Gaussian kernel, median bandwidth) to the test split with a permutation p-value; a logistic
classifier's mean confidence on the samples (real test images: about 0.9); the median distance
from a sample to its nearest training image (real test images: about 17).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import sgmlab as sg


def split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed 80/20 split: training images, test images, and the labels of both in that order."""
    from sklearn.model_selection import train_test_split

    data = sg.learn.load_data("digits")
    idx = np.arange(data.x.shape[0])
    tr, te = train_test_split(idx, test_size=0.2, random_state=seed, stratify=data.labels.numpy())
    return data.x[tr], data.x[te], torch.cat([data.labels[tr], data.labels[te]])


def frechet(x: torch.Tensor, y: torch.Tensor) -> float:
    from scipy import linalg

    mx, my = x.mean(0).numpy(), y.mean(0).numpy()
    cx, cy = np.cov(x.numpy().T), np.cov(y.numpy().T)
    root = linalg.sqrtm(cx @ cy).real
    return float(((mx - my) ** 2).sum() + np.trace(cx + cy - 2 * root))


def mmd_perm(x: torch.Tensor, y: torch.Tensor, perms: int = 200, seed: int = 0) -> tuple[float, float]:
    bw = sg.metrics.samples.median_bandwidth(y)
    value = sg.metrics.samples.mmd_samples(x, y, bw)
    z = torch.cat([x, y])
    g = torch.Generator().manual_seed(seed)
    beat = 0
    for _ in range(perms):
        p = torch.randperm(z.shape[0], generator=g)
        beat += sg.metrics.samples.mmd_samples(z[p[: x.shape[0]]], z[p[x.shape[0]:]], bw) >= value
    return value, (beat + 1) / (perms + 1)


def train_sgmlab(x: torch.Tensor, seconds: float, seed: int, n: int) -> tuple[torch.Tensor, int]:
    from sgmlab.learn import TrainConfig, train

    base = dict(net="unet8", hidden=32, standardize="global", seed=seed)
    train(x, TrainConfig(steps=10, eval_every=10, checkpoint_every=10, **base))  # warm-up
    t0 = time.perf_counter()
    train(x, TrainConfig(steps=40, eval_every=40, checkpoint_every=40, **base))
    per_step = (time.perf_counter() - t0) / 40
    steps = max(20, int(seconds / per_step))
    res = train(x, TrainConfig(steps=steps, eval_every=steps, checkpoint_every=steps, **base))
    x = res.sample(n, nfe=50, generator=torch.Generator().manual_seed(seed)).double()
    return x.clamp(0, 16), steps  # pixel values, as an image viewer (and the diffusers pipeline) would show them


def train_diffusers(x: torch.Tensor, seconds: float, seed: int, n: int, lr: float = 1e-4) -> tuple[torch.Tensor, int]:
    from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                       norm_num_groups=8).float()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    imgs = (x.float() / 8 - 1).view(-1, 1, 8, 8)
    g = torch.Generator().manual_seed(seed)

    def step(opt, lr_sched, ema) -> None:
        b = imgs[torch.randint(imgs.shape[0], (128,), generator=g)]
        noise = torch.randn(b.shape, generator=g)
        t = torch.randint(0, 1000, (b.shape[0],), generator=g)
        loss = torch.nn.functional.mse_loss(unet(sched.add_noise(b, noise, t), t).sample, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        lr_sched.step()
        ema.step(unet.parameters())

    def parts(total: int):
        opt = torch.optim.AdamW(unet.parameters(), lr=lr, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
        return opt, get_cosine_schedule_with_warmup(opt, 500, total), EMAModel(
            unet.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)

    probe = parts(1000)
    for _ in range(10):  # warm-up
        step(*probe)
    t0 = time.perf_counter()
    for _ in range(40):
        step(*probe)
    steps = max(20, int(seconds / ((time.perf_counter() - t0) / 40)))
    torch.manual_seed(seed)  # a fresh network for the timed run
    unet.load_state_dict(UNet2DModel.from_config(unet.config).state_dict())
    opt, lr_sched, ema = parts(steps)
    for _ in range(steps):
        step(opt, lr_sched, ema)
    ema.copy_to(unet.parameters())
    solver = DPMSolverMultistepScheduler.from_config(sched.config)
    solver.set_timesteps(50)
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for lo in range(0, n, 500):
            s = torch.randn(min(500, n - lo), 1, 8, 8, generator=gen)
            for t in solver.timesteps:
                s = solver.step(unet(s, t).sample, t, s).prev_sample
            out.append(s)
            solver.set_timesteps(50)
    # the pipeline's output: (x / 2 + 0.5).clamp(0, 1), in pixel units 0..16
    return ((torch.cat(out).view(n, 64).double() + 1) * 8).clamp(0, 16), steps


def metrics(s: torch.Tensor, xtr: torch.Tensor, xte: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    from sgmlab.learn.evaluate import evaluate_digits

    ev = evaluate_digits(s, torch.cat([xtr, xte]), labels, seed=seed)
    mmd, p = mmd_perm(s, xte, seed=seed)
    nn_tr = torch.cdist(s, xtr).min(1).values.median().item()
    return {"fd_train": frechet(s, xtr), "fd_test": frechet(s, xte), "mmd": mmd, "p": p,
            "confidence": ev["mean_confidence_generated"], "nn_train": nn_tr,
            "mean_pixel": float(s.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=475)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--diffusers-lr", type=float, default=1e-4, help="AdamW's learning rate (the example's: 1e-4)")
    ap.add_argument("--only", choices=["sgmlab", "diffusers"], default=None, help="run one recipe")
    ap.add_argument("--out", default=None, help="the markdown file (default benchmarks/recipe_vs_diffusers.md)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    xtr, xte, labels = split()
    rows = {"sgmlab": [], "diffusers": []}
    for seed in args.seeds:
        runs = (("sgmlab", train_sgmlab),
                ("diffusers", lambda *a: train_diffusers(*a, lr=args.diffusers_lr)))
        for name, fn in runs:
            if args.only not in (None, name):
                continue
            s, steps = fn(xtr, args.seconds, seed, args.n)
            m = {**metrics(s, xtr, xte, labels, seed), "steps": steps}
            rows[name].append(m)
            print(name, seed, {k: round(v, 4) for k, v in m.items()}, flush=True)
    ref = {"fd_train": frechet(xte, xtr), "confidence": metrics(xte, xtr, xte, labels, 0)["confidence"],
           "nn_train": torch.cdist(xte, xtr).min(1).values.median().item(), "mean_pixel": float(xtr.mean())}

    def cell(name: str, key: str) -> str:
        vals = [r[key] for r in rows[name]]
        se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else float("nan")
        return f"{statistics.mean(vals):.4g} +- {se:.2g}"

    lines = ["# sgmlab's training recipe against diffusers' at equal CPU time (digits)", "",
             f"Regenerate: `.venv/bin/python benchmarks/recipe_vs_diffusers.py --seconds {args.seconds:g} --seeds "
             f"{' '.join(map(str, args.seeds))} --n {args.n} --diffusers-lr {args.diffusers_lr:g}` (2 threads; each "
             f"recipe trains {args.seconds:g} s per "
             f"seed). Means over seeds {args.seeds} +- the standard error over seeds; {args.n} samples at 50 "
             "evaluations each. The recipes and metrics are described in the script's docstring.", "",
             "| recipe | training steps | FD to train | FD to test | MMD^2 to test | perm. p (median) | classifier "
             "confidence | NN distance to train (median) | mean pixel |", "|---|---|---|---|---|---|---|---|---|"]
    for name in [k for k in rows if rows[k]]:
        p = statistics.median(r["p"] for r in rows[name])
        lines.append(f"| {name} | {statistics.mean(r['steps'] for r in rows[name]):.0f} | {cell(name, 'fd_train')} | "
                     f"{cell(name, 'fd_test')} | {cell(name, 'mmd')} | {p:.2g} | {cell(name, 'confidence')} | "
                     f"{cell(name, 'nn_train')} | {cell(name, 'mean_pixel')} |")
    lines.append(f"| real test split (reference) | | {ref['fd_train']:.4g} | 0 | | | {ref['confidence']:.3g} | "
                 f"{ref['nn_train']:.3g} | {ref['mean_pixel']:.3g} (train) |")
    Path(args.out or Path(__file__).parent / "recipe_vs_diffusers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
