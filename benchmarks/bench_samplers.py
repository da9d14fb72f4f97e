"""Throughput of the samplers: overhead outside the score as a ratio to the time in the score, and
total time against diffusers' schedulers at the same budget with the same exact score, in one run.

    .venv/bin/python benchmarks/bench_samplers.py [--n 100000 --d 10 --k 8 --nfe 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import sgmlab as sg
from sgmlab.experiments.sampling import TimedScore
from sgmlab.samplers import _fused


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="write benchmarks/overhead.md")
    args = ap.parse_args()
    q = sg.targets.mixture(args.d, args.k)
    score = sg.scores.exact(q)
    g = torch.Generator().manual_seed(0)
    x0 = sg.processes.OU().prior_sample(args.n, args.d, generator=g)
    grid = sg.grids.log_snr(5.0, 1e-3, args.nfe)
    runs = {
        "sgmlab default (sg.sample)": lambda s: sg.sample(s, args.n, args.d, nfe=args.nfe, generator=g),
        "exponential_integrator": lambda s: sg.samplers.exponential_integrator(s, x0, grid, generator=g),
        "euler_maruyama": lambda s: sg.samplers.euler_maruyama(s, x0, grid, generator=g),
        "ddpm_ancestral": lambda s: sg.samplers.ddpm_ancestral(s, x0, grid, generator=g),
        "dpm_solver_pp_2m": lambda s: sg.samplers.dpm_solver_pp_2m(s, x0, grid),
        "dpm_solver_pp_3m": lambda s: sg.samplers.dpm_solver_pp_3m(s, x0, grid),
        "unipc_2": lambda s: sg.samplers.unipc_2(s, x0, grid),
        "unipc_3": lambda s: sg.samplers.unipc_3(s, x0, grid),
        "exponential_sde_2": lambda s: sg.samplers.exponential_sde_2(s, x0, grid, generator=g),
        "probability_flow_euler": lambda s: sg.samplers.probability_flow_euler(s, x0, grid),
    }
    fusable = set(runs)  # sgmlab's own; diffusers' schedulers run torch operations either way
    try:
        from sgmlab.interop.peers import PEERS, DiffusersPeer

        for name in PEERS:
            runs[f"diffusers {name}"] = lambda s, p=DiffusersPeer(name, args.nfe): p(s, x0, generator=g)
    except ImportError:
        print("(diffusers not installed: pip install sgmlab[bench])")
    print(f"n={args.n}, d={args.d}, K={args.k} full-covariance mixture, {args.nfe} score evaluations; "
          f"median of {args.repeats}, the rows taken in turn")
    lines = ["# Time outside the score", "",
             f"Regenerate: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_samplers.py --repeats {args.repeats} "
             f"--write` (one thread, nothing else running). n = {args.n}, d = {args.d}, a {args.k}-component "
             f"full-covariance mixture with its exact score, {args.nfe} score evaluations, float64. Overhead: wall "
             "time minus the time inside the score, over the time inside the score (median of the repeats; every "
             "row and both paths are measured in turn within each repeat, so a machine that slows down slows all "
             "of them). Fused: sgmlab's samplers as they run, a step in one pass over the state "
             "(`sgmlab/samplers/_fused.py`); torch operations: the same samplers with `_fused.ENABLED = False`, "
             "one torch operation per term, as before the kernels.",
             "Goals (issue 21): at most 5% for the default, at most 15% for the stochastic samplers.", "",
             "| sampler | seconds | overhead / score | torch operations: overhead / score | time / sgmlab default |",
             "|---|---|---|---|---|"]
    for warm in (runs["sgmlab default (sg.sample)"], runs["exponential_integrator"]):  # numba's kernels load once
        warm(score)
    configs = [(name, fused) for name in runs for fused in ((True, False) if name in fusable else (True,))]
    walls, ratios, scores = {c: [] for c in configs}, {c: [] for c in configs}, {c: [] for c in configs}
    for r in range(args.repeats):
        for name, fused in configs:
            _fused.ENABLED = fused
            timed = TimedScore(score)
            t0 = time.perf_counter()
            runs[name](timed)
            wall = time.perf_counter() - t0
            walls[name, fused].append(wall)
            ratios[name, fused].append((wall - timed.seconds) / timed.seconds)
            scores[name, fused].append(timed.seconds)
        print(f"  repeat {r + 1} of {args.repeats} done", flush=True)
    _fused.ENABLED = True
    med = lambda v: statistics.median(v)  # noqa: E731
    base = med(walls[next(iter(runs)), True])
    score_seconds = {name: med(scores[name, True]) for name in runs}
    for name in runs:
        w, over = med(walls[name, True]), f"{100 * med(ratios[name, True]):.1f}%"
        plain = f"{100 * med(ratios[name, False]):.1f}%" if name in fusable else ""
        print(f"  {name:32s} {w:7.2f} s  overhead/score {over:>6s}  torch operations {plain:>6s}  "
              f"time / sgmlab default {w / base:5.2f}", flush=True)
        lines.append(f"| {name} | {w:.2f} | {over} | {plain} | {w / base:.2f} |")
    # the part of a stochastic step no sampler can avoid with torch's generator: n x d float32 normal_ draws
    buf = torch.empty(args.n * args.d, dtype=torch.float32)
    noise = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for _ in range(grid.shape[0] - 1):
            buf.normal_(generator=g)
        noise.append(time.perf_counter() - t0)
    ratio = statistics.median(noise) / score_seconds["exponential_integrator"]
    print(f"  {'float32 normal_ draws alone':32s} {statistics.median(noise):7.2f} s  "
          f"overhead/score {100 * ratio:6.1f}%")
    lines += ["", f"The noise alone: {grid.shape[0] - 1} steps of n x d = {args.n * args.d} float32 `normal_` draws "
              f"(torch's CPU generator) take {statistics.median(noise):.2f} s, {100 * ratio:.1f}% of the time in the "
              "score; a stochastic sampler with torch's generator cannot go below it."]
    if args.write:
        (Path(__file__).parent / "overhead.md").write_text("\n".join(lines) + "\n")
        print("wrote benchmarks/overhead.md")


if __name__ == "__main__":
    main()
