"""Choose ``sg.sample``'s default grid at every budget from 1 to 100: write the table into
sgmlab/defaults.py (between its BEGIN/END markers) and the numbers that chose it into
benchmarks/defaults.md.

    .venv/bin/python benchmarks/choose_defaults.py              # about half an hour on 2 cores
    .venv/bin/python benchmarks/choose_defaults.py --smoke      # seconds; writes nothing in the package
    .venv/bin/python benchmarks/choose_defaults.py --measure    # the table in force only, no choice
    .venv/bin/python benchmarks/choose_defaults.py --trained --n 8000 --trials 40   # a trained model's table
    .venv/bin/python benchmarks/choose_defaults.py --trained --measure --n 20000    # ... on held-out mixtures

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

``--trained`` chooses ``TRAINED_TABLE``, a trained model's rows (budgets 1 to ``TRAINED_MAX``),
into defaults.py's trained block and benchmarks/defaults_trained.md: the same families standardized
coordinate by coordinate as a model sees its data (with the 16-d built-in ``mixture``), grids inside
``TRAINED_RANGE``, each budget searched by Nelder-Mead (3M and 2M) on :func:`trained_objective`:
the mixtures' error in units of their noise floors, plus ``PENALTY`` times any loss to the best
scheduler. A ratio to a scheduler cannot see artifacts that both draw; the floor can.

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
TRAINED_BEGIN, TRAINED_END = "# BEGIN trained rows written by benchmarks/choose_defaults.py --trained", "# END trained rows"
TRAINED_RANGE = (1e-3, 5.0)  # the vector recipe's [delta, T] (OU time): where a trained model's score may be evaluated
PENALTY = 10.0  # --trained: weight of a loss (trained_objective) against the mixtures' excess
TRAINED_MAX = 20  # --trained chooses up to this budget; above it the clamped exact table's rows (defaults_trained.md)


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

    @property
    def floors(self) -> np.ndarray:
        return np.array([floor for _, _, floor, _ in self.items])


def training_family(args: dict) -> tuple[Gaussians, Mixtures]:
    import torch

    import sgmlab as sg
    from sgmlab.experiments.heldout import family_targets

    torch.set_num_threads(1)
    gauss = Gaussians([q for _, q in family_targets("train", 0, args["gaussians"], 0)])
    mixes = [q for _, q in family_targets("train", 0, 0, args["mixtures"])]
    mixes += [q for _, q in family_targets("modes-train", 0, 0, args["mixtures"])] + [sg.targets.mixture2d()]
    return gauss, Mixtures(mixes, args["n"], args["features"])


def trained_family(args: dict) -> tuple[Gaussians, Mixtures]:
    """The training family in a trained model's units: the Gaussians and mixtures standardized, with
    the 16-d built-in ``mixture`` beside ``mixture2d`` (the targets of benchmarks/trained_defaults.py)."""
    import torch

    import sgmlab as sg
    from sgmlab.experiments.heldout import family_targets
    from sgmlab.learn.meter import feature_standardized as standardized

    torch.set_num_threads(1)
    gauss = Gaussians([standardized(q) for _, q in family_targets("train", 0, args["gaussians"], 0)])
    mixes = [sg.targets.mixture2d(), sg.targets.mixture()]
    mixes += [q for _, q in family_targets("modes-train", 0, 0, args["mixtures"])]
    return gauss, Mixtures([standardized(q) for q in mixes], args["n"], args["features"])


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
        near = [_to_params(spec, lam_range) for b in (nfe - 1, nfe, nfe + 1) if b >= 1
                for _, _, spec in [[row for row in DEFAULT_TABLE if row[0] <= b][-1]]]
        first = search(coincident, design + warm[-2:] + near)
        _, sname, p = min(first, key=lambda f: f[0])
        lost = np.log(gauss.kl(_samplers()[sname], spec_from_params(p, True, lam_range).grid(nfe)) / g_best)
        out = coincident | lottery(np.where(coincident, -np.inf, lost))
        found = first if (out == coincident).all() else search(out, design + warm[-2:] + near + [f[2] for f in first])
        found = [(joint(*both(_samplers()[s], spec_from_params(q, True, lam_range)), out), s, q) for _, s, q in found]
        _, now_sampler, now = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]  # the row in force, a candidate
        found.append((joint(*both(now_sampler, now), out), names[id(now_sampler)], _to_params(now, lam_range)))
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


def _to_params(spec, lam_range) -> np.ndarray:
    """A GridSpec in the search's parameters, density included."""
    from sgmlab.tuning import params_for

    p = params_for(spec.T, spec.delta, lam_range)
    d = np.log(np.asarray(spec.density, dtype=np.float64))
    p[2:] = (d - d[0])[1:]
    return p


