"""sgmlab's PlanScheduler against diffusers' DPM-Solver++ and UniPC inside diffusers' sampling loop,
at equal steps: write benchmarks/diffusers_scheduler.md.

    .venv/bin/python benchmarks/diffusers_scheduler.py [--gaussians 16 --steps 10 20 50]

Every scheduler runs with the DDPM training schedule (1000 steps, linear betas), in diffusers'
loop (``sgmlab.interop.peers.run_scheduler``) driven by the exact noise prediction of a random
Gaussian target, in float64. A deterministic scheduler is then an affine map of the prior draw, so
its output law is exact (``deterministic_output_law``) and so is its KL to the target: no sampling
noise. Targets: the training family (the defaults' rows were chosen on it) and the held-out family
(never used to choose anything), ``sgmlab.experiments.heldout``. The floor is
KL(N(0, I) || q_T) at the schedule's last timestep, what the exact flow from N(0, I) would give.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def _schedulers(steps: int) -> dict:
    import diffusers as D

    from sgmlab.interop.scheduler import PlanScheduler

    return {
        "sgmlab PlanScheduler (default plan)": lambda: PlanScheduler(),
        "diffusers DPM-Solver++ 2M (its default)": lambda: D.DPMSolverMultistepScheduler(),
        "diffusers DPM-Solver++ 3M": lambda: D.DPMSolverMultistepScheduler(solver_order=3),
        "diffusers UniPC (its default)": lambda: D.UniPCMultistepScheduler(),
    }


def _kl(make, steps: int, q) -> float:
    import sgmlab as sg
    from sgmlab.interop.peers import run_scheduler

    def sampler(score, x, grid=None, *, process=None):
        sched = make()
        sched.set_timesteps(steps)
        return run_scheduler(sched, score, x)

    law = sg.samplers.deterministic_output_law(sampler, q, None)
    return float(sg.metrics.gaussian_kl(law, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--out", default=str(Path(__file__).with_suffix(".md")))
    args = ap.parse_args()

    import sgmlab as sg
    from sgmlab.experiments.heldout import family_targets
    from sgmlab.interop.scheduler import PlanScheduler

    t0 = time.time()
    T = PlanScheduler().ou_range[1]
    lines = [
        "# sgmlab's PlanScheduler against diffusers' schedulers, in diffusers' loop",
        "",
        f"Regenerate: `.venv/bin/python benchmarks/diffusers_scheduler.py --gaussians {args.gaussians} "
        f"--seed {args.seed} --steps {' '.join(map(str, args.steps))}` (the script's docstring says how).",
        "",
        "Exact KL(output law || target) of each scheduler in diffusers' sampling loop, with the DDPM training "
        f"schedule (1000 linear betas; the last timestep is OU time {T:.3f}), on {args.gaussians} random "
        "Gaussians per family (d from 1 to 100, covariance eigenvalues from 1e-4 to 16, random rotations and "
        "means). Ratio = sgmlab's KL / the best diffusers scheduler's KL on that target; a win is a ratio < 1. "
        "The floor is KL(N(0, I) || q_T): no scheduler on this schedule can go below it.",
        "",
    ]
    for family in ("train", "heldout"):
        targets = family_targets(family, args.seed, args.gaussians, 0)
        lines += [f"## {family} family", "",
                  "| steps | sgmlab wins | median ratio | worst ratio | median KL: sgmlab | DPM++ 2M | DPM++ 3M | UniPC "
                  "| floor |", "|---|---|---|---|---|---|---|---|---|"]
        for steps in args.steps:
            kls: dict[str, list[float]] = {}
            floors = []
            for _, q in targets:
                for name, make in _schedulers(steps).items():
                    kls.setdefault(name, []).append(_kl(make, steps, q))
                qT = sg.processes.OU().marginal(q, T)
                floors.append(float(sg.metrics.gaussian_kl(sg.targets.Gaussian(torch.zeros(q.dim), torch.eye(q.dim)),
                                                           qT)))
            names = list(kls)
            ours = kls[names[0]]
            best = [min(kls[n][i] for n in names[1:]) for i in range(len(ours))]
            ratios = [o / b for o, b in zip(ours, best)]
            med = [statistics.median(kls[n]) for n in names]
            lines.append(f"| {steps} | {sum(r < 1 for r in ratios)}/{len(ratios)} | {statistics.median(ratios):.3g} "
                         f"| {max(ratios):.3g} | " + " | ".join(f"{m:.3g}" for m in med)
                         + f" | {statistics.median(floors):.2g} |")
            print(family, steps, lines[-1], flush=True)
        lines.append("")
    lines += [f"Run time {time.time() - t0:.0f} s on one CPU thread.", ""]
    Path(args.out).write_text("\n".join(lines))
    print("wrote", args.out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
