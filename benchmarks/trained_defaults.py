"""Does the default plan draw artifacts on a trained network? Write benchmarks/trained_defaults.md.

    .venv/bin/python benchmarks/trained_defaults.py [--models DIR]   # trains 4 models if DIR lacks them
    .venv/bin/python benchmarks/trained_defaults.py --smoke          # seconds

Models of targets whose law is known, the 2-D mixture and the 16-d one (``sgmlab train --data
mixture2d`` and ``--data mixture``), trained with the recipe at its length (``--steps``) and
undertrained (``--short``), are sampled as ``sgmlab sample --model DIR --steps N`` does, with the
default plan at several budgets, the plan ``sgmlab tune --model`` fits at 10 evaluations, and the
default at ``--floor`` evaluations (the model's own law, as near as its sampler gets). The metric is
the one that sees streaks and blurred small components: the squared MMD to the exact law with
kernels down to the smallest component's scale (``sg.metrics.mmd_small_scales``), with its noise
floor. A default without artifacts sits at the model's own floor: the column "excess" is
(MMD^2 - MMD^2 at the floor budget) / noise floor, and the verdict is "at floor" where that is
under 3 (the difference is then within about three noise floors).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BUDGETS = (4, 6, 10, 15, 20, 30)


def _train(data: str, steps: int, folder: Path) -> float:
    """Train (or reuse) a model in ``folder``; the seconds it took (0 when reused)."""
    from sgmlab.experiments.learned import checkpoint_step

    if folder.exists() and checkpoint_step(folder) == steps:
        return 0.0
    t0 = time.time()
    cmd = [sys.executable, "-m", "sgmlab", "train", "--data", data, "--out", str(folder), "--steps", str(steps),
           "--no-progress", "--force"]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    return time.time() - t0


def _measure(folder: Path, n: int, budgets: tuple[int, ...], floor: int, seed: int) -> list[tuple]:
    import torch

    torch.set_num_threads(1)
    from sgmlab.experiments.learned import sample_model, tune_model

    rows = []
    for label, nfe, plan in [("default", b, None) for b in budgets + (floor,)] + [("tuned", 10, "tune")]:
        if plan == "tune":
            plan = tune_model(folder, 10)
        _, out, _ = sample_model(folder, sampler="default", steps=nfe, n=n, seed=seed, plan=plan)
        m = out["samples"]["mmd2_small_scales"]
        rows.append((label, nfe, m["value"], m["noise_floor"], out["samples"]["mode_tv"]["value"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "sgmlab-trained-defaults")
    ap.add_argument("--steps", type=int, default=20_000, help="the recipe's length")
    ap.add_argument("--short", type=int, default=3000, help="undertrained")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--floor", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("trained_defaults.md"))
    a = ap.parse_args()
    budgets = BUDGETS
    if a.smoke:
        a.steps, a.short, a.n, a.floor, budgets = 60, 30, 2000, 20, (4,)
        a.models = a.models.with_name(a.models.name + "-smoke")
        a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "trained_defaults-smoke.md"
    t0 = time.time()
    models = [(data, steps, a.models / f"{data}-{steps}") for data in ("mixture2d", "mixture")
              for steps in (a.steps, a.short)]
    with ProcessPoolExecutor(max_workers=2) as ex:
        train_s = list(ex.map(_train, *zip(*models)))
        measured = list(ex.map(_measure, [m[2] for m in models], [a.n] * 4, [budgets] * 4, [a.floor] * 4,
                               [a.seed] * 4))
    lines = ["# The default plan on trained networks", "",
             f"Regenerate: `.venv/bin/python benchmarks/trained_defaults.py --steps {a.steps} --short {a.short} "
             f"--n {a.n} --floor {a.floor}` ({time.time() - t0:.0f} s on 2 cores, training included; the script's "
             "docstring says how).", "",
             f"Each model sampled {a.n} times (seed {a.seed}) as `sgmlab sample --model DIR --steps N` does (the box "
             "on). MMD^2: to the exact law, kernels down to the smallest component (`mmd2_small_scales`), with its "
             f"noise floor; excess: (MMD^2 - the default's at {a.floor} evaluations) / noise floor; mode TV: the "
             "mode weights' total variation.", ""]
    for (data, steps, _), secs, rows in zip(models, train_s, measured):
        floor_value = [r[2] for r in rows if r[0] == "default" and r[1] == a.floor][0]
        trained = f"trained {secs:.0f} s" if secs else "reused"
        lines += [f"## {data}, {steps} steps ({trained})", "",
                  "| plan | evaluations | MMD^2 | noise floor | excess | mode TV | verdict |", "|---|---|---|---|---|---|---|"]
        for label, nfe, value, noise, mode_tv in rows:
            excess = (value - floor_value) / noise
            verdict = "model's own law" if (label, nfe) == ("default", a.floor) else \
                ("at floor" if excess < 3 else "ARTIFACTS")
            lines.append(f"| {label} | {nfe} | {value:.3g} | {noise:.2g} | {excess:.1f} | {mode_tv:.3g} | {verdict} |")
        lines.append("")
    a.out.write_text("\n".join(lines))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