def _after_lottery(lg: np.ndarray) -> float:
    """The worst Gaussian log ratio after leaving out the ``LOTTERY_MAX`` worst (:func:`lottery` says why)."""
    return float(np.sort(lg)[-LOTTERY_MAX - 1]) if lg.shape[0] > LOTTERY_MAX else float(lg.max())


def trained_objective(lg: np.ndarray, excess: np.ndarray, lm: np.ndarray, g_allowed: float = 0.0) -> float:
    """--trained: the soft maximum of the mixtures' log excess over their noise floors (the
    artifacts a user sees), plus ``PENALTY`` times each loss: on a mixture, to the best scheduler;
    on the Gaussians (after :func:`_after_lottery`), beyond ``g_allowed`` (log ratio to the best
    scheduler: the larger of 0 and the clamped exact row's, which a grid that stops at 1e-3 may not
    beat where the schedulers go below it)."""
    if not (np.all(np.isfinite(lg)) and np.all(np.isfinite(excess)) and np.all(np.isfinite(lm))):
        return math.inf
    return robust(excess) + PENALTY * (max(0.0, _after_lottery(lg) - g_allowed) + max(0.0, float(lm.max())))


def _choose_trained(budgets: list[int], args: dict) -> list[tuple]:
    """--trained: each budget's row for a trained model, on the standardized family, its grid inside
    ``TRAINED_RANGE`` (module docstring)."""
    from sgmlab.defaults import DEFAULT_TABLE
    from sgmlab.tuning import _lam, params_for, spec_from_params

    gauss, mixes = trained_family(args)
    lam_range = (_lam(TRAINED_RANGE[1]), _lam(TRAINED_RANGE[0]))
    design = [params_for(T, dl, lam_range) for T in (3.0, 5.0) for dl in (1e-3, 1e-2)]
    warm: list[np.ndarray] = []
    rows = []
    for nfe in sorted(budgets):
        t0 = time.time()
        g_best, m_best = gauss.peers(nfe), mixes.peers(nfe)

        def parts(sampler, grid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            err = mixes.errors(sampler, grid)
            return np.log(gauss.kl(sampler, grid) / g_best), np.log(err / mixes.floors), np.log(err / m_best)

        def objective(sampler):
            def obj(p: np.ndarray) -> float:
                try:
                    return trained_objective(*parts(sampler, spec_from_params(p, True, lam_range).grid(nfe)),
                                             g_allowed)
                except ValueError:
                    return math.inf
            return obj

        _, now_sampler, spec_now = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]  # clamped: what models used
        spec_now = spec_now._replace(T=min(spec_now.T, TRAINED_RANGE[1]), delta=max(spec_now.delta, TRAINED_RANGE[0]))
        g_allowed = max(0.0, _after_lottery(np.log(gauss.kl(now_sampler, spec_now.grid(nfe)) / g_best)))
        found = []
        for sname, sampler in _samplers().items():
            obj = objective(sampler)
            p = min(design + warm[-2:] + [_to_params(spec_now, lam_range)], key=obj)
            found.append((*_nelder_mead(obj, p, args["trials"], 2), sname))
        value, p, sname = min(found, key=lambda f: f[0])
        spec = _rounded(spec_from_params(p, True, lam_range))
        lg, excess, lm = parts(_samplers()[sname], spec.grid(nfe))
        lg_now, ex_now, lm_now = parts(now_sampler, spec_now.grid(nfe))
        warm.append(p)
        print(f"{nfe}: {sname} {tuple(spec)} mixtures worst {np.exp(excess.max()):.3g} floors (clamped exact row "
              f"{np.exp(ex_now.max()):.3g}), worst ratio to a scheduler {np.exp(lm.max()):.3g}, Gaussians worst "
              f"{np.exp(_after_lottery(lg)):.3g} after {LOTTERY_MAX} (clamped exact row {np.exp(_after_lottery(lg_now)):.3g}) "
              f"({time.time() - t0:.0f} s)", flush=True)
        rows.append((nfe, sname, tuple(spec), np.exp(lg).tolist(), np.exp(excess).tolist(), np.exp(lm).tolist(),
                     np.exp(ex_now).tolist(), np.exp(lm_now).tolist(), np.exp(lg_now).tolist()))
    return rows


