"""The vector recipe's choices at equal CPU time, by the exact score error: write
benchmarks/recipe_ablation_time.md.

    .venv/bin/python benchmarks/recipe_ablation_time.py [--seconds 60 --seeds 0 1 2 --threads 1]

recipe_ablation.md compares choices at the same number of steps; choices that change the cost of a
step (the batch size, the stable target's reference rows) are compared here at the same wall time,
as recipe_vs_diffusers.md compares the recipes: each row trains ``sg.learn.recipe()`` with the
changes it names (most rows: from the recipe before, ``BEFORE``) for ``--seconds`` (steps from
timing probes, ``recipe_vs_diffusers.train_sgmlab``) on the built-in 16-d mixture's 20000
training samples of that benchmark, then measures eps_score^2 against
the exact score (uniform in t, as the paper's bound sums it on a 40-step grid, and uniform in log t)
and the exact-law MMD^2 of 20000 samples at 50 evaluations. ``--only`` reruns some rows and keeps
the others.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from recipe_vs_diffusers import cell, load, mixture_metrics, train_sgmlab

BEFORE = {"batch_size": 128, "adam_beta1": 0.9, "warmup": None}  # the recipe these rows chose between
ROWS = {
    "batch 128, the stable target over 1024 rows (the recipe before)": BEFORE,
    "the plain target (reference 0: the recipe before that)": {**BEFORE, "reference": 0},
    "512 reference rows": {**BEFORE, "reference": 512},
    "2048 reference rows": {**BEFORE, "reference": 2048},
    "batch 256": {**BEFORE, "batch_size": 256},
    "batch 256, Adam beta1 0.95, 500 warm-up steps (the recipe)": {},
    "Adam beta1 0.95, 500 warm-up steps": {**BEFORE, "adam_beta1": 0.95, "warmup": 500},
    "no clipping": {**BEFORE, "clip": 0.0},
    "batch 512, lr 2e-3": {**BEFORE, "batch_size": 512},
    "batch 512, lr 4e-3": {**BEFORE, "batch_size": 512, "lr": 4e-3},
    "batch 512, Adam beta1 0.95, 500 warm-up steps": {"batch_size": 512},
}


def measure(data: dict, seconds: float, seed: int, change: dict) -> dict:
    res, steps = train_sgmlab(data["train"], seconds, seed, None, change)
    s = res.sample(data["n"], nfe=50, generator=torch.Generator().manual_seed(seed)).double()
    return {**mixture_metrics(res.model.score_fn(), res.standardizer, s, data, seed), "steps": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="+", default=None, metavar="TEXT",
                    help="run only the rows whose name contains one of these; keep the others from the file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load("mixture")
    out = Path(__file__).parent / "recipe_ablation_time.md"
    lines = ["# The vector recipe's choices at equal CPU time", "",
             f"Regenerate: `.venv/bin/python benchmarks/recipe_ablation_time.py --seconds {args.seconds:g} --seeds "
             f"{' '.join(map(str, args.seeds))} --threads {args.threads}` (two such processes side by side, each with "
             f"--only, on 2 cores). Each row trains `sg.learn.recipe()` with the changes it names (most rows: from the "
             f"recipe before) for {args.seconds:g} s on the "
             "16-d mixture's 20000 training samples of recipe_vs_diffusers.md; eps^2 against the exact score in "
             "standardized units; MMD^2: exact-law MMD of 20000 samples at 50 evaluations. Means over seeds "
             f"{args.seeds} +- the standard error over seeds.", "",
             "| change | steps | eps^2, uniform in t (A3) | eps^2, uniform in log t | MMD^2 of samples |",
             "|---|---|---|---|---|"]
    rows: dict[str, str] = {}
    for name, change in ROWS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        runs = [measure(data, args.seconds, s, change) for s in args.seeds]
        row = (f"| {name} | {statistics.mean(r['steps'] for r in runs):.0f} | {cell(runs, 'eps2_a3')} | "
               f"{cell(runs, 'eps2_log')} | {cell(runs, 'mmd')} |")
        rows[name] = row
        print(row, flush=True)
    # the file as it is now (another process with --only may have written its rows meanwhile): its other rows are kept
    old = out.read_text() if out.exists() else ""
    kept = {line.split(" | ")[0][2:]: line for line in old.splitlines() if line.startswith("| ") and " | " in line}
    lines += [rows.get(name) or kept[name] for name in ROWS if name in rows or name in kept]
    notes = old.partition("\nWhat this says")[1:]
    out.write_text("\n".join(lines) + "\n" + "".join(notes))  # the hand-written notes below the table are kept
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
