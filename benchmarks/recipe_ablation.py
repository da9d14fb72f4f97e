"""Training choices measured by the exact score error: write benchmarks/recipe_ablation.md.

    .venv/bin/python benchmarks/recipe_ablation.py [--steps 4000 --seeds 0 1 2]

Data: 20000 exact samples of the built-in 16-d mixture (8 full-covariance components), whose
noised laws and scores are known in closed form. Each recipe trains the same MLP (128 wide, 3
blocks, batch 512, Adam 2e-3) for the same number of steps, so at the same CPU time; then:

- eps_score^2 averaged uniformly in t over [delta, T] (the time average assumption A3 bounds,
  which Theorem 2 turns into a TV bound for uniform steps),
- eps_score^2 averaged uniformly in log t (where sampling grids put their steps),
- the exact-law MMD^2 of 20000 samples drawn with sg.sample's default plan at 20 evaluations,
  against the data law (standardized units), with its standard error.

Each row changes one choice from the baseline (TrainConfig's defaults), the last rows combine
them; ``--only`` reruns some rows and keeps the others. Rows trained in another clock (VP-linear) are measured in OU time on the same [1e-3, 5]. Means over the seeds, with the standard error over seeds.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

import sgmlab as sg
from sgmlab.learn import TrainConfig, score_error, standardized_target, train
from sgmlab.learn.train import vp_family

BASE = TrainConfig(steps=4000, eval_every=4000, checkpoint_every=4000)
VP_EPS = {"process": "vp-linear", "T": 1.0, "time_sampling": "uniform", "weighting": "eps"}
VECTOR = {"batch_size": 128, "steps_factor": 4, "lr_schedule": "cosine", "clip": 1.0, "ema": 0.9997}
RECIPES = {
    "baseline: TrainConfig() (log-spaced embedding, log-uniform times, A3 weighting, batch 512, constant lr)": {},
    "time embedding: v1 (before)": {"embedding": "v1"},
    "time input: log-SNR": {"embedding": "log-snr"},
    "times: log-normal in sigma_EDM": {"time_sampling": "log-normal"},
    "times: uniform": {"time_sampling": "uniform"},
    "parametrization: data (x0)": {"parametrization": "data"},
    "weighting: noise MSE at uniform VP-linear times (the image recipe's)": {**VP_EPS},
    "weighting: min-SNR-5 at uniform VP-linear times": {**VP_EPS, "weighting": "min-snr"},
    "lr: warm-up + cosine decay, clip 1": {"lr_schedule": "cosine", "clip": 1.0},
    "EMA 0.9997": {"ema": 0.9997},
    "Adam beta1 0.95": {"adam_beta1": 0.95},
    "network: width 256": {"hidden": 256},
    "network: 6 blocks": {"depth": 6},
    "network: layer normalisation before each block's SiLU": {"layer_norm": True},
    "log-normal times + cosine lr + clip": {"time_sampling": "log-normal", "lr_schedule": "cosine", "clip": 1.0},
    "batch 128, 4x the steps, cosine lr, clip 1, EMA 0.9997 (the vector recipe before the stable target)": VECTOR,
    "the vector recipe with the stable target over 1024 reference rows (the vector recipe before batch 256)": {**VECTOR,
                                                                                           "reference": 1024},
    "the vector recipe, EMA capped at 0.999 (a shorter average)": {**VECTOR, "ema": 0.999},
    "the vector recipe without EMA (the last weights)": {**VECTOR, "ema": 0.0},
    "the vector recipe with layer normalisation in each block": {**VECTOR, "layer_norm": True},
    **{f"the vector recipe, times with density ~ t^-{a} and A3 weights (log-uniform: a = 1)": {**VECTOR, "power": a}
       for a in (0.5, 0.75, 1.15, 1.3)},
}


@contextlib.contextmanager
def power_times(a: float | None):
    """Training times with density proportional to t^-a on [delta, T], importance-weighted to the A3
    average, in place of log-uniform times (a = 1), for the rows that scan the exponent."""
    if a is None:
        yield
        return
    import sys

    train_module = sys.modules["sgmlab.learn.train"]
    sample_times, time_weights = train_module.sample_times, train_module.time_weights
    b = 1.0 - a

    def times(n, T, delta, kind, generator, process=None):
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        return (delta**b + (T**b - delta**b) * u) ** (1 / b)

    def weights(t, T, delta, sampling, weighting, process):
        return (T**b - delta**b) / (b * t.pow(-a) * (T - delta))  # 1 / (p(t) (T - delta))

    train_module.sample_times, train_module.time_weights = times, weights
    try:
        yield
    finally:
        train_module.sample_times, train_module.time_weights = sample_times, time_weights


@contextlib.contextmanager
def layer_norm_mlp(on: bool):
    """The MLP with a LayerNorm at the start of each residual block (pre-norm, as in transformers),
    for the normalisation rows; sgmlab's MLP has none."""
    if not on:
        yield
        return
    from torch import nn

    from sgmlab.learn import networks

    original = networks.MLP.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(self.hidden), *b) for b in self.blocks)

    networks.MLP.__init__ = init
    try:
        yield
    finally:
        networks.MLP.__init__ = original