def _measure_trained(budgets: list[int], args: dict) -> list[tuple]:
    """--trained --measure: per budget, on held-out mixtures standardized (``modes-heldout``, seeds
    0 and 1, never used to choose): the worst error in noise floors of the trained row, of the exact
    table's row clamped into ``TRAINED_RANGE``, and of the best scheduler (each scheduler's own range)."""
    import torch

    from sgmlab.defaults import default_plan
    from sgmlab.experiments.heldout import family_targets
    from sgmlab.learn.meter import feature_standardized

    torch.set_num_threads(1)
    held = [feature_standardized(q) for seed in (0, 1) for _, q in family_targets("modes-heldout", seed, 0, 4)]
    mixes = Mixtures(held, args["n"], args["features"])
    out = []
    for nfe in sorted(budgets):
        cells = []
        for trained in (True, False):
            plan = default_plan(nfe, t_range=TRAINED_RANGE, trained=trained)
            cells.append(mixes.errors(plan.sampler, plan.grid) / mixes.floors)
        cells.append(mixes.peers(nfe) / mixes.floors)
        out.append((nfe, *[c.tolist() for c in cells]))
    return out


def _held_out_report(measured: list[tuple], seconds: float, a) -> list[str]:
    lines = ["## Held out", "",
             f"Regenerate: `.venv/bin/python benchmarks/choose_defaults.py --trained --measure --n {a.n}` ({seconds:.0f} s "
             "on 2 cores). 8 multimodal mixtures never used to choose (`modes-heldout`, seeds 0 and 1), standardized as "
             f"a model sees them, with their exact scores; {a.n} draws. Per budget: the median and worst error in noise "
             "floors over the 8 (1: at the floor, indistinguishable from exact samples), for the trained row, the "
             "exact table's row clamped into the trained range (what models ran before), and the best of diffusers' "
             "schedulers per mixture (each in its own range).", "",
             "| budget | trained row: median, worst | clamped exact row: median, worst | best scheduler: median, worst |",
             "|---|---|---|---|"]
    for nfe, *cells in measured:
        lines.append(f"| {nfe} | " + " | ".join(f"{np.median(c):.3g}, {max(c):.3g}" for c in cells) + " |")
    return lines


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


def _table_lines(rows: dict) -> list[str]:
    return [f"    ({nfe}, \"{sname}\", {T!r}, {delta!r}, ({', '.join(repr(v) for v in dens)})),"
            for nfe, (sname, (T, delta, dens, _)) in sorted(rows.items())]


def _write_block(lines: list[str], begin: str, end: str, path: Path) -> None:
    text = path.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f"{path} has no {begin!r} ... {end!r} block to write the rows into")
    body = "\n".join(lines)
    path.write_text(re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: f"{begin}\n{body}\n    {end}", text,
                           flags=re.S))


def write_table(chosen: dict, path: Path = TABLE) -> None:
    """Write the rows chosen (budget -> (sampler name, spec)) into defaults.py; a budget not chosen
    keeps the row in force there, and consecutive budgets with the same row make one."""
    from sgmlab.defaults import DEFAULT_TABLE

    names = {id(v): k for k, v in _samplers().items()}
    rows = {}
    for nfe in range(1, max([*chosen, DEFAULT_TABLE[-1][0]]) + 1):
        _, s, spec = [row for row in DEFAULT_TABLE if row[0] <= nfe][-1]
        rows[nfe] = chosen.get(nfe, (names[id(s)], tuple(spec)))
    merged, prev = {}, None
    for nfe, row in sorted(rows.items()):
        key = (row[0], row[1][0], row[1][1], tuple(row[1][2]))
        if key != prev:
            merged[nfe], prev = row, key
    _write_block(_table_lines(merged), BEGIN, END, path)


def write_trained_table(chosen: dict, path: Path = TABLE) -> None:
    """Write the trained rows, one per budget from 1 to the largest chosen (the table's last budget is
    where a trained model goes back to the exact table, clamped)."""
    if sorted(chosen) != list(range(1, max(chosen) + 1)):
        raise SystemExit(f"--trained must choose every budget from 1 to its largest; got {sorted(chosen)}")
    _write_block(_table_lines(chosen), TRAINED_BEGIN, TRAINED_END, path)


