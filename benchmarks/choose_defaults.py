"""Choose ``sg.sample``'s default grid at every budget from 1 to 100: write the table into
sgmlab/defaults.py (between its BEGIN/END markers) and the numbers that chose it into
benchmarks/defaults.md.

    .venv/bin/python benchmarks/choose_defaults.py              # about half an hour on 2 cores
    .venv/bin/python benchmarks/choose_defaults.py --smoke      # seconds; writes nothing in the package
    .venv/bin/python benchmarks/choose_defaults.py --measure    # the table in force only, no choice

The training family (seed 0 of the ``train`` and ``modes-train`` families; the held-out ones are
only measured, after the choice): ``--gaussians`` random Gaussians, scored by the exact KL of the output law (in
each target's eigenbasis a deterministic sampler is an affine map per coordinate, read off from
two prior points), and ``--mixtures`` mixtures of each of ``train`` and ``modes-train``
(multimodal, anisotropic, components down to variance 1e-3) with the built-in ``mixture2d``, scored
by the squared MMD to the exact law with kernels from the median distance down to the smallest
component's scale (``sg.metrics.law_bandwidths``) on ``--n`` fixed prior draws, floored at its
noise floor (z_0.99 standard errors of an exact sample of that size; a mixture where the grid and
the best scheduler are both under it is a tie and left out).

At each budget, for DPM-Solver++ 3M and 2M, the grid (start, delta, 4-piece log-SNR density,
ending with the denoising step) minimises the soft maximum (log-sum-exp, temperature 4) of
log(error / best diffusers deterministic scheduler's error) over the Gaussians, by Nelder-Mead from
the best of a small design, the grids chosen at the budgets before and the rows in force at the
budget and its two neighbours (the Gaussians are exact and cheap, so
many of them: a table chosen on 48 lost up to 13x on held-out Gaussians). Left out of the search:
Gaussians where one scheduler beats all the others by more than ``COINCIDENCE``, and those the
first search's grid still loses by more than ``LOTTERY`` (:func:`lottery` says why; the search then
runs again without them). The two grids and the row in force are then scored on the Gaussians and
the mixtures together; where the best one's worst mixture ratio is above ``MIXTURE_REFINE``,
Nelder-Mead goes on from it on both together for ``--mixture-trials``. The lowest soft maximum over
both together is the row. Choosing at every budget, not at a few and covering the rest, keeps a
grid from serving budgets it was not chosen for (docs/defaults.md).

Measured where nothing was chosen: the held-out family's Gaussians (``heldout``, seeds 0 and 1) at
every budget, for the new table and the one in force when this ran. The held-out mixtures are
``benchmarks/multimodal.py``'s.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

TEMPERATURE = 4.0
Z_99 = 2.3263478740408408
LOTTERY, LOTTERY_MAX = 4.0, 5  # Gaussians lost by more than 4x after a first search (at most 5) are left out
COINCIDENCE = 300.0  # and those where one scheduler beats all the others by more than this
MIXTURE_REFINE = 1.25  # refine on the mixtures too where the Gaussians' grid loses more than this to a scheduler
PEERS = ("ddim", "dpmpp_2m", "dpmpp_3m", "deis", "unipc")
TABLE = Path(__file__).resolve().parents[1] / "sgmlab" / "defaults.py"
BEGIN, END = "# BEGIN rows written by benchmarks/choose_defaults.py", "# END rows"


def robust(log_ratios: np.ndarray) -> float:
    """The soft maximum of the log ratios, leaving out the exact zeros (mixtures where both sides are
    under the noise floor: a tie that says nothing), so that it reads as the worst informative cell."""
    if log_ratios.shape[0] and not np.all(np.isfinite(log_ratios)):
        return math.inf
    informative = log_ratios[log_ratios != 0.0]
    if informative.shape[0] == 0:
        return 0.0
    m = informative.max()
    return float(m + math.log(np.exp(TEMPERATURE * (informative - m)).sum()) / TEMPERATURE)


class Gaussians:
    """Gaussians in their eigenbases, all at once: coordinates j of one long vector with variance
    lam_j and mean m_j; a deterministic sampler maps coordinate z_j to A_j z_j + b_j."""

    def __init__(self, targets: list) -> None:
        import torch

        lam, mean, seg = [], [], []
        for i, q in enumerate(targets):
            ev, U = torch.linalg.eigh(q.cov)
            lam.append(ev)
            mean.append(U.T @ q.mean)
            seg.append(torch.full((q.dim,), i))
        self.torch, self.count = torch, len(targets)
        self.lam, self.mean, self.seg = torch.cat(lam), torch.cat(mean), torch.cat(seg)
        self.x0 = torch.stack([torch.zeros_like(self.lam), torch.ones_like(self.lam)])

    def score(self, x, t: float):
        a = math.exp(-t)
        return -(x - a * self.mean) / (a * a * self.lam - math.expm1(-2 * t))

    def kl(self, sampler, grid) -> np.ndarray:
        y = sampler(self.score, self.x0.clone(), grid)
        b, A = y[0], y[1] - y[0]
        r = A * A / self.lam
        per = 0.5 * (r + (b - self.mean) ** 2 / self.lam - 1 - self.torch.log(r))
        return self.torch.zeros(self.count, dtype=self.torch.float64).index_add_(0, self.seg, per).numpy()

    def peers(self, nfe: int, coincidences: bool = False):
        """The best scheduler's KL per target; with ``coincidences``, also where it beats every other
        scheduler by more than ``COINCIDENCE`` times (:func:`lottery` says why those are left out)."""
        from sgmlab.interop.peers import DiffusersPeer

        errs = np.sort([self.kl(DiffusersPeer(p, nfe), None) for p in PEERS], axis=0)
        return (errs[0], errs[0] * COINCIDENCE < errs[1]) if coincidences else errs[0]


class Mixtures:
    """Mixtures scored by the floored squared MMD to their exact law on fixed prior draws."""

    def __init__(self, targets: list, n: int, features: int) -> None:
        import torch

        import sgmlab as sg

        self.torch, self.items = torch, []
        for i, q in enumerate(targets):
            meter = sg.metrics.ExactMMD(q, bandwidths=sg.metrics.law_bandwidths(q), features=features)
            floor = Z_99 * meter(q.sample(n, generator=torch.Generator().manual_seed(50_000 + i))).se
            z = sg.processes.OU().prior_sample(n, q.dim, generator=torch.Generator().manual_seed(60_000 + i))
            self.items.append((sg.scores.exact(q), meter, floor, z))

    def errors(self, sampler, grid) -> np.ndarray:
        out = []
        for score, meter, floor, z in self.items:
            x = sampler(score, z.clone(), grid)
            out.append(max(meter(x).value, floor) if bool(self.torch.isfinite(x).all()) else math.inf)
        return np.array(out)

    def peers(self, nfe: int) -> np.ndarray:
        from sgmlab.interop.peers import DiffusersPeer

        return np.min([self.errors(DiffusersPeer(p, nfe), None) for p in PEERS], axis=0)


def training_family(args: dict) -> tuple[Gaussians, Mixtures]:
    import torch

    import sgmlab as sg
    from sgmlab.experiments.heldout import family_targets

    torch.set_num_threads(1)
    gauss = Gaussians([q for _, q in family_targets("train", 0, args["gaussians"], 0)])
    mixes = [q for _, q in family_targets("train", 0, 0, args["mixtures"])]
    mixes += [q for _, q in family_targets("modes-train", 0, 0, args["mixtures"])] + [sg.targets.mixture2d()]
    return gauss, Mixtures(mixes, args["n"], args["features"])


def heldout_gaussians() -> Gaussians:
    from sgmlab.experiments.heldout import family_targets

    return Gaussians([q for _, q in family_targets("heldout", 0, 32, 0)] +
                     [q for _, q in family_targets("heldout", 1, 64, 0)])


def _samplers() -> dict:
    import sgmlab as sg

    return {"3M": sg.samplers.dpm_solver_pp_3m, "2M": sg.samplers.dpm_solver_pp_2m}


def lottery(log_ratios: np.ndarray) -> np.ndarray:
    """The Gaussians a first search's grid still loses by more than ``LOTTERY`` times (at most
    ``LOTTERY_MAX``, the worst), left out of the second, as are those where one scheduler beats
    all the others by more than ``COINCIDENCE`` times: a scheduler's fixed end point can land on
    a target by coincidence (diffusers' DEIS stops at sigma ~ 0.01 without denoising, so its output
    has variance ~1e-4 whatever the target, exact for a 1-d target of that variance), no grid can
    be chosen to match that, and chased, such a cell drags every other target's grid with it."""
    worst = np.argsort(log_ratios)[::-1][:LOTTERY_MAX]
    out = np.zeros(log_ratios.shape[0], dtype=bool)
    out[worst[log_ratios[worst] > math.log(LOTTERY)]] = True
    return out


