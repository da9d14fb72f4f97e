"""What tuning a plan costs for a trained 64-d model (scikit-learn's digits), against the cost of
sampling with it, in one run; with ``--objective coupled within``, the tuner's objective before
(``coupled``) and now (``within``) side by side, as a ratio of times on the same machine.

    .venv/bin/python benchmarks/bench_tune.py [--net unet8 --nfe 10 20 50 --n-pilot 512 --trials 240]
    .venv/bin/python benchmarks/bench_tune.py --nfe 10 --objective coupled within --write   # -> bench_tune.md

Trains the `sgmlab train --data digits` network briefly (the tuning cost depends on the network's
size, not on how well it is trained), then times `sgmlab.experiments.learned.tune_model` (what
`sgmlab tune --model` runs) per budget, and sampling 10,000 images with the tuned plan.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import sgmlab as sg
from sgmlab.experiments.learned import DataSpec, tune_model
from sgmlab.learn import TrainConfig, load_model, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net", choices=["mlp", "unet8"], default="unet8")
    ap.add_argument("--nfe", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--n-pilot", type=int, default=512)
    ap.add_argument("--trials", type=int, default=240)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--objective", nargs="+", choices=["within", "law", "coupled"], default=["within"])
    ap.add_argument("--write", action="store_true", help="also write benchmarks/bench_tune.md")
    args = ap.parse_args()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)
    data = DataSpec("digits").load()
    with tempfile.TemporaryDirectory() as folder:
        config = TrainConfig(net=args.net, hidden=32 if args.net == "unet8" else 128, steps=args.train_steps,
                             standardize=data.standardize, eval_every=args.train_steps,
                             checkpoint_every=args.train_steps)
        train(data.x, config, out=folder)
        res = load_model(folder)
        params = sum(p.numel() for p in res.model.parameters())
        say(f"digits (d = {data.x.shape[1]}), {args.net} with {params:,} parameters; {torch.get_num_threads()} "
            f"threads; n_pilot {args.n_pilot}, {args.trials} trials")
        say(f"  {'nfe':>4s} {'objective':>9s} {'tuning s':>9s} {'evaluations':>12s} {'sampling 1e4 s':>15s} "
              f"{'ratio':>6s}  MMD^2 bound, W2 bound")
        for nfe in args.nfe:
            for objective in args.objective:
                t0 = time.perf_counter()
                tp = tune_model(folder, nfe, n_pilot=args.n_pilot, max_trials=args.trials, objective=objective)
                tuning = time.perf_counter() - t0
                score = res.model.score_fn()
                t0 = time.perf_counter()
                sg.sample(score, 10_000, data.x.shape[1], nfe=nfe, plan=tp, process=sg.processes.OU(),
                          generator=torch.Generator().manual_seed(0))
                sampling = time.perf_counter() - t0
                say(f"  {nfe:4d} {objective:>9s} {tuning:9.1f} {tp.cost:12,d} {sampling:15.1f} {tuning / sampling:6.1f}  "
                    f"{tp.certificate.mmd2_upper:.3g}, {tp.certificate.w2_upper:.3g} ({tp.source})")
    if args.write:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
        text = ["# What tuning a trained model costs", "",
                f"Regenerate: `.venv/bin/python benchmarks/bench_tune.py {' '.join(sys.argv[1:])}` (commit {commit}; "
                "the docstring says what runs). Times in seconds on this machine; ratio: tuning / sampling 10,000 "
                "images with the plan.", "", "```", *lines, "```"]
        (Path(__file__).parent / "bench_tune.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
