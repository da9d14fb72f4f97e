"""Core throughput: one exact mixture score evaluation, and a full sampling run whose overhead
(time outside the score) is reported as a ratio to the time spent in the score.

    make bench            # or: .venv/bin/python benchmarks/bench_core.py [--n 100000 --d 10 --k 8 --steps 100]

Target (issue 2): sampler overhead at most 10% of the score time for n=1e5, d=10, 8 components,
100 steps. The overhead has two parts, timed separately: drawing the float64 Gaussian noise
(n*d = 1e6 normals a step) and the step's arithmetic. Timings are wall-clock on this machine;
the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

import sgmlab as sg
from sgmlab.experiments.sampling import TimedScore
from sgmlab.samplers.base import add_noise_, standard_normal_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    q = sg.targets.mixture(args.d, args.k)
    ou = sg.processes.OU()
    score = sg.scores.exact(q, ou)
    x = ou.prior_sample(args.n, args.d, generator=g)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; n={args.n}, d={args.d}, "
          f"K={args.k} full-covariance components, {args.steps} steps")

    score(x, 1.0)  # warm up
    times = iter(0.5 + 0.01 * i for i in range(100))  # a new time each call: the marginal is rebuilt as in sampling
    s1 = _median(lambda: score(x, next(times)))
    print(f"one exact score evaluation: {1e3 * s1:.1f} ms (median of 7)")

    # the two parts of a step outside the score, each timed alone
    noise = torch.empty_like(x)
    y = x.clone()
    t_noise = _median(lambda: standard_normal_(noise, g))
    t_torch = _median(lambda: noise.normal_(generator=g))
    t_inv = _median(lambda: torch.special.ndtri(noise.uniform_(generator=g).clamp_(min=2.0**-53), out=noise))
    t_add = _median(lambda: add_noise_(y, 0.5, g))
    t_arith = _median(lambda: y.mul_(1.0).add_(noise, alpha=0.5).add_(noise, alpha=0.1))
    print(f"per step: float64 noise draw {1e3 * t_noise:.1f} ms ({100 * t_noise / s1:.0f}% of a score evaluation; "
          f"inverting every draw takes {t_inv / t_noise:.2f}x as long, torch's normal_ {t_torch / t_noise:.2f}x), "
          f"added in place {1e3 * t_add:.1f} ms, step arithmetic {1e3 * t_arith:.2f} ms ({100 * t_arith / s1:.1f}%)")

    grid = sg.grids.uniform(5.0, 1e-3, args.steps)
    for name, sampler in [("exponential_integrator", sg.samplers.exponential_integrator),
                          ("euler_maruyama", sg.samplers.euler_maruyama),
                          ("ddpm_ancestral", sg.samplers.ddpm_ancestral)]:
        ratios, walls = [], []
        for _ in range(args.repeats):
            timed = TimedScore(score)
            t0 = time.perf_counter()
            sampler(timed, x, grid, generator=g)
            wall = time.perf_counter() - t0
            ratios.append((wall - timed.seconds) / timed.seconds)
            walls.append(wall)
        r = statistics.median(ratios)
        print(f"{name:24s} full run {statistics.median(walls):6.2f} s; overhead / score time = {100 * r:5.1f}% "
              f"(median of {args.repeats}), of which the noise draw is about "
              f"{100 * args.steps * t_noise / (statistics.median(walls) / (1 + r)):.0f} points")
    data_set_score()


def data_set_score(n: int = 50_000) -> None:
    """The exact score of a data set (the digits: 1797 atoms in d = 64, the bench's real-data target)
    against a plain float64 reference (softmax of squared distances, then a matrix product), at a
    large and a small noise level, in the same run."""
    from sgmlab.experiments.bench import digits_target

    q = digits_target()
    ou = sg.processes.OU()
    pts = q.points
    x = torch.randn(n, pts.shape[1], generator=torch.Generator().manual_seed(0), dtype=pts.dtype)

    def plain(x: torch.Tensor, t: float) -> torch.Tensor:
        a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))  # OU: x_t = a x_0 + s z
        out = []
        for c in x.split(2048):
            r = torch.softmax(-torch.cdist(c, a * pts).square() / (2 * s * s), dim=1)
            out.append((r @ (a * pts) - c) / (s * s))
        return torch.cat(out)

    score = sg.scores.exact(q, ou)
    for t in (2.0, 0.01):
        ours, ref = _median(lambda: score(x, t), 3), _median(lambda: plain(x, t), 3)
        err = float((score(x, t) - plain(x, t)).abs().max() / plain(x, t).abs().max())
        print(f"data-set score (digits, n={n}, t={t}): {1e3 * ours:.0f} ms; plain softmax reference "
              f"{1e3 * ref:.0f} ms; ratio {ref / ours:.2f}x (max relative difference {err:.1e})")


def _median(fn, repeats: int = 7) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


if __name__ == "__main__":
    main()
