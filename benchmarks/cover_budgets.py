"""Which of the chosen grids serves each budget: write benchmarks/budgets.md.

    .venv/bin/python benchmarks/cover_budgets.py [--max-budget 100]

``choose_defaults.py`` optimises a grid at a few budgets (4, 6, 8, 10, 14, 20, ...). A grid's
quality is not monotone in the number of steps between them: a density chosen for 3 steps can
put a 4th step where a third-order step across very uneven neighbours is unstable (at budget 5
the row chosen at 4 lost 10x to diffusers on well-conditioned Gaussians). So every budget from 1
to ``--max-budget`` is assigned, among the chosen rows (each with DPM-Solver++ 3M and 2M), the
one with the smallest soft maximum of log(error / best diffusers scheduler's error) over the
training family, the objective ``choose_defaults.py`` uses; consecutive budgets with the same
choice make one row of ``DEFAULT_TABLE``. The held-out Gaussians (exact KL) are then measured at
every budget, against the same peers, to show what the table does where nothing was chosen.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import sgmlab as sg
from sgmlab.defaults import _CHOSEN
from sgmlab.experiments.bench import digits_target
from sgmlab.experiments.heldout import family_targets

sys.path.insert(0, str(Path(__file__).parent))
from choose_defaults import SAMPLERS, Coupled, DiagonalGaussians, _stats, errors, peer_errors, robust  # noqa: E402

# The grids chosen by choose_defaults.py at their budgets (benchmarks/defaults.md): the candidates.
CHOSEN = tuple(sorted(_CHOSEN.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=48)
    ap.add_argument("--mixtures", type=int, default=8)
    ap.add_argument("--heldout-gaussians", type=int, default=32)
    ap.add_argument("--n-pilot", type=int, default=128)
    ap.add_argument("--max-budget", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("budgets.md"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    fam = family_targets("train", 0, args.gaussians, args.mixtures)
    gauss = DiagonalGaussians([q for _, q in fam if isinstance(q, sg.targets.Gaussian)])
    others = [(n, q) for n, q in fam if not isinstance(q, sg.targets.Gaussian)] + [("digits", digits_target())]
    coupled = [Coupled(q, args.n_pilot, 0) for _, q in others]
    held = DiagonalGaussians([q for _, q in family_targets("heldout", 0, args.heldout_gaussians, 0)])
    candidates = [(f"{s} of row {b}", sampler, spec) for b, spec in CHOSEN for s, sampler in SAMPLERS.items()]
    rows, lines = [], []
    for nfe in range(1, args.max_budget + 1):
        best = peer_errors(gauss, coupled, nfe)
        scored = []
        for name, sampler, spec in candidates:
            try:
                r = errors(spec, sampler, nfe, gauss, coupled) / best
            except ValueError:  # a grid too uneven for this many steps
                continue
            scored.append((robust(np.log(r)), name, sampler, spec, r))
        _, name, sampler, spec, r = min(scored, key=lambda s: s[0])
        current = sg.default_plan(nfe)
        now = errors_of(current, gauss, coupled) / best
        hbest = np.min([held.kl(sg.interop.peers.DiffusersPeer(p, nfe), None).numpy()
                        for p in sg.experiments.heldout.PEERS], axis=0)
        hr = held.kl(sampler, spec.grid(nfe)).numpy() / hbest
        lines.append(f"| {nfe} | {name} | {_stats(r)} | {_stats(now)} | {_stats(hr)} |")
        if not rows or rows[-1][1:] != (sampler, spec):
            rows.append((nfe, sampler, spec))
        print(f"{nfe}: {name}: {_stats(r)}; table in force {_stats(now)}; held out {_stats(hr)} "
              f"({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    head = [
        "# Which chosen grid serves each budget",
        "",
        f"Regenerate: `.venv/bin/python benchmarks/cover_budgets.py --max-budget {args.max_budget}` "
        "(the script's docstring says how).",
        "",
        f"Training family: {gauss.count} Gaussians (exact KL) and {len(others)} non-Gaussian targets (mean squared "
        "distance to a reference ODE solution), as in `defaults.md`; ratios to the best of diffusers' "
        f"deterministic schedulers. Held out: {held.count} Gaussians of the held-out family (exact KL), never "
        "used to choose.",
        "",
        "| budget | assigned (training family) | training: ratio to best peer | the table in force when this ran "
        "(training) | held out: ratio to best peer |",
        "|---|---|---|---|---|"]
    code = ["", "As rows of `DEFAULT_TABLE` (smallest budget, sampler, GridSpec):", "", "```"]
    for nfe, sampler, spec in rows:
        sname = "dpm_solver_pp_3m" if sampler == SAMPLERS["3M"] else "dpm_solver_pp_2m"
        code.append(f"({nfe}, {sname}, GridSpec({spec.T:.4g}, {spec.delta:.3g}, "
                    f"({', '.join(f'{v:.3g}' for v in spec.density)}), {spec.denoise})),")
    code += ["```", "", f"{time.time() - t0:.0f} s on this machine, one thread."]
    args.out.write_text("\n".join(head + lines + code) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


def errors_of(plan, gauss: DiagonalGaussians, coupled: list[Coupled]) -> np.ndarray:
    return np.concatenate([gauss.kl(plan.sampler, plan.grid).numpy(), [c.mse(plan.sampler, plan.grid) for c in coupled]])


if __name__ == "__main__":
    main()
