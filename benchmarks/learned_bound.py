"""The theorem on trained networks: does the bound fall as the network learns? Write
benchmarks/learned_bound.md and learned_bound.png.

    .venv/bin/python benchmarks/learned_bound.py      # trains 12 small models (cached in --models)
    .venv/bin/python benchmarks/learned_bound.py --smoke

Models of built-in targets whose law is known (the 2-D mixture, the 16-d mixture, the 10-d
Gaussian), trained with the vector recipe for several lengths, each put through Theorem 2 as
``sgmlab bound --model`` does (:func:`sgmlab.theory.learned_bound`): the score error
sum_k h_k eps(t_k)^2 measured on draws of each q_t, the exact score's path KL on the same grid
(closed form on the Gaussian, Monte Carlo on the mixtures), the KL and TV bounds they give (an
ESTIMATE at 95%), beside the error of the model's own samples against q_delta.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TARGETS = ("mixture2d", "mixture", "gaussian")
LENGTHS = (300, 1000, 3000, 10_000)


def _bound(data: str, lengths: tuple[int, ...], models: Path, steps: int, n: int, n_paths: int) -> list[tuple]:
    """Train (or reuse) each model of ``data`` and bound it; one row per length."""
    import torch

    from sgmlab.experiments.learned import ModelBoundConfig, checkpoint_step, run_model_bound

    torch.set_num_threads(1)
    rows = []
    for length in lengths:
        folder = models / f"{data}-{length}"
        t0 = time.time()
        if not (folder.exists() and checkpoint_step(folder) == length):
            cmd = [sys.executable, "-m", "sgmlab", "train", "--data", data, "--out", str(folder), "--steps",
                   str(length), "--no-progress", "--force"]
            subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
        trained = time.time() - t0
        r = run_model_bound(ModelBoundConfig(str(folder), steps=(steps,), grid="exponential", n=n,
                                             n_paths=n_paths)).rows[0]
        rows.append((data, length, trained, r))
    return rows


def _measured(r) -> tuple[str, float, float]:
    """The samples' error to show beside the TV bound: the binned TV in 2-D (a lower estimate of the
    TV: binning is a function), else the mode weights' TV for a mixture, else the small-scale MMD^2."""
    for name in ("tv_histogram", "mode_tv", "mmd2_small_scales", "mmd"):
        if name in r.measured:
            return name, r.measured[name]["value"], r.measured[name]["noise_floor"]
    return "none", float("nan"), float("nan")


def figure(rows: list[tuple], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(d for d, *_ in rows))
    fig, axes = plt.subplots(2, len(targets), figsize=(4.2 * len(targets), 6.5), squeeze=False)
    for j, data in enumerate(targets):
        mine = [(length, r) for d, length, _, r in rows if d == data]
        x = [length for length, _ in mine]
        ax = axes[0, j]
        ax.loglog(x, [r.path_kl_upper for _, r in mine], "o-", label="path KL bound (95%)")
        ax.loglog(x, [r.score_error_upper for _, r in mine], "s--", label="score part: sum h eps^2")
        ax.loglog(x, [max(r.exact_path_kl, 1e-12) for _, r in mine], ":", color="grey",
                  label="exact score's path KL")
        ax.set_title(data, fontsize=9)
        ax.set_xlabel("training steps")
        ax.set_ylabel("KL (nats)")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        name = _measured(mine[0][1])[0]
        ax.semilogx(x, [r.tv_bound for _, r in mine], "o-", label="TV bound (95%)")
        if name in ("tv_histogram", "mode_tv"):  # a TV (lower estimates of the samples' TV) beside the TV bound
            ax.semilogx(x, [_measured(r)[1] for _, r in mine], "x-", label=f"measured: {name}")
            ax.semilogx(x, [_measured(r)[2] for _, r in mine], ":", color="grey", label="its noise floor")
        else:  # no TV measurable from samples here: the samples' error is in the table, not on this axis
            ax.text(0.5, 0.5, f"samples measured by {name} (table)", transform=ax.transAxes, ha="center", fontsize=8)
        ax.set_xlabel("training steps")
        ax.set_ylabel("TV")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    ap.add_argument("--steps", type=int, default=200, help="the sampler's steps (exponential grid)")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--n-paths", type=int, default=500)
    ap.add_argument("--models", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "sgmlab-learned-bound")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("learned_bound.md"))
    a = ap.parse_args()
    if a.smoke:
        a.targets, a.lengths, a.steps, a.n, a.n_paths = ["mixture2d"], [20, 40], 10, 500, 20
        a.models = a.models.with_name(a.models.name + "-smoke")
        a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "learned_bound-smoke.md"
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=2) as ex:
        futures = [ex.submit(_bound, d, tuple(a.lengths), a.models, a.steps, a.n, a.n_paths) for d in a.targets]
        rows = [row for f in futures for row in f.result()]
    figure(rows, a.out.with_suffix(".png"))
    lines = ["# Theorem 2 on trained networks", "",
             f"Regenerate: `.venv/bin/python benchmarks/learned_bound.py --lengths {' '.join(map(str, a.lengths))} "
             f"--steps {a.steps} --n {a.n} --n-paths {a.n_paths}` ({time.time() - t0:.0f} s on 2 cores, training "
             "included; the script's docstring says how).", "",
             f"Each model (the vector recipe, `sgmlab train --data TARGET --steps L`) is bounded as `sgmlab bound --model "
             f"DIR --steps {a.steps} --grid exponential` does, and sampled {a.n} times with the same sampler and grid. "
             "Score part: sum_k h_k eps(t_k)^2 at its 95% upper confidence bound; path KL bound: (sqrt(score part) + "
             "sqrt(exact score's path KL))^2 at 95% (Bonferroni over the Monte-Carlo parts); KL and TV bounds from it; "
             "measured: the samples against q_delta with its noise floor (binned TV on the 2-D mixture, a lower "
             "estimate of the TV; the mode weights' TV on the 16-d mixture; the small-scale MMD^2 on the Gaussian).",
             "", f"![bound and truth against training steps]({a.out.with_suffix('.png').name})", "",
             "| target | training steps | score part | exact score's path KL | path KL bound | KL bound | TV bound | "
             "measured | noise floor |", "|---|---|---|---|---|---|---|---|---|"]
    for data, length, _, r in rows:
        name, value, floor = _measured(r)
        lines.append(f"| {data} | {length} | {r.score_error_upper:.3g} | {r.exact_path_kl:.3g} "
                     f"| {r.path_kl_upper:.3g} | {r.kl_bound:.3g} | {r.tv_bound:.3g} | {name} {value:.3g} | {floor:.2g} |")
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
