"""Plans on multimodal targets, judged by the law: write benchmarks/multimodal.md.

    .venv/bin/python benchmarks/multimodal.py [--seeds 0 1 --mixtures 4 --n 40000 --pilots 5]
    .venv/bin/python benchmarks/multimodal.py --smoke     # seconds: one small cell of each part

Two parts, each in its own process (one thread each):

1. The ``modes-heldout`` family (sgmlab.experiments.heldout: 3 to 8 components with random
   rotations, component variances 1e-3 to 2, unequal weights, modes 1.5 to 5 apart, d 2 to 16),
   never used to choose anything, at the held-out suite's 13 budgets: the fixed default and
   ``sg.tune`` against diffusers' deterministic schedulers, by the exact-law MMD with kernels down to
   each target's smallest component scale (coupled z, a tie below |z| = 2.33), and the tuned plan
   against the default on the same draws.
2. The pilot seeds: ``sg.tune`` with the old objective (``coupled``: E|plan - ref|^2 over all
   draws) and the new one (``within``: over the draws that stay in their mode) on the mixture that
   showed the problem (d = 4, 8 components 5 apart, variances 0.05 to 0.2), 5 pilot seeds each: the
   chosen plan's held-out law error and whether it is resolved worse than the default.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

Z = 2.33  # one-sided p = 0.01


def problem_mixture(seed: int = 0):
    """The mixture of the multimodal-plans report: d = 4, 8 components with the reported weights,
    means 5 x N(0, I), covariances random rotations of variances log-uniform in [0.05, 0.2]."""
    import torch

    import sgmlab as sg

    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([0.097, 0.059, 0.033, 0.308, 0.324, 0.059, 0.061, 0.059], dtype=torch.float64)
    means = 5 * torch.randn(8, 4, generator=g, dtype=torch.float64)
    covs = []
    for _ in range(8):
        q, r = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
        U = q * torch.sign(r.diagonal())
        lam = 0.05 * 4 ** torch.rand(4, generator=g, dtype=torch.float64)
        c = (U * lam) @ U.T
        covs.append(0.5 * (c + c.T))
    return sg.targets.GaussianMixture(w / w.sum(), means, torch.stack(covs))


def _family(seed: int, mixtures: int, n: int, budgets: tuple[int, ...]) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    from sgmlab.experiments.heldout import HeldoutConfig, run_heldout

    rows = run_heldout(HeldoutConfig(family="modes-heldout", seed=seed, gaussians=0, mixtures=mixtures,
                                     budgets=budgets, n=n), progress=lambda m: print(m, flush=True))
    from dataclasses import asdict

    return [asdict(r) for r in rows]


def _pilots(pilots: int, n: int, budgets: tuple[int, ...], n_pilot: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    import sgmlab as sg

    q = problem_mixture()
    score = sg.scores.exact(q)
    meter = sg.metrics.ExactMMD(q, bandwidths=sg.metrics.law_bandwidths(q), features=2048)
    x0 = sg.processes.OU().prior_sample(n, q.dim, generator=torch.Generator().manual_seed(99))
    out = []
    for nfe in budgets:
        plan = sg.default_plan(nfe)
        base = meter(plan.sampler(score, x0.clone(), plan.grid))
        out.append({"nfe": nfe, "objective": "default", "pilot": -1, "mmd2": base.value, "se": base.se, "z": 0.0,
                    "source": "fixed default", "switches": 0})
        for objective in ("coupled", "within"):
            for pilot in range(pilots):
                tp = sg.tune(score, q.dim, nfe, generator=torch.Generator().manual_seed(pilot), objective=objective,
                             target=q, n_pilot=n_pilot)
                est = meter(tp.sampler(score, x0.clone(), tp.grid))
                diff, se = meter.difference(base, est)
                out.append({"nfe": nfe, "objective": objective, "pilot": pilot, "mmd2": est.value, "se": est.se,
                            "z": diff / se if se > 0 else 0.0, "source": tp.source,
                            "switches": tp.certificate.disagreements})
                print(f"pilots: {nfe} evaluations, {objective}, pilot {pilot}: {est.value:.3g}", flush=True)
    return out


def _verdict_counts(rows: list[dict], method: str, nfe: int) -> tuple[int, int, int, float, int]:
    sel = [r for r in rows if r["method"] == method and r["nfe"] == nfe]
    wins = sum(r["verdict"] == "win" for r in sel)
    losses = sum(r["verdict"] == "loss" for r in sel)
    worse = sum(r["vs_default_z"] < -Z for r in sel)
    worst = max((r["ratio"] for r in sel), default=math.nan)
    return wins, len(sel) - wins - losses, losses, worst, worse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--mixtures", type=int, default=4, help="mixtures per seed")
    ap.add_argument("--n", type=int, default=40_000)
    ap.add_argument("--pilots", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="one small cell of each part, to check the script runs")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("multimodal.md"))
    args = ap.parse_args()
    budgets = (4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 70, 100)
    pilot_budgets, n_pilot = (10, 20), 512
    if args.smoke:
        args.seeds, args.mixtures, args.n, args.pilots = [0], 1, 2000, 1
        budgets, pilot_budgets, n_pilot = (10,), (10,), 64
        args.out = Path(os.environ.get("TMPDIR", "/tmp")) / "multimodal-smoke.md"
    t0 = time.time()
    os.environ["OMP_NUM_THREADS"] = "1"
    with ProcessPoolExecutor(max_workers=min(len(args.seeds) + 1, os.cpu_count() or 1)) as ex:
        fam = [ex.submit(_family, s, args.mixtures, args.n, budgets) for s in args.seeds]
        pil = ex.submit(_pilots, args.pilots, args.n, pilot_budgets, n_pilot)
        rows = [r for f in fam for r in f.result()]
        prows = pil.result()
    targets = sorted({r["target"] for r in rows})
    lines = ["# Plans on multimodal targets, judged by the law", "",
             f"Regenerate: `.venv/bin/python benchmarks/multimodal.py --seeds {' '.join(map(str, args.seeds))} "
             f"--mixtures {args.mixtures} --n {args.n} --pilots {args.pilots}` ({time.time() - t0:.0f} s on 2 cores).",
             "",
             "## The modes-heldout family", "",
             f"{len(targets)} mixtures never used to choose anything ({', '.join(targets)}); n = {args.n} samples per "
             "method from shared prior draws; error: exact-law MMD^2 with Gaussian kernels from the median distance "
             "down to each target's smallest component scale. Each cell: wins / ties / losses against every diffusers "
             f"deterministic scheduler (coupled z, a tie below {Z}), the worst ratio to the best scheduler's error "
             "(errors under the noise floor count as the floor), and, for the tuned plan, how many cells it is "
             "resolved worse than the fixed default.", "",
             "| evaluations | fixed default: W / T / L, worst ratio | sg.tune: W / T / L, worst ratio | tuned resolved "
             "worse than the default |", "|---|---|---|---|"]
    for nfe in budgets:
        dw, dt, dl, dr, _ = _verdict_counts(rows, "sgmlab", nfe)
        tw, tt, tl, tr, worse = _verdict_counts(rows, "tuned", nfe)
        lines.append(f"| {nfe} | {dw} / {dt} / {dl}, {dr:.2g} | {tw} / {tt} / {tl}, {tr:.2g} | {worse} |")
    lines += ["", "## The pilot seeds", "",
              f"A mixture built as the report of the problem describes it (`problem_mixture`, seed 0: d = 4, 8 components "
              "with its weights, means 5 x N(0, I), variances 0.05 to 0.2 in random rotations), "
              f"`sg.tune(score, 4, nfe, target=q, n_pilot={n_pilot})` with each objective and pilot seeds 0 to "
              f"{args.pilots - 1}; the chosen plan's exact-law MMD^2 on {args.n} fresh draws (the same for every "
              f"plan) and its coupled z against the fixed default's (negative: worse).", "",
              "| evaluations | objective | MMD^2 per pilot seed | spread (max / min) | resolved worse than the "
              "default | kept the default |", "|---|---|---|---|---|---|"]
    for nfe in pilot_budgets:
        base = next(r for r in prows if r["nfe"] == nfe and r["objective"] == "default")
        lines.append(f"| {nfe} | fixed default | {base['mmd2']:.3g} +- {base['se']:.1g} | | | |")
        for objective in ("coupled", "within"):
            sel = [r for r in prows if r["nfe"] == nfe and r["objective"] == objective]
            vals = [r["mmd2"] for r in sel]
            floor = max(base["se"], 1e-12)
            spread = max(max(vals), floor) / max(min(vals), floor)
            lines.append(f"| {nfe} | {objective} | {', '.join(f'{v:.3g}' for v in vals)} | {spread:.3g} | "
                         f"{sum(r['z'] < -Z for r in sel)} of {len(sel)} | "
                         f"{sum(r['source'] != 'tuned' for r in sel)} |")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
