"""Peak memory and time of ``sg.sample`` against n and d: write benchmarks/memory.md.

    .venv/bin/python benchmarks/memory.py [--quick]

Each run is its own process (one thread) drawing n samples in d dimensions from a spherical
8-component mixture with its exact score at 10 score evaluations (the default plan), in float64.
Reported: peak resident memory, the output's own size (n d 8 bytes), the working memory (peak
minus the output minus the process before sampling) and the time. Chunked (the default, about
2^22 numbers a chunk) the working memory stays flat in n; one pass (``batch_size=n``) is measured
beside it where it fits in memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(1)
import sgmlab as sg
n, d, one_pass = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
g = torch.Generator().manual_seed(0)
means = 3.0 * torch.randn(8, d, generator=g, dtype=torch.float64) / d ** 0.5
q = sg.targets.GaussianMixture(torch.full((8,), 1 / 8), means, torch.full((8,), 0.5))
score = sg.scores.exact(q)
sg.sample(score, 100, d, nfe=10, generator=g)  # warm: imports, first calls
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
t0 = time.perf_counter()
x = sg.sample(score, n, d, nfe=10, generator=g, batch_size=n if one_pass else None)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"n": n, "d": d, "one_pass": one_pass, "seconds": seconds, "peak": peak, "before": before,
                  "output": x.numel() * x.element_size(), "finite": bool(torch.isfinite(x).all())}))
"""


def measure(n: int, d: int, one_pass: bool) -> dict:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n), str(d), "1" if one_pass else "0"], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n up to 1e5 only")
    args = ap.parse_args()
    ns = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    for d in (10, 100, 1000):
        for n in ns:
            for one_pass in (False, True):
                if one_pass and n * d > 10**8:  # one pass needs about 8 times the output: beyond 2 cores' 24 GB
                    continue
                r = measure(n, d, one_pass)
                rows.append(r)
                print(f"d={d:5d} n={n:8d} {'one pass' if one_pass else 'chunked '}: {r['seconds']:8.1f} s, peak "
                      f"{r['peak'] / 2**30:6.2f} GiB (output {r['output'] / 2**30:.2f})", flush=True)
    lines = ["# Memory and time of `sg.sample` against n and d", "",
             "Regenerate: `.venv/bin/python benchmarks/memory.py` (about 15 minutes on 2 cores). One process per",
             "row, one thread, float64, a spherical 8-component mixture with its exact score, 10 score evaluations",
             "(the default plan). Working memory: peak resident memory minus the output (n d 8 bytes) minus the",
             "process before sampling. Chunked is the default (about 2^22 numbers a chunk, `batch_size=`); one pass",
             "is `batch_size=n`.", "",
             "| d | n | run | seconds | microseconds per sample | peak GiB | output GiB | working GiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        work = (r["peak"] - r["output"] - r["before"]) / 2**30
        lines.append(f"| {r['d']} | {r['n']:.0e} | {'one pass' if r['one_pass'] else 'chunked'} | {r['seconds']:.1f} | "
                     f"{1e6 * r['seconds'] / r['n']:.1f} | {r['peak'] / 2**30:.2f} | {r['output'] / 2**30:.2f} | "
                     f"{work:.2f} |")
    chunked = [r for r in rows if not r["one_pass"]]
    lines += ["", "Time per sample, chunked, at the largest n over the next largest, by d (1 = linear in n; small n fit "
              "in the caches and run faster per sample): "
              + ", ".join(f"d={d}: {_ratio(chunked, d):.2f}" for d in (10, 100, 1000)) + "."]
    (Path(__file__).parent / "memory.md").write_text("\n".join(lines) + "\n")
    print("wrote benchmarks/memory.md")


def _ratio(rows: list[dict], d: int) -> float:
    sel = sorted((r for r in rows if r["d"] == d), key=lambda r: r["n"])
    return (sel[-1]["seconds"] / sel[-1]["n"]) / (sel[-2]["seconds"] / sel[-2]["n"])


if __name__ == "__main__":
    main()
