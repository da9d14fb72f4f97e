"""Evaluations saved: how many score evaluations diffusers' best deterministic scheduler needs to
match sgmlab's error at 10 and at 20, on held-out targets; write benchmarks/evaluations_saved.md.

    .venv/bin/python benchmarks/evaluations_saved.py [--gaussians 16 --mixtures 8 --n 20000]
    .venv/bin/python benchmarks/evaluations_saved.py --smoke

For each target of the held-out families (``heldout`` Gaussians by exact KL; ``modes-heldout``
mixtures by the exact-law MMD^2 with kernels down to the smallest component, on n shared prior
draws) and for the fixed default and the tuned plan (``sg.tune(score, d, nfe, target=q)``) at 10
and 20 evaluations: the smallest budget on the ladder below at which some diffusers deterministic
scheduler (DDIM, DPM-Solver++ 2M/3M, DEIS, UniPC) is at least as accurate. On mixtures an error
under the noise floor (z_0.99 standard errors of an exact sample) counts as the floor, so a peer at
the floor matches a plan at the floor. Reported: the median over targets of that budget divided by
10 (or 20); "> 400" where no rung matched.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

LADDER = (4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 400)
PEERS = ("ddim", "dpmpp_2m", "dpmpp_3m", "deis", "unipc")
Z_99 = 2.3263478740408408


def _target(kind: str, index: int, n: int, budgets: tuple[int, ...], max_rung: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    import sgmlab as sg
    from sgmlab.experiments.heldout import family_targets
    from sgmlab.interop.peers import DiffusersPeer

    if kind == "gaussian":
        name, q = family_targets("heldout", index // 16, 16, 0)[index % 16]

        def error(sampler, grid) -> float:
            return sg.metrics.gaussian_kl(sg.samplers.deterministic_output_law(sampler, q, grid), q)
        floor = 0.0
    else:
        name, q = family_targets("modes-heldout", index // 4, 0, 4)[index % 4]
        meter = sg.metrics.ExactMMD(q, bandwidths=sg.metrics.law_bandwidths(q))
        floor = Z_99 * meter(q.sample(n, generator=torch.Generator().manual_seed(1))).se
        x0 = sg.processes.OU().prior_sample(n, q.dim, generator=torch.Generator().manual_seed(2))
        score = sg.scores.exact(q)

        def error(sampler, grid) -> float:
            return max(meter(sampler(score, x0.clone(), grid)).value, floor)
    out = []
    for nfe in budgets:
        default = sg.default_plan(nfe)
        tp = sg.tune(sg.scores.exact(q), q.dim, nfe, target=q, generator=torch.Generator().manual_seed(0))
        for plan, label in ((default, "default"), (tp, "tuned")):
            ours = error(plan.sampler, plan.grid)
            match = math.inf
            for b in (b for b in LADDER if b <= max_rung):
                if min(error(DiffusersPeer(p, b), None) for p in PEERS) <= ours * (1 + 1e-12):
                    match = b
                    break
            out.append({"target": name, "kind": kind, "nfe": nfe, "plan": label, "error": ours, "floor": floor,
                        "match": match})
            print(f"{name}, {label} at {nfe}: {ours:.3g}; diffusers matches it at {match}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=16)
    ap.add_argument("--mixtures", type=int, default=8)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("evaluations_saved.md"))
    a = ap.parse_args()
    budgets, max_rung = (10, 20), LADDER[-1]
    if a.smoke:
        a.gaussians, a.mixtures, a.n, budgets, max_rung = 1, 1, 1000, (10,), 20
        a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "evaluations_saved-smoke.md"
    t0 = time.time()
    os.environ["OMP_NUM_THREADS"] = "1"
    jobs = [("mixture", i) for i in range(a.mixtures)] + [("gaussian", i) for i in range(a.gaussians)]
    with ProcessPoolExecutor(max_workers=2) as ex:
        futs = [ex.submit(_target, kind, i, a.n, budgets, max_rung) for kind, i in jobs]
        rows = [r for f in futs for r in f.result()]
    lines = ["# Evaluations saved on held-out targets", "",
             f"Regenerate: `.venv/bin/python benchmarks/evaluations_saved.py --gaussians {a.gaussians} --mixtures "
             f"{a.mixtures} --n {a.n}` ({time.time() - t0:.0f} s on 2 cores; the docstring says how).", "",
             "The budget at which diffusers' best deterministic scheduler first matches sgmlab's error, as a "
             "multiple of sgmlab's budget: the median over targets (and the smallest and largest).", "",
             "| targets | plan | at 10 evaluations | at 20 evaluations |", "|---|---|---|---|"]

    def cell(sel: list[dict], nfe: int) -> str:
        m = sorted(r["match"] / nfe for r in sel if r["nfe"] == nfe)
        if not m:
            return "-"
        med = m[len(m) // 2] if len(m) % 2 else 0.5 * (m[len(m) // 2 - 1] + m[len(m) // 2])

        def f(v: float) -> str:
            return f"> {max_rung / nfe:.3g}" if math.isinf(v) else f"{v:.3g}"
        return f"{f(med)}x (from {f(m[0])}x to {f(m[-1])}x)"

    for kind, label in (("gaussian", f"{a.gaussians} held-out Gaussians (exact KL)"),
                        ("mixture", f"{a.mixtures} modes-heldout mixtures (law MMD^2)")):
        for plan in ("default", "tuned"):
            sel = [r for r in rows if r["kind"] == kind and r["plan"] == plan]
            lines.append(f"| {label} | {plan} | {cell(sel, 10)} | {cell(sel, 20)} |")
    lines += ["", "Per target (the budget where diffusers matches; inf: beyond the ladder):", "",
              "| target | plan | nfe | error | floor | diffusers matches at |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['plan']} | {r['nfe']} | {r['error']:.3g} | {r['floor']:.2g} | {r['match']} |"
              for r in rows]
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
