"""How loose is the certified bound? Write benchmarks/bound_looseness.md and bound_looseness.png.

    .venv/bin/python benchmarks/bound_looseness.py [--targets 40 --n 200000]
    .venv/bin/python benchmarks/bound_looseness.py --smoke      # seconds

On random Gaussians (the ``heldout`` family, seed 0) the exponential integrator's output law is
known exactly (``sg.samplers.exact_output_law``), so the truth is exact: KL(q_delta || p) in closed
form, TV(p, q_delta) by Monte Carlo from the two laws with its standard error. Against them, the
certified bounds (``sg.theory.certified_bound``, closed form and RIGOROUS here: the exact score on a
Gaussian) on a uniform grid from T = 8 to delta = 1e-3 with N steps: the ratios bound / truth, their
median and range over the targets, per N. The bound is Girsanov's path KL, which grows with the
dimension and the steps' squared size, while the output law's error is one step's bias squared
at most: the gap widens as h falls.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

import sgmlab as sg
from sgmlab.experiments.heldout import family_targets

STEPS = (10, 30, 100, 300, 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=40)
    ap.add_argument("--n", type=int, default=200_000, help="Monte-Carlo draws for each true TV")
    ap.add_argument("--T", type=float, default=8.0)
    ap.add_argument("--delta", type=float, default=1e-3)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("bound_looseness.md"))
    a = ap.parse_args()
    steps = STEPS
    if a.smoke:
        a.targets, a.n, steps = 3, 2000, (10, 30)
        a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "bound_looseness-smoke.md"
    t0 = time.time()
    g = torch.Generator().manual_seed(0)
    targets = [q for _, q in family_targets("heldout", 0, a.targets, 0)]
    rows = []  # (N, target, tv_bound, tv, tv_se, kl_bound, kl)
    for N in steps:
        grid = sg.grids.uniform(a.T, a.delta, N)
        for i, q in enumerate(targets):
            b = sg.theory.certified_bound(q, sg.scores.exact(q), grid)
            law = sg.samplers.exact_output_law(sg.samplers.exponential_integrator, q, grid)
            ref = sg.processes.OU().marginal(q, a.delta)
            tv = sg.metrics.gaussian_tv_mc(law, ref, a.n, generator=g)
            rows.append((N, i, b.tv_bound, tv.value, tv.stderr, b.kl_bound, sg.metrics.gaussian_kl(ref, law)))
    r = np.array(rows)
    lines = ["# How loose the certified bound is", "",
             f"Regenerate: `.venv/bin/python benchmarks/bound_looseness.py --targets {a.targets} --n {a.n}` "
             f"({time.time() - t0:.0f} s; the docstring says how).", "",
             f"{a.targets} Gaussians of the `heldout` family (d 2 to 50), the exponential integrator with the exact "
             f"score on a uniform grid from T = {a.T:g} to delta = {a.delta:g}. Truth: KL(q_delta || p) exact, "
             f"TV(p, q_delta) by Monte Carlo ({a.n} draws; targets whose TV is under 3 standard errors are left out "
             "of the TV ratios). Ratios bound / truth: median [smallest, largest].", "",
             "| steps N | TV bound / TV | KL bound / KL | TV cells |", "|---|---|---|---|"]
    summary = []
    for N in steps:
        s = r[r[:, 0] == N]
        ok = s[:, 3] > 3 * s[:, 4]
        tv_ratio, kl_ratio = s[ok, 2] / s[ok, 3], s[:, 5] / s[:, 6]
        summary.append((N, tv_ratio, kl_ratio))
        lines.append(f"| {N} | {np.median(tv_ratio):.3g} [{tv_ratio.min():.3g}, {tv_ratio.max():.3g}] | "
                     f"{np.median(kl_ratio):.3g} [{kl_ratio.min():.3g}, {kl_ratio.max():.3g}] | {int(ok.sum())} |")
        assert (s[:, 5] >= s[:, 6]).all(), f"a KL bound below the exact KL at N={N}"
    lines += ["", "Every KL bound is above the exact KL (the script stops otherwise). Figure: "
              "`bound_looseness.png`, the ratios against the largest step h = (T - delta) / N."]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    h = np.array([(a.T - a.delta) / N for N, _, _ in summary])
    for k, (label, marker) in enumerate((("TV bound / TV", "o"), ("KL bound / KL", "s"))):
        med = np.array([np.median(s[1 + k]) for s in summary])
        lo = np.array([s[1 + k].min() for s in summary])
        hi = np.array([s[1 + k].max() for s in summary])
        ax.fill_between(h, lo, hi, alpha=0.2)
        ax.loglog(h, med, marker + "-", label=f"{label} (median, range)")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel("step h")
    ax.set_ylabel("bound / truth")
    ax.set_title("Certified bound against the exact error, random Gaussians", fontsize=9)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    png = a.out.with_suffix(".png")
    fig.savefig(png, dpi=120)
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out} and {png}")


if __name__ == "__main__":
    main()