def _trained_report(chosen: list[tuple], seconds: float, a) -> list[str]:
    lines = ["# How a trained model's defaults were chosen", "",
             f"Regenerate: `.venv/bin/python benchmarks/choose_defaults.py --trained --max-budget {a.max_budget} "
             f"--n {a.n} --trials {a.trials}` ({seconds:.0f} s on 2 cores; the script's docstring says how it chooses).", "",
             f"Training family, standardized as a model sees its data: {a.gaussians} Gaussians of the `train` family "
             f"(exact KL), `mixture2d`, the 16-d `mixture` and {a.mixtures} `modes-train` mixtures (squared MMD to the "
             f"exact law with kernels down to the smallest component, {a.n} draws, in units of its noise floor). Grids "
             f"inside [{TRAINED_RANGE[0]:g}, {TRAINED_RANGE[1]:g}] (OU time). Columns: the mixtures' worst error in noise "
             "floors (1: at the floor); the worst ratio to the best of diffusers' schedulers on the mixtures; on the "
             f"Gaussians after leaving out the {LOTTERY_MAX} worst (a loss there is penalized only beyond the "
             "clamped exact row's own, or 1); for the new row and for the exact table's row clamped into the range "
             "(what models used before).", "",
             "| budget | row | mixtures: worst floors, new | clamped exact row | mixtures: worst ratio to a scheduler, new "
             "| clamped exact row | Gaussians: worst ratio after 5, new | clamped exact row |",
             "|---|---|---|---|---|---|---|---|"]
    for nfe, sname, spec, lg, excess, lm, ex_now, lm_now, lg_now in chosen:
        lines.append(f"| {nfe} | {sname}, T {spec[0]:.4g}, delta {spec[1]:.3g}, density "
                     f"({', '.join(f'{v:.3g}' for v in spec[2])}) | {max(excess):.3g} | {max(ex_now):.3g} | "
                     f"{max(lm):.3g} | {max(lm_now):.3g} | {np.exp(_after_lottery(np.log(lg))):.3g} | "
                     f"{np.exp(_after_lottery(np.log(lg_now))):.3g} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=256)
    ap.add_argument("--mixtures", type=int, default=8)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--features", type=int, default=512)
    ap.add_argument("--trials", type=int, default=150, help="Nelder-Mead evaluations per round on the Gaussians")
    ap.add_argument("--mixture-trials", type=int, default=300)
    ap.add_argument("--max-budget", type=int, default=None, help=f"default 100 ({TRAINED_MAX} with --trained)")
    ap.add_argument("--budgets", type=int, nargs="+", help="choose at these budgets only (default: 1 to --max-budget); "
                    "the others keep the rows in force")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--measure", action="store_true", help="measure the table in force; choose nothing")
    ap.add_argument("--trained", action="store_true", help="choose the table for trained models (budgets 1 to "
                    f"--max-budget, default {TRAINED_MAX}) into defaults.py's trained block and defaults_trained.md")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("defaults.md"))
    a = ap.parse_args()
    if a.max_budget is None:
        a.max_budget = TRAINED_MAX if a.trained else 100
    budgets = list(range(1, a.max_budget + 1))
    if a.budgets:
        if min(a.budgets) < 1:
            ap.error(f"--budgets must be positive; got {a.budgets}")
        budgets = sorted(set(a.budgets))
    if a.trained and not a.smoke and budgets != list(range(1, budgets[-1] + 1)):
        ap.error("--trained chooses every budget from 1 to --max-budget (its table has a row per budget)")
    if a.smoke:
        a.gaussians, a.mixtures, a.n, a.trials, a.mixture_trials = 8, 1, 200, 8, 4
        budgets = [3, 4]
        a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "defaults-smoke.md"
    args = {k: getattr(a, k) for k in ("gaussians", "mixtures", "n", "features", "trials", "mixture_trials")}
    t0 = time.time()
    os.environ["OMP_NUM_THREADS"] = "1"
    chosen: list[tuple] = []
    if a.trained:
        if a.smoke:
            a.out = Path(os.environ.get("TMPDIR", "/tmp")) / "defaults-trained-smoke.md"
        elif a.out == Path(__file__).with_name("defaults.md"):
            a.out = Path(__file__).with_name("defaults_trained.md")
        if a.measure:  # the held-out section of the trained table's document, written in place
            with ProcessPoolExecutor(max_workers=a.workers) as ex:
                measured = sorted(r for f in [ex.submit(_measure_trained, p, args) for p in _split(budgets, a.workers)]
                                  for r in f.result())
            text = a.out.read_text() if a.out.exists() else ""
            text = text.split("\n## Held out\n")[0].rstrip("\n")
            section = "\n".join(_held_out_report(measured, time.time() - t0, a))
            a.out.write_text((text + "\n\n" if text else "") + section + "\n")
            print(f"wrote {a.out} ({time.time() - t0:.0f} s)", file=sys.stderr)
            return
        with ProcessPoolExecutor(max_workers=a.workers) as ex:
            chosen = sorted(r for f in [ex.submit(_choose_trained, p, args) for p in _split(budgets, a.workers)]
                            for r in f.result())
        seconds = time.time() - t0
        if not a.smoke:
            write_trained_table({nfe: (sname, spec) for nfe, sname, spec, *_ in chosen})
        a.out.write_text("\n".join(_trained_report(chosen, seconds, a)) + "\n")
        print(f"wrote {a.out} ({seconds:.0f} s)", file=sys.stderr)
        return
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
