"""Generalisation: random target families, and the bench on a family no setting was chosen on.

Two families, told apart by seed stream and by range: ``train`` (the defaults' rows were chosen
on it, ``benchmarks/choose_defaults.py``) and ``heldout`` (only ever measured). Gaussians have
random rotations, random log-uniform covariance spectra and random means, and are scored by the
exact KL of the output law (deterministic samplers are affine maps of the prior draw there);
mixtures have random full covariances and weights, and are scored by the exact-law MMD with
coupled differences (every method from the same prior draws). The peers are diffusers'
deterministic schedulers: their output laws on Gaussians are exact (affine maps of the prior draw,
``deterministic_output_law``), where the stochastic ones' are known only through a Gaussian fit
biased by its sampling floor; on the bench's Gaussians no stochastic scheduler was the best peer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .. import catalogue, metrics, samplers
from ..defaults import default_plan
from ..interop.peers import DETERMINISTIC
from ..processes import OU
from ..scores import exact
from ..targets import Gaussian, GaussianMixture, Target
from ..tuning import tune
from .bench import MeasuredRow, _methods, duration, time_left
from .results import Result, Row

PEERS = tuple(p for p in catalogue.peers() if p in DETERMINISTIC)  # diffusers' deterministic schedulers


@dataclass(frozen=True)
class Family:
    """Ranges a family's targets are drawn from (log-uniform where it says log10)."""

    name: str
    seed_stream: int
    dims: tuple[int, int]  # Gaussians: d, log-uniform integer
    log10_min_eig: tuple[float, float]  # the smallest covariance eigenvalue
    log10_max_eig: tuple[float, float]  # the largest
    mean_norm: tuple[float, float]
    mixture_dims: tuple[int, int]
    mixture_k: tuple[int, int]
    log10_min_component_eig: tuple[float, float]
    # multimodal families: the typical distance between modes (uniform), and the largest component
    # variance (log10); None draws the means as the first families do
    mode_distance: tuple[float, float] | None = None
    log10_max_component_eig: float = 0.0