def exact_score_errors(score, target, T: float = 5.0, delta: float = 1e-3) -> tuple[float, float]:
    """eps_score^2 of ``score`` (OU time) against ``target``'s exact score, averaged uniformly in t over
    [delta, T] (the A3 average) and uniformly in log t, on 40 times each with 2048 draws (seed 7)."""
    g = torch.Generator().manual_seed(7)
    uni = score_error(score, target, sg.grids.uniform(T, delta, 40), n=2048, generator=g)
    geo = score_error(score, target, sg.grids.exponential(T, delta, 40), n=2048, generator=g)
    w = torch.log(geo.times) - torch.log(torch.cat([geo.times[1:], torch.tensor([delta])]))
    return uni.time_average, float((w * geo.eps2).sum() / w.sum())


def measure(q, steps: int, seed: int, change: dict) -> dict:
    data = q.sample(20_000, generator=torch.Generator().manual_seed(100 + seed))
    change = dict(change)
    steps *= change.pop("steps_factor", 1)
    norm, power = change.pop("layer_norm", False), change.pop("power", None)
    config = replace(BASE, steps=steps, eval_every=steps, checkpoint_every=steps, seed=seed, **change)
    if power is not None and (config.time_sampling, config.weighting, config.process) != ("log-uniform", "a3", "ou"):
        raise ValueError("the power-law rows replace log-uniform times under the A3 weighting of OU")
    t0 = time.perf_counter()
    with layer_norm_mlp(norm), power_times(power):
        res = train(data, config)
    seconds = time.perf_counter() - t0
    target = standardized_target(q, res.standardizer)
    model_score, process = res.model.score_fn(), vp_family(config.process)

    def score(x: torch.Tensor, t: float) -> torch.Tensor:  # in OU time whatever the model's clock
        return model_score(x, float(process.time_from_ou(torch.tensor(t, dtype=torch.float64))))

    a3, log_avg = exact_score_errors(score, target)
    plan = sg.default_plan(20, t_range=(1e-3, 5.0))  # OU time, inside every row's trained range
    x = sg.sample(score, 20_000, q.dim, nfe=20, plan=plan, generator=torch.Generator().manual_seed(seed))
    mmd = sg.metrics.ExactMMD(sg.processes.OU().marginal(target, float(plan.grid[plan.grid > 0][-1]))
                              if float(plan.grid[-1]) > 0 else target)(x)
    return {"a3": a3, "log": log_avg, "mmd": mmd.value, "mmd_se": mmd.se, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                    help="run only the recipes whose name contains one of these; the other rows are kept from the "
                         "existing file (which must come from the same --steps, --seeds and --threads)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    q = sg.targets.builtin("mixture", 16)
    lines = ["# Training choices by the exact score error", "",
             f"Regenerate: `.venv/bin/python benchmarks/recipe_ablation.py --steps {args.steps} --seeds "
             f"{' '.join(map(str, args.seeds))} --threads {args.threads}`. The built-in 16-d mixture, 20000 exact samples; every "
             f"recipe trains the same MLP for {args.steps} steps (the same CPU time up to the seconds column); "
             f"means over seeds {args.seeds} +- the standard error over seeds. eps^2 in standardized units. "
             "MMD^2: the exact-law MMD of 20000 samples from sg.sample's default plan at 20 evaluations "
             "(lower is better; its own Monte-Carlo standard error in brackets, first seed).", "",
             "| recipe | eps^2, uniform in t (A3) | eps^2, uniform in log t | MMD^2 of samples | seconds |",
             "|---|---|---|---|---|"]
    out = Path(__file__).parent / "recipe_ablation.md"
    old = out.read_text() if out.exists() else ""
    kept = {line.split(" | ")[0][2:]: line for line in old.splitlines() if line.startswith("| ") and " | " in line}
    for name, change in RECIPES.items():
        if args.only and not any(o in name for o in args.only):
            if name in kept:
                lines.append(kept[name])
            continue
        runs = [measure(q, args.steps, s, change) for s in args.seeds]

        def cell(key: str) -> str:
            vals = [r[key] for r in runs]
            se = statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else float("nan")
            return f"{statistics.mean(vals):.4g} +- {se:.2g}"

        row = (f"| {name} | {cell('a3')} | {cell('log')} | {cell('mmd')} ({runs[0]['mmd_se']:.1g}) | "
               f"{statistics.mean(r['seconds'] for r in runs):.0f} |")
        lines.append(row)
        print(row, flush=True)
    notes = old.partition("\nWhat this says")[1:]
    out.write_text("\n".join(lines) + "\n" + "".join(notes))  # the hand-written notes below the table are kept
    print("wrote benchmarks/recipe_ablation.md")


if __name__ == "__main__":
    main()
