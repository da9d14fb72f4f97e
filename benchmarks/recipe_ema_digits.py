"""Does another weight average pay on the digits? Write benchmarks/recipe_ema_digits.md.

    .venv/bin/python benchmarks/recipe_ema_digits.py [--seconds 300 --seeds 0 1 --set KEY=VALUE ...]

One training run per seed of the image recipe (``recipe_vs_diffusers.train_sgmlab``, one thread)
keeps, beside its own EMA, averages of the same weights with other decays: constant decays with
the recipe's warm-up, the raw weights, diffusers' EMA warm-up (power 3/4, max 0.9999) and EDM2's
power-function averages (Karras et al. 2024: decay (1 - 1/k)^(gamma + 1) at step k, the post-hoc
family). Each average is sampled (2000 images, 50 evaluations, the same seed) and scored as
``recipe_vs_diffusers.py`` scores the digits; the same model at 100 and 200 evaluations checks the
sampler. All rows of a seed share one training run, so their differences are paired.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

import recipe_vs_diffusers as rv

AVERAGES = {  # name: decay at step k (1-based)
    "EMA 0.999 with warm-up (the recipe's)": lambda k: min(0.999, (1 + k) / (10 + k)),
    "EMA 0.99 with warm-up": lambda k: min(0.99, (1 + k) / (10 + k)),
    "EMA 0.9999 with warm-up": lambda k: min(0.9999, (1 + k) / (10 + k)),
    "raw weights (no average)": lambda k: 0.0,
    "diffusers' EMA (power 3/4, max 0.9999)": lambda k: min(0.9999, 1 - (1 + k) ** -0.75),
    "power-function average, gamma 5": lambda k: (1 - 1 / (k + 1)) ** 6,
    "power-function average, gamma 10": lambda k: (1 - 1 / (k + 1)) ** 11,
    "power-function average, gamma 20": lambda k: (1 - 1 / (k + 1)) ** 21,
}
KEYS = (("fd_train", "FD to train"), ("fd_test", "FD to test"), ("confidence", "classifier confidence"),
        ("nn_train", "NN distance to train"), ("copies", "near copies"))


class Averages:
    """Extra weight averages, updated wherever training updates its EMA (``torch._foreach_lerp_`` on
    the EMA's parameters, once a step); ``load(name)`` puts one into the EMA network."""

    def __init__(self) -> None:
        self.ema = self.bufs = None
        self.k = 0
        self._lerp = torch._foreach_lerp_

    def __enter__(self) -> Averages:
        def lerp(ema, params, weight):
            if self.ema is not ema:  # a new run (the timing probes run first): start from its initial weights
                self.ema, self.k = ema, 0
                self.bufs = {name: [p.detach().clone() for p in ema] for name in AVERAGES}
            self._lerp(ema, params, weight)
            self.k += 1
            for name, decay in AVERAGES.items():
                self._lerp(self.bufs[name], [p.detach() for p in params], 1 - decay(self.k))

        torch._foreach_lerp_ = lerp
        return self

    def __exit__(self, *exc) -> None:
        torch._foreach_lerp_ = self._lerp

    def load(self, name: str) -> None:
        with torch.no_grad():
            for p, b in zip(self.ema, self.bufs[name]):
                p.copy_(b)


def score(s: torch.Tensor, data: dict, seed: int) -> dict:
    m = rv.digits_metrics(s.double().clamp(0, 16), data, seed, mmd=False)
    return {k: m[k] for k, _ in KEYS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="TrainConfig fields, as in recipe_vs_diffusers.py")
    args = ap.parse_args()
    torch.set_num_threads(1)
    overrides = rv.parse_set(args.set)
    data = rv.load("digits")
    rows: dict[str, list[dict]] = {}
    for seed in args.seeds:
        with Averages() as avg:
            res, steps = rv.train_sgmlab(data["train"], args.seconds, seed, (8, 8), overrides)
        assert all(torch.equal(a, b) for a, b in zip(avg.ema, avg.bufs[next(iter(AVERAGES))]))  # the recipe's own EMA
        runs = [(name, name, 50) for name in AVERAGES]
        runs += [(f"the recipe's EMA, {nfe} evaluations", next(iter(AVERAGES)), nfe) for nfe in (100, 200)]
        for row, name, nfe in runs:
            avg.load(name)
            s = res.sample(2000, nfe=nfe, generator=torch.Generator().manual_seed(seed))
            rows.setdefault(row, []).append(score(s, data, seed))
            print(seed, row, rows[row][-1], flush=True)
    cmd = " ".join(["--seconds", f"{args.seconds:g}", "--seeds", *map(str, args.seeds)]
                   + (["--set", *args.set] if args.set else []))
    lines = ["# Weight averages and sampler budget on the digits", "",
             f"Regenerate: `.venv/bin/python benchmarks/recipe_ema_digits.py {cmd}` (one thread, {args.seconds:g} s "
             f"of training per seed, {steps} steps in the last; means over seeds {args.seeds}; every row of a seed "
             "samples the same training run).", "",
             "| weights | " + " | ".join(c for _, c in KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for name, ms in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{statistics.mean(m[k] for m in ms):.4g}" for k, _ in KEYS) + " |")
    out = Path(__file__).parent / "recipe_ema_digits.md"
    old = out.read_text() if out.exists() else ""
    notes = old[old.index("\n## What this says"):] if "\n## What this says" in old else ""
    out.write_text("\n".join(lines) + "\n" + notes)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