def _rounded(spec):
    """The spec as the table stores it (4 significant digits for T, 3 for the rest)."""
    from sgmlab.defaults import GridSpec

    return GridSpec(float(f"{spec.T:.4g}"), float(f"{spec.delta:.3g}"),
                    tuple(float(f"{v:.3g}") for v in spec.density), True)


def _nelder_mead(obj, p: np.ndarray, trials: int, rounds: int) -> tuple[float, np.ndarray]:
    from scipy.optimize import minimize

    value = obj(p)
    for _ in range(rounds):  # restarted from where it stopped: the soft maximum has kinks
        simplex = np.vstack([p] + [p + 0.7 * np.eye(p.shape[0])[i] for i in range(p.shape[0])])
        r = minimize(obj, p, method="Nelder-Mead",
                     options={"maxfev": trials, "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4})
        if r.fun <= value:
            value, p = float(r.fun), r.x
    return value, p


def _choose(budgets: list[int], args: dict) -> list[tuple]:
    """Each budget's row, in increasing order of budget, each search also started from the rows before."""
    from sgmlab.tuning import _lam, params_for, spec_from_params

    from sgmlab.defaults import DEFAULT_TABLE

    gauss, mixes = training_family(args)
    lam_range = (_lam(12.0), _lam(1e-8))
    names = {id(v): k for k, v in _samplers().items()}

    def joint(lg: np.ndarray, lm: np.ndarray, out: np.ndarray) -> float:
        return robust(np.concatenate([lg[~out], lm]))

    def to_params(spec) -> np.ndarray:  # a GridSpec in the search's parameters, density included
        p = params_for(spec.T, spec.delta, lam_range)
        d = np.log(np.asarray(spec.density, dtype=np.float64))
        p[2:] = (d - d[0])[1:]
        return p

    design = [params_for(T, dl, lam_range) for T in (3.0, 5.0, 9.0) for dl in (1e-2, 1e-3, 1e-4)]
    warm: list[np.ndarray] = []
    rows = []
    for nfe in sorted(budgets):
        t0 = time.time()
        (g_best, coincident), m_best = gauss.peers(nfe, coincidences=True), mixes.peers(nfe)

        def both(sampler, spec) -> tuple[np.ndarray, np.ndarray]:
            g = spec.grid(nfe)
            return np.log(gauss.kl(sampler, g) / g_best), np.log(mixes.errors(sampler, g) / m_best)

        def objective(sampler, with_mixtures: bool, out: np.ndarray):
            def obj(p: np.ndarray) -> float:
                try:
                    spec = spec_from_params(p, True, lam_range)
                    if not with_mixtures:
                        return robust(np.log(gauss.kl(sampler, spec.grid(nfe)) / g_best)[~out])
                    return joint(*both(sampler, spec), out)
                except ValueError:
                    return math.inf
            return obj

        def search(out: np.ndarray, starts: list[np.ndarray]) -> list[tuple]:
            found = []
            for sname, sampler in _samplers().items():
                obj = objective(sampler, False, out)
                p = min(starts, key=obj)
                _, p = _nelder_mead(obj, p, args["trials"], 3)
                found.append((obj(p), sname, p))
            return found

        # the rows in force at this budget and its neighbours start searches too: Nelder-Mead is local
        near = [to_params(spec) for b in (nfe - 1, nfe, nfe + 1) if b >= 1
                for _, _, spec in [[row for row in DEFAULT_TABLE if row[0] <= b][-1]]]
        first = search(coincident, design + warm[-2:] + near)
        _, sname, p = min(first, key=lambda f: f[0])
        lost = np.log(gauss.kl(_samplers()[sname], spec_from_params(p, True, lam_range).grid(nfe)) / g_best)
        out = coincident | lottery(np.where(coincident, -np.inf, lost))
        found = first if (out == coincident).all() else search(out, design + warm[-2:] + near + [f[2] for f in first])
        found = [(joint(*both(_samplers()[s], spec_from_params(q, True, lam_range)), out), s, q) for _, s, q in found]
        _, now_sampler, now = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]  # the row in force, a candidate
        found.append((joint(*both(now_sampler, now), out), names[id(now_sampler)], to_params(now)))
        value, sname, p = min(found, key=lambda f: f[0])
        refined = False
        if np.exp(both(_samplers()[sname], spec_from_params(p, True, lam_range))[1].max()) > MIXTURE_REFINE:
            v2, p2 = _nelder_mead(objective(_samplers()[sname], True, out), p, args["mixture_trials"], 1)
            if v2 < value:
                value, p, refined = v2, p2, True
        spec = _rounded(spec_from_params(p, True, lam_range))
        lg, lm = both(_samplers()[sname], spec)
        warm.append(p)
        print(f"{nfe}: {sname} {tuple(spec)} Gaussians worst {np.exp(lg.max()):.3g} ({int(out.sum())} left out; of the rest "
              f"{np.exp(lg[~out].max()):.3g}), mixtures worst "
              f"{np.exp(lm.max()):.3g}{' (refined on mixtures)' if refined else ''} ({time.time() - t0:.0f} s)",
              flush=True)
        rows.append((nfe, sname, tuple(spec), np.exp(lg).tolist(), np.exp(lm).tolist(), refined, int(out.sum())))
    return rows


def _measure(budgets: list[int], rows: dict, args: dict) -> list[tuple]:
    """Per budget: the new row and the table in force on the training family and the held-out Gaussians."""
    from sgmlab.defaults import GridSpec, default_plan

    gauss, mixes = training_family(args)
    held = heldout_gaussians()
    out = []
    for nfe in sorted(budgets):
        g_best, m_best, h_best = gauss.peers(nfe), mixes.peers(nfe), held.peers(nfe)
        now = default_plan(nfe)
        res = {"in force": (now.sampler, now.grid)}
        if nfe in rows:
            sname, spec = rows[nfe]
            res["new"] = (_samplers()[sname], GridSpec(*spec).grid(nfe))
        out.append((nfe, {k: (gauss.kl(s, g) / g_best, mixes.errors(s, g) / m_best, held.kl(s, g) / h_best)
                          for k, (s, g) in res.items()}))
    return out


def _stats(r) -> str:
    r = np.asarray(r)
    return f"{int((r < 1).sum())}/{r.shape[0]}, median {np.median(r):.3g}, worst {r.max():.3g}"


def _mix_stats(r) -> str:
    r = np.asarray(r)
    return f"{int((r < 1).sum())} won, {int((r == 1).sum())} tied, worst {r.max():.3g}"


def _split(budgets: list[int], workers: int) -> list[list[int]]:
    """Budgets dealt to workers in turn, each worker's share in increasing order (warm starts)."""
    return [sorted(budgets)[i::workers] for i in range(workers)]


def write_table(chosen: dict, path: Path = TABLE) -> None:
    """Write the rows chosen (budget -> (sampler name, spec)) into defaults.py; a budget not chosen
    keeps the row in force there, and consecutive budgets with the same row make one."""
    from sgmlab.defaults import DEFAULT_TABLE

    names = {id(v): k for k, v in _samplers().items()}
    rows = {}
    for nfe in range(1, max([*chosen, DEFAULT_TABLE[-1][0]]) + 1):
        _, s, spec = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]
        rows[nfe] = chosen.get(nfe, (names[id(s)], tuple(spec)))
    lines, prev = [], None
    for nfe, (sname, (T, delta, dens, _)) in sorted(rows.items()):
        if (sname, T, delta, tuple(dens)) != prev:
            lines.append(f"    ({nfe}, \"{sname}\", {T!r}, {delta!r}, ({', '.join(repr(v) for v in dens)})),")
            prev = (sname, T, delta, tuple(dens))
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path} has no {BEGIN!r} ... {END!r} block to write the rows into")
    body = "\n".join(lines)
    path.write_text(re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: f"{BEGIN}\n{body}\n    {END}", text,
                           flags=re.S))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=256)
    ap.add_argument("--mixtures", type=int, default=8)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--features", type=int, default=512)
    ap.add_argument("--trials", type=int, default=150, help="Nelder-Mead evaluations per round on the Gaussians")
    ap.add_argument("--mixture-trials", type=int, default=300)
    ap.add_argument("--max-budget", type=int, default=100)
    ap.add_argument("--budgets", type=int, nargs="+", help="choose at these budgets only (default: 1 to --max-budget); "
                    "the others keep the rows in force")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--measure", action="store_true", help="measure the table in force; choose nothing")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("defaults.md"))
    a = ap.parse_args()
    budgets = list(range(1, a.max_budget + 1))
    if a.budgets:
        if min(a.budgets) < 1:
            ap.error(f"--budgets must be positive; got {a.budgets}")
        budgets = sorted(set(a.budgets))
    if a.smoke:
        a.gaussians, a.mixtures, a.n, a.trials, a.mixture_trials = 8, 1, 200, 8, 4
        budgets = [3, 4]
        a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "defaults-smoke.md"
    args = {k: getattr(a, k) for k in ("gaussians", "mixtures", "n", "features", "trials", "mixture_trials")}
    t0 = time.time()
    os.environ["OMP_NUM_THREADS"] = "1"
    chosen: list[tuple] = []
    with ProcessPoolExecutor(max_workers=a.workers) as ex:
        if not a.measure:
            chosen = sorted(r for f in [ex.submit(_choose, p, args) for p in _split(budgets, a.workers)]
                            for r in f.result())
        rows = {nfe: (sname, spec) for nfe, sname, spec, *_ in chosen}
        measured = sorted(r for f in [ex.submit(_measure, p, rows, args) for p in _split(budgets, a.workers)]
                          for r in f.result())
    seconds = time.time() - t0
    if chosen and not a.smoke:
        write_table(rows)
    from sgmlab.experiments.heldout import family_targets

    mix_names = [n for n, _ in family_targets("train", 0, 0, a.mixtures)] + \
        [n for n, _ in family_targets("modes-train", 0, 0, a.mixtures)] + ["mixture2d"]
    cmd = f"--gaussians {a.gaussians} --mixtures {a.mixtures} --n {a.n} --trials {a.trials} " \
          f"--mixture-trials {a.mixture_trials}" + (" --measure" if a.measure else "")
    lines = ["# How sg.sample's defaults were chosen", "",
             f"Regenerate: `.venv/bin/python benchmarks/choose_defaults.py {cmd}` ({seconds:.0f} s on 2 cores; the "
             "script's docstring says how it chooses).", "",
             f"Training family: {a.gaussians} Gaussians of the `train` family (exact KL) and {len(mix_names)} mixtures "
             f"({', '.join(mix_names)}; squared MMD to the exact law with kernels down to the smallest component, "
             f"{a.n} draws, floored at its noise floor). Held out, never used to choose: 96 Gaussians of the "
             "`heldout` family (seeds 0 and 1, exact KL). Ratios are to the best of diffusers' "
             f"{', '.join(PEERS)} per target; Gaussians: wins / targets, median, worst; mixtures: won, tied "
             "(both under the noise floor), worst.", ""]
    labels = ["new", "in force"] if chosen else ["in force"]
    head = "| budget | " + " | ".join(f"{lab}: {part}" for lab in labels for part in
                                      ("training Gaussians", "training mixtures", "held-out Gaussians")) + " |"
    lines += [head, "|---" * (1 + 3 * len(labels)) + "|"]
    worst = {lab: 0.0 for lab in labels}
    for nfe, res in measured:
        cells = []
        for lab in labels:
            g, m, h = res[lab]
            cells += [_stats(g), _mix_stats(m), _stats(h)]
            if 4 <= nfe <= 60:
                worst[lab] = max(worst[lab], float(np.max(h)))
        lines.append(f"| {nfe} | " + " | ".join(cells) + " |")
    lines += ["", "Held-out Gaussians, budgets 4 to 60, worst ratio: " +
              ", ".join(f"{worst[lab]:.3g} ({lab})" for lab in labels) + "."]
    if chosen:
        lines += ["", "Rows chosen, with the training Gaussians left out of the second search (lost by more than "
                  f"{LOTTERY:g}x after the first) and * where the search went on with the mixtures:", "", "```"]
        lines += [f"{nfe}: {sname}, T {spec[0]:.4g}, delta {spec[1]:.3g}, density "
                  f"({', '.join(f'{v:.3g}' for v in spec[2])}); {left} left out{' *' if refined else ''}"
                  for nfe, sname, spec, _, _, refined, left in chosen]
        lines += ["```"]
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out} ({seconds:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