FAMILIES = {
    "train": Family("train", 0, (1, 100), (-4.0, 1.0), (-1.0, 1.0), (0.0, 3.0), (1, 16), (2, 8), (-3.0, -0.3)),
    "heldout": Family("heldout", 7919, (2, 50), (-3.5, 0.5), (-0.5, 1.2), (0.0, 4.0), (2, 12), (2, 10), (-2.5, 0.0)),
    # multimodal, anisotropic mixtures with small scales: 3 to 8 components with random rotations,
    # component variances from 1e-3 to 2, unequal weights, modes 1.5 to 5 apart, d 2 to 16. The
    # defaults may be chosen on "modes-train"; "modes-heldout" (another seed stream) is only measured.
    "modes-train": Family("modes-train", 104_729, (2, 16), (-3.0, 0.3), (-1.0, 0.3), (0.0, 2.0), (2, 16), (3, 8),
                          (-3.0, -1.0), (1.5, 5.0), 0.3),
    "modes-heldout": Family("modes-heldout", 15_485_863, (2, 16), (-3.0, 0.3), (-1.0, 0.3), (0.0, 2.0), (2, 16),
                            (3, 8), (-3.0, -1.0), (1.5, 5.0), 0.3),
}


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _rotation(d: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(r.diagonal())


def random_gaussian(family: Family, g: torch.Generator) -> Gaussian:
    d = max(1, round(math.exp(_u(g, math.log(family.dims[0]), math.log(family.dims[1] + 0.5)))))
    lo = _u(g, *family.log10_min_eig)
    hi = max(lo, _u(g, *family.log10_max_eig))
    lam = 10 ** (lo + (hi - lo) * torch.rand(d, generator=g, dtype=torch.float64))
    lam[0], lam[-1] = 10**lo, 10**hi if d > 1 else 10**lo
    U = _rotation(d, g)
    m = torch.randn(d, generator=g, dtype=torch.float64)
    m = m / m.norm().clamp_min(1e-12) * _u(g, *family.mean_norm)
    cov = (U * lam) @ U.T
    return Gaussian(m, 0.5 * (cov + cov.T))


def random_mixture(family: Family, g: torch.Generator) -> GaussianMixture:
    d = int(torch.randint(family.mixture_dims[0], family.mixture_dims[1] + 1, (), generator=g))
    k = int(torch.randint(family.mixture_k[0], family.mixture_k[1] + 1, (), generator=g))
    if family.mode_distance is None:
        means = _u(g, 1.0, 3.0) * torch.randn(k, d, generator=g, dtype=torch.float64)
    else:  # E|m_i - m_j|^2 = the drawn distance squared
        means = _u(g, *family.mode_distance) / math.sqrt(2 * d) * torch.randn(k, d, generator=g, dtype=torch.float64)
    means -= means.mean(0)
    covs = []
    for _ in range(k):
        U = _rotation(d, g)
        lo = _u(g, *family.log10_min_component_eig)
        if family.mode_distance is None:  # from 10^lo to 1
            lam = 10 ** (lo * torch.rand(d, generator=g, dtype=torch.float64))
        else:  # from 10^lo to 10^hi, both ends present
            hi = _u(g, lo, family.log10_max_component_eig)
            lam = 10 ** (lo + (hi - lo) * torch.rand(d, generator=g, dtype=torch.float64))
            lam[0], lam[-1] = 10**lo, 10**hi
        c = (U * lam) @ U.T
        covs.append(0.5 * (c + c.T))
    w = -torch.log(torch.rand(k, generator=g, dtype=torch.float64))
    return GaussianMixture(w / w.sum(), means, torch.stack(covs))


def family_targets(family: str, seed: int, gaussians: int, mixtures: int) -> list[tuple[str, Target]]:
    """``gaussians`` random Gaussians and ``mixtures`` random mixtures of ``family``, the same for
    the same seed (each target from its own generator, so counts do not shift the others)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    f = FAMILIES[family]
    out: list[tuple[str, Target]] = []
    for i in range(gaussians):
        g = torch.Generator().manual_seed(1_000_003 * f.seed_stream + 1009 * seed + i)
        q = random_gaussian(f, g)
        out.append((f"{family}-s{seed}-gauss{i}-d{q.dim}", q))
    for i in range(mixtures):
        g = torch.Generator().manual_seed(1_000_003 * f.seed_stream + 1009 * seed + 500 + i)
        q = random_mixture(f, g)
        out.append((f"{family}-s{seed}-mix{i}-d{q.dim}-k{q.means.shape[0]}", q))
    return out


@dataclass(frozen=True)
class HeldoutConfig:
    family: str = "heldout"
    seed: int = 0
    gaussians: int = 16
    mixtures: int = 4
    budgets: tuple[int, ...] = (4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 70, 100)
    n: int = 20_000  # samples per method on mixtures
    n_pilot: int = 256  # the tuner's pilot draws (as many again for the certificate)
    max_trials: int = 160
    peers: tuple[str, ...] = PEERS

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; expected one of {sorted(FAMILIES)}")
        if self.gaussians < 0 or self.mixtures < 0 or self.gaussians + self.mixtures == 0:
            raise ValueError(f"need at least one target; got gaussians={self.gaussians}, mixtures={self.mixtures}")
        if not self.budgets or min(self.budgets) < 2:
            raise ValueError(f"budgets must be integers >= 2; got {self.budgets}")
        if self.n < 4:
            raise ValueError(f"n must be at least 4; got {self.n}")
        bad = [p for p in self.peers if p not in PEERS]
        if bad or not self.peers:
            raise ValueError(f"peers must be some of the deterministic diffusers schedulers {PEERS}; got {self.peers}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_PLANS = {"sgmlab": "the default table's row (sgmlab.default_plan)",
          "paper": "the paper's sampler on a uniform grid from T=5 to delta=1e-3"}


@dataclass
class HeldoutRow(MeasuredRow):
    """A held-out suite row: the error, the tuned plan's cost and certificate (NaN or 0 for the
    others), and its ratio to the best diffusers peer with the verdict."""

    tune_cost: int = 0
    tune_seconds: float = 0.0
    w2_certificate: float = math.nan
    w2_to_target: float = math.nan
    best_peer: str = ""
    best_peer_value: float = math.nan
    ratio: float = math.nan
    verdict: str = ""
    vs_default_z: float = math.nan  # mixtures: coupled z of (default's MMD^2 - this one's); > 2.33 resolved better
    plan: str = ""  # where the grid came from: the default table, the tuner's verdict, a scheduler's own
    grid: str = ""  # every time of the grid that ran (OU time), space-separated


@dataclass
class HeldoutSummary(Row):
    kind: str
    nfe: int
    method: str
    cells: int
    wins: int
    win_rate: float
    losses: int
    median_ratio: float
    worst_ratio: float
    median_tune_seconds: float


def cell_seconds(config: HeldoutConfig) -> dict[tuple[str, int], float]:
    """An estimate, before the run, of the seconds each (target, budget) cell takes, from the
    sampler steps it makes: the tuner's search (trials x nfe steps on n_pilot points) and its
    reference (512 and 256 steps on twice n_pilot draws) and, on mixtures, each method's nfe steps
    on n points and their metric, or on Gaussians each method's exact output law. A step's cost,
    fixed part and per point, is timed per target by running the default sampler for 10 steps on 1
    and on 1024 points (and its output law)."""
    out = {}
    methods = 3 + len(config.peers)  # the default, the tuned plan, the paper's sampler, the peers
    plan = default_plan(10)
    for label, q in family_targets(config.family, config.seed, config.gaussians, config.mixtures):
        gauss = isinstance(q, Gaussian)
        meter = None if gauss else metrics.ExactMMD(q, bandwidths=metrics.law_bandwidths(q, config.seed))
        score = exact(q)
        times = {}
        for rows in (1, 1024, 1, 1024):  # the second pair: warm
            x = OU().prior_sample(rows, q.dim, generator=torch.Generator().manual_seed(0))
            t0 = time.perf_counter()
            y = plan.sampler(score, x, plan.grid)
            times[rows] = (time.perf_counter() - t0) / 10
            t0 = time.perf_counter()
            if meter is not None and rows > 1:
                meter(y)
            t_metric = (time.perf_counter() - t0) / rows
        fixed, per_point = times[1], max(times[1024] - times[1], 0.0) / 1023
        law_step = 0.0
        if gauss:  # each method's exact output law, step by step
            t0 = time.perf_counter()
            samplers.deterministic_output_law(plan.sampler, q, plan.grid)
            law_step = (time.perf_counter() - t0) / 10
        for nfe in config.budgets:
            steps = [(config.max_trials * nfe, config.n_pilot), (512 + 256, 2 * config.n_pilot)]
            if not gauss:
                steps.append((methods * nfe, config.n))
            out[label, nfe] = (sum(k * (fixed + m * per_point) for k, m in steps)
                               + (methods * nfe * law_step if gauss else methods * config.n * t_metric))
    return out


def run_heldout(config: HeldoutConfig, progress: Callable[[str], None] | None = None) -> list[HeldoutRow]:
    """One row per target, budget and method (the fixed default ``sgmlab``, the ``tuned`` plan, the
    paper's sampler, each diffusers peer): the error, and for the tuned plan its cost and
    certificate. Gaussians: exact KL(output || q); mixtures: exact-law MMD^2 with coupled
    differences to the best peer."""
    say = progress if progress is not None else (lambda m: None)
    cells = cell_seconds(config) if progress is not None else {}
    say(f"the suite should take about {duration(sum(cells.values()))} on this machine, plus diffusers' own overhead "
        "(the tuner's and the samplers' steps and the metric, timed on a probe per target)") if cells else None
    done: set = set()
    t_start = time.perf_counter()
    rows: list[HeldoutRow] = []
    for label, q in family_targets(config.family, config.seed, config.gaussians, config.mixtures):
        score = exact(q)
        is_gauss = isinstance(q, Gaussian)
        meter = None if is_gauss else metrics.ExactMMD(q, bandwidths=metrics.law_bandwidths(q, config.seed))
        floor = 0.0 if is_gauss else metrics.samples.Z_99 * meter(
            q.sample(config.n, generator=torch.Generator().manual_seed(config.seed + 1))).se
        for nfe in config.budgets:
            t0 = time.perf_counter()
            tp = tune(score, q.dim, nfe, n_pilot=config.n_pilot, max_trials=config.max_trials, target=q,
                      generator=torch.Generator().manual_seed(config.seed))
            tune_seconds = time.perf_counter() - t0
            methods = {name: m[:2] for name, m in _methods(nfe, True, config.peers).items()}
            methods["tuned"] = (tp.sampler, tp.grid)
            block, est = [], {}
            x0 = OU().prior_sample(config.n, q.dim, generator=torch.Generator().manual_seed(config.seed + 2))
            for name, (sampler, grid) in methods.items():
                if is_gauss:
                    law = (samplers.exact_output_law(sampler, q, grid) if name == "paper"
                           else samplers.deterministic_output_law(sampler, q, grid))
                    row = {"metric": "kl_exact", "value": metrics.gaussian_kl(law, q), "se": 0.0}
                else:
                    x = sampler(score, x0, grid, generator=torch.Generator().manual_seed(config.seed + 3))
                    est[name] = meter(x)
                    row = {"metric": "mmd2_exact", "value": est[name].value, "se": est[name].se}
                tuned = name == "tuned"
                ran = grid if grid is not None else sampler.ou_path()
                block.append(HeldoutRow(label, q.dim, nfe, name, **row, noise_floor=floor,
                                        tune_cost=tp.cost if tuned else 0, tune_seconds=tune_seconds if tuned else 0.0,
                                        w2_certificate=tp.certificate.w2_upper if tuned else math.nan,
                                        w2_to_target=tp.certificate.w2_to_target if tuned else math.nan,
                                        plan=_PLANS.get(name, "the scheduler's own timesteps") if not tuned
                                        else f"sgmlab.tune: {tp.source}",
                                        grid=" ".join(f"{float(v):.17g}" for v in ran)))
            peers = [r for r in block if r.method.startswith("diffusers:")]
            best = min(peers, key=lambda r: r.value)
            for r in block:
                r.best_peer, r.best_peer_value = best.method, best.value
                ours = not r.method.startswith("diffusers:")
                if is_gauss:
                    r.ratio = r.value / best.value if best.value > 0 else math.inf
                    r.verdict = ("win" if r.value < best.value else "loss") if ours else ""
                else:
                    low = max(floor, 1e-30)
                    r.ratio = max(r.value, low) / max(best.value, low)
                    zs = [_coupled_z(est[p.method], est[r.method]) for p in peers]
                    r.verdict = ("" if not ours else "win" if all(z > metrics.samples.Z_99 for z in zs) else
                                 "loss" if any(z < -metrics.samples.Z_99 for z in zs) else "tie")
            if not is_gauss:
                for r in block:
                    r.vs_default_z = 0.0 if r.method == "sgmlab" else _coupled_z(est["sgmlab"], est[r.method])
            done.add((label, nfe))
            say(f"{label}, {nfe} evaluations: sgmlab {block[0].ratio:.3g}x, tuned {block[-1].ratio:.3g}x the "
                f"best peer ({best.method.split(':')[1]}); tuning {tune_seconds:.1f} s; {len(done)} of {len(cells)} "
                f"cells, {time_left(cells, done, time.perf_counter() - t_start) if cells else ''}")
            rows += block
    return rows


def _coupled_z(peer: metrics.MMDEstimate, ours: metrics.MMDEstimate) -> float:
    """Coupled z of (peer's MMD^2 - ours): positive when ours is closer to the target."""
    diff, se = metrics.ExactMMD.difference(peer, ours)
    return diff / se if se > 0 else math.copysign(math.inf, diff)


def heldout_summary(rows: list[HeldoutRow]) -> list[HeldoutSummary]:
    """Per kind of target (Gaussian, mixture), budget and method (``sgmlab``, ``tuned``, ``paper``): the win
    rate against the best peer, and the median and worst ratio of the error to the best peer's."""
    out = []
    kinds = {"gaussian": "kl_exact", "mixture": "mmd2_exact"}
    for kind, metric in kinds.items():
        for nfe in sorted({r["nfe"] for r in rows}):
            for method in ("sgmlab", "tuned", "paper"):
                sel = [r for r in rows if r["metric"] == metric and r["nfe"] == nfe and r["method"] == method]
                if not sel:
                    continue
                ratios = sorted(r["ratio"] for r in sel)
                wins = sum(r["verdict"] == "win" for r in sel)
                out.append(HeldoutSummary(
                    kind, nfe, method, len(sel), wins, wins / len(sel), sum(r.verdict == "loss" for r in sel),
                    float(torch.tensor(ratios).median()), ratios[-1],
                    float(torch.tensor([r.tune_seconds for r in sel]).median()) if method == "tuned" else 0.0))
    return out


def heldout_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One figure: the ratio to the best peer per target and budget, the fixed default and the tuned
    plan side by side (log scale; below 1 is better than every diffusers scheduler)."""
    from ..plotting import _plt

    plt = _plt()
    kinds = [(k, m) for k, m in (("Gaussians: exact KL", "kl_exact"), ("mixtures: exact-law MMD^2", "mmd2_exact"))
             if any(r["metric"] == m for r in rows)]  # a panel per kind the run has: none left empty
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4.2), sharey=True, squeeze=False)
    axes = axes[0]
    budgets = sorted({r["nfe"] for r in rows})
    for ax, (kind, metric) in zip(axes, kinds):
        for off, method, color in ((-0.12, "sgmlab", "C0"), (0.12, "tuned", "C3")):
            pts = [(budgets.index(r["nfe"]) + off, r["ratio"]) for r in rows if r["metric"] == metric
                   and r["method"] == method]
            if pts:
                ax.scatter(*zip(*pts), s=14, color=color, alpha=0.7,
                           label="fixed default" if method == "sgmlab" else "tuned plan")
        ax.axhline(1.0, color="grey", ls=":")
        ax.set_yscale("log")
        ax.set_xticks(range(len(budgets)), [str(b) for b in budgets])
        ax.set_xlabel("score evaluations")
        ax.set_title(kind, fontsize=9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("error / best diffusers scheduler's")
    fig.tight_layout()
    return {"heldout.png": fig}


@dataclass(frozen=True)
class HeldoutResult(Result):
    config: HeldoutConfig
    rows: list[HeldoutRow]

    def report(self) -> str:
        c = self.config
        lines = [f"{c.family} family, seed {c.seed}: {c.gaussians} Gaussians (exact KL), {c.mixtures} mixtures "
                 f"(exact-law MMD^2, n = {c.n}); ratio = error / best of diffusers' {', '.join(c.peers)}",
                 f"  {'kind':9s} {'nfe':>4s} {'plan':7s} {'wins':>7s} {'losses':>6s} {'median ratio':>13s} "
                 f"{'worst ratio':>12s} {'tuning s':>9s}"]
        for r in heldout_summary(self.rows):
            plan = {"sgmlab": "default"}.get(r.method, r.method)
            tune_s = f"{r.median_tune_seconds:9.2g}" if plan == "tuned" else f"{'':9s}"
            lines.append(f"  {r.kind:9s} {r.nfe:4d} {plan:7s} {r.wins:3d}/{r.cells:<3d} {r.losses:6d} "
                         f"{r.median_ratio:13.3g} {r.worst_ratio:12.3g} {tune_s}")
        if c.mixtures:
            lines.append("  mixtures: a win is a coupled z > 2.33 against every peer; ratios at the noise floor are 1 "
                         "(a tie)")
        return "\n".join(lines)

    def files(self) -> dict[str, Any]:
        return {"config.json": self.config.as_dict(), "results.csv": self.rows,
                "summary.csv": heldout_summary(self.rows), **heldout_figures(self.rows)}


def run(config: HeldoutConfig, progress: Callable[[str], None] | None = None) -> HeldoutResult:
    return HeldoutResult(config, run_heldout(config, progress=progress))
