"""Ground-truth benchmark: targets with exact scores x samplers x budgets of score evaluations.

Error: the exact KL(output || q) where the output law is Gaussian and known (affine samplers, and
any deterministic sampler through its action on d + 1 points); otherwise the unbiased squared MMD
against the target's exact characteristic function, with coupled comparisons (every method starts
from the same prior draws). For a data set (an Empirical target) also bounds on the total
variation with outputs within a rounding tolerance of a data point counted as that point
(:func:`sgmlab.metrics.atom_tv`): the MMD's smooth kernel barely sees outputs that blend data
points, which this TV counts one by one. diffusers' schedulers join when diffusers is installed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import catalogue, distributed, grids, metrics, samplers
from ..catalogue import digits_target  # noqa: F401 (its old home)
from .._io import _atomic
from ..defaults import default_plan
from ..processes import OU
from ..scores import exact
from ..targets import Empirical, Gaussian, Target
from .results import Result, Row
from .sampling import TimedScore, synchronize


TARGETS = catalogue.BENCH_TARGETS  # the bench's fixed targets, by name


# Samples per sample-metric target: as many as a few minutes of score evaluations allow
# (mixture2d's score is cheap; digits' has 1797 components in 64 dimensions).
# digits at 1e4 hid a resolved difference at 10 evaluations (z = -8.6 at 1e5); 5e4 resolves it.
DEFAULT_N = {"mixture2d": 1_000_000, "mixture16": 200_000, "digits": 50_000}
Z_VERDICT = metrics.samples.Z_99  # one-sided p = 0.01 for each comparison with a peer


@dataclass(frozen=True)
class BenchConfig:
    """``n`` overrides the per-target sample sizes of ``DEFAULT_N`` (sample-metric targets) for every
    target, ``n_by_target`` (pairs of target name and size) for some; ``n_gaussian`` is for the
    Gaussian-fit KL of the stochastic diffusers peers on Gaussian targets. ``peer_names`` runs
    only those diffusers peers (default: all of ``sgmlab.interop.peers.PEERS``); a verdict is then
    against those alone."""

    targets: tuple[str, ...] = tuple(TARGETS)
    budgets: tuple[int, ...] = (10, 20, 50, 100)
    n: int | None = None
    n_gaussian: int = 50_000
    peers: bool = True
    seed: int = 0
    n_by_target: tuple[tuple[str, int], ...] = ()
    peer_names: tuple[str, ...] | None = None
    device: str = "cpu"  # where the samplers run; "cuda": the process's own GPU (metrics: on the CPU)

    def __post_init__(self) -> None:
        distributed.device(self.device)
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"unknown target(s) {bad}; expected some of {sorted(TARGETS)}")
        if not self.budgets or min(self.budgets) < 2:
            raise ValueError(f"budgets must be integers >= 2; got {self.budgets}")
        if self.n is not None and self.n < 4:
            raise ValueError(f"n must be at least 4; got {self.n}")
        for name, size in self.n_by_target:
            if name not in TARGETS:
                raise ValueError(f"unknown target {name!r} in n_by_target; expected one of {sorted(TARGETS)}")
            if isinstance(size, bool) or not isinstance(size, int) or size < 4:
                raise ValueError(f"the sample size for {name} must be an integer >= 4; got {size!r}")
        if self.peer_names is not None:
            from ..interop.peers import PEERS

            if not self.peer_names:
                raise ValueError(f"peer_names is empty; name some of {list(PEERS)}, or set peers=False")
            bad = [p for p in self.peer_names if p not in PEERS]
            if bad:
                raise ValueError(f"unknown diffusers peer(s) {bad}; expected some of {list(PEERS)}")
            if not self.peers:
                raise ValueError("peer_names names diffusers peers, but peers is False")

    def samples(self, target: str) -> int:
        given = dict(self.n_by_target)
        if target in given:
            return given[target]
        return self.n if self.n is not None else DEFAULT_N.get(target, 10_000)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MeasuredRow(Row):
    """One method on one target and budget: its error (``metric``, ``value``, standard error ``se``,
    ``noise_floor``); the bench's and the held-out suite's rows add their own columns."""

    target: str
    d: int
    nfe: int
    method: str
    metric: str
    value: float
    se: float
    noise_floor: float


@dataclass
class BenchRow(MeasuredRow):
    """A bench row: the error, its times, TV bounds on data-set targets (NaN elsewhere), and the
    coupled difference of its error to sgmlab's default with that difference's standard error."""

    wall_seconds: float
    score_seconds: float
    tv_lower: float = math.nan
    tv_upper: float = math.nan
    off_support: float = math.nan
    diff_vs_sgmlab: float = math.nan
    diff_se: float = math.nan
    score_evaluations: float = math.nan  # per sample, as counted; NaN where the law is computed, not sampled


@dataclass
class BenchSummary(Row):
    """Per target and budget: sgmlab's default, the paper's sampler, the best diffusers peer and the
    verdicts (:func:`verdict`, :func:`tv_verdict`)."""

    target: str
    nfe: int
    metric: str
    sgmlab: float
    sgmlab_se: float
    paper: float
    best_peer: str | None
    best_peer_value: float
    noise_floor: float
    min_z: float
    sgmlab_wins: str
    sgmlab_tv_lower: float
    sgmlab_tv_upper: float
    peers_tv_lower: float
    tv_wins: str


def _methods(nfe: int, peers: bool, names: tuple[str, ...] | None = None) -> dict[str, tuple[Any, Any, bool]]:
    """name -> (sampler, grid, deterministic)."""
    plan = default_plan(nfe)
    out = {"sgmlab": (plan.sampler, plan.grid, True),
           "paper": (samplers.exponential_integrator, grids.uniform(5.0, 1e-3, nfe), False)}
    if peers:
        from ..interop.peers import PEERS, DiffusersPeer

        for name in PEERS if names is None else names:
            p = DiffusersPeer(name, nfe)
            out[f"diffusers:{name}"] = (p, None, p.deterministic)
    return out


def _fit_kl(x: torch.Tensor, q: Gaussian) -> float:
    fit = Gaussian(x.mean(0), torch.cov(x.T).reshape(q.dim, q.dim))
    return metrics.gaussian_kl(fit, q)


def _checkpoint_file(tname: str, nfe: int, mname: str) -> str:
    return f"{tname}-{nfe}-{mname.replace(':', '-')}.pt"


def load_checkpoints(directory: str | Path, config: BenchConfig) -> dict[str, dict[str, Any]]:
    """The rows that an earlier (interrupted) run of ``config`` finished in ``directory``, by file
    name. Every file is read and checked against ``config`` before any work starts: one written
    by another configuration, or unreadable, is refused with its name."""
    found = {}
    for f in sorted(Path(directory).glob("*.pt")):
        try:
            saved = torch.load(f, weights_only=True)
            same = saved["config"] == config.as_dict()
        except Exception as e:  # whatever is wrong with the file, the remedy is the same
            raise ValueError(f"bench checkpoint {f} cannot be read ({type(e).__name__}); "
                             "delete it to run that method again") from None
        if not same:
            raise ValueError(f"bench checkpoint {f} was written by another bench configuration; resume with "
                             "the same arguments, or start in another folder")
        found[f.name] = saved
    return found


def _run_method(q: Target, meter: metrics.ExactMMD | None, null_se: float, n: int, seed: int, nfe: int,
                mname: str, method: tuple[Any, Any, bool], device: Any = "cpu"
                ) -> tuple[dict[str, Any], metrics.MMDEstimate | None]:
    """One method (sampler, grid, deterministic) on one target and budget: its row's measured part
    and, for the sample metric, its MMD estimate (for the coupled differences).

    Under torchrun each rank samples a shard of whole jackknife groups from seed + rank; rank 0
    merges the group sums (the exact MMD is a sum over samples) and, where a metric needs the
    samples themselves, gathers them, and returns the row; other ranks return (None, None).
    The sampler runs on ``device``; its samples are measured on the CPU."""
    sampler, grid, det = method
    rank, ranks = distributed.world()
    dev = distributed.device(device)
    g = torch.Generator(dev).manual_seed(seed + rank)
    score = exact(q.to(dev))
    timed = TimedScore(score)
    row: dict[str, Any] = {}
    est = None
    if isinstance(q, Gaussian) and (det or sampler is samplers.exponential_integrator):
        if rank != 0:  # no sampling: rank 0 computes the law alone
            return None, None
        t0 = time.perf_counter()
        law = (samplers.deterministic_output_law(sampler, q, grid) if det
               else samplers.exact_output_law(sampler, q, grid))
        row.update(metric="kl_exact", value=metrics.gaussian_kl(law, q), se=0.0, noise_floor=0.0)
        row.update(wall_seconds=time.perf_counter() - t0, score_seconds=float("nan"))
    else:
        blocks = (distributed.shard_blocks(metrics.samples.mmd_group_sizes(n, meter.groups), ranks)
                  if meter is not None else [[s] for s in distributed.shard_sizes(n, ranks)])
        rows = [sum(b) for b in blocks]
        if min(rows) < 1:
            raise ValueError(f"{n} samples in {len(sum(blocks, []))} groups cannot be shared among {ranks} processes")
        t0 = time.perf_counter()
        x = synchronize(sampler(timed, OU().prior_sample(rows[rank], q.dim, generator=g, device=dev), grid,
                                generator=g))
        wall = time.perf_counter() - t0
        x = x.cpu()
        if meter is None:
            x = distributed.gather_rows(x, rows)
            if x is None:
                return None, None
            value, floor = _fit_kl(x, q), _fit_kl(q.to(dev).sample(n, generator=g).cpu(), q)
            row.update(metric="kl_gaussian_fit", value=value, se=0.0, noise_floor=floor)
        else:
            sums, _ = meter.group_sums(x, blocks[rank])
            sums = distributed.gather_rows(torch.view_as_real(sums), [len(b) for b in blocks])
            if isinstance(q, Empirical):
                x = distributed.gather_rows(x, rows)
            if sums is None:
                return None, None
            est = meter.estimate(torch.view_as_complex(sums.contiguous()),
                                 torch.tensor(sum(blocks, []), dtype=torch.float64))
            row.update(metric="mmd2_exact", value=est.value, se=est.se, noise_floor=Z_VERDICT * null_se)
            if isinstance(q, Empirical):
                tv = metrics.atom_tv(x, q)
                row.update(tv_lower=tv.lower, tv_upper=tv.upper, off_support=tv.off_support)
        row.update(wall_seconds=wall, score_seconds=timed.seconds, score_evaluations=timed.calls)
        if timed.calls > nfe:
            raise RuntimeError(f"{mname} used {timed.calls} score evaluations for a budget of {nfe}")
    return row, est


def unit_seconds(config: BenchConfig) -> dict[tuple[str, int, str], float]:
    """An estimate, before the run, of the seconds each (target, budget, method) takes: per target,
    one score evaluation and one metric pass timed on a probe of up to 1024 points (the second of
    two), scaled to the target's n and to the method's evaluations; exact laws count zero. The
    first target's probe also pays for start-up, so the estimate errs long."""
    out = {}
    for tname in config.targets:
        q = TARGETS[tname]()
        gaussian = isinstance(q, Gaussian)
        n = config.n_gaussian if gaussian else config.samples(tname)
        x = q.sample(min(n, 1024), generator=torch.Generator().manual_seed(0))
        meter = None if gaussian else metrics.ExactMMD(q)
        score = exact(q)
        for _ in range(2):
            t0 = time.perf_counter()
            score(x, 0.5)
            t_eval = time.perf_counter() - t0
            t0 = time.perf_counter()
            if meter is not None:
                meter(x)
            t_metric = time.perf_counter() - t0
        scale = n / x.shape[0]
        for nfe in config.budgets:
            for mname, (sampler, _, det) in _methods(nfe, config.peers, config.peer_names).items():
                closed = gaussian and (det or sampler is samplers.exponential_integrator)
                out[tname, nfe, mname] = 0.0 if closed else scale * (nfe * t_eval + t_metric)
    return out


def time_left(units: dict[Any, float], done: set, elapsed: float) -> str:
    """The remaining time: the estimates of the units left, scaled by how the done ones compared."""
    est_done = sum(units[u] for u in done)
    left = sum(v for u, v in units.items() if u not in done)
    if not left:
        return "all done" if len(done) == len(units) else "the rest in closed form"
    rate = elapsed / est_done if est_done > 0 else 1.0
    return f"about {duration(left * rate)} left"


def duration(seconds: float) -> str:
    """Seconds as a user reads them: seconds (at least 1), or minutes from 2."""
    return f"{max(seconds, 1):.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None,
              checkpoint: str | Path | None = None) -> list[BenchRow]:
    """One row per target, budget and method: the error (``metric``, ``value``, its standard error
    ``se`` and the ``noise_floor``), wall time and time in the score.

    Errors: exact KL(output || q) for Gaussian targets and samplers whose output law is known;
    KL of a Gaussian fit (floor: the same for exact samples) for the stochastic diffusers peers on
    Gaussian targets; otherwise the unbiased squared MMD against the target's characteristic
    function (:class:`sgmlab.metrics.ExactMMD`). Every method of a target and budget starts from
    the same prior draws, so ``diff_vs_sgmlab`` (this method's error minus sgmlab's default's) and
    its standard error ``diff_se`` account for the coupling.

    With ``checkpoint`` (a folder), each method's row and estimate are saved there as it finishes,
    and a method already saved there by a run of the same ``config`` is read back instead of run
    again (:func:`load_checkpoints`), so a long run can be stopped and continued: the rows are the
    same as those of one uninterrupted run, wall times apart.
    """
    rows = []
    rank, _ = distributed.world()  # under torchrun: rank 0 builds the rows (the others return none)
    units = unit_seconds(config) if progress is not None else {}
    if progress is not None:
        progress(f"the bench should take about {duration(sum(units.values()))} on this machine (score and metric "
                 "timed on a probe per target; diffusers' own overhead comes on top)")
    done: set = set()
    t_start = time.perf_counter()
    saved: dict[str, dict[str, Any]] = {}
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        checkpoint.mkdir(parents=True, exist_ok=True)
        saved = load_checkpoints(checkpoint, config)
    for tname in config.targets:
        q = TARGETS[tname]()
        meter = None if isinstance(q, Gaussian) else metrics.ExactMMD(q)
        null_se, n = math.nan, config.n_gaussian if meter is None else config.samples(tname)
        for nfe in config.budgets:
            estimates: dict[str, metrics.MMDEstimate] = {}
            block = []
            for mname, method in _methods(nfe, config.peers, config.peer_names).items():
                name = _checkpoint_file(tname, nfe, mname)
                read_back = name in saved
                if read_back:
                    if rank != 0:
                        continue
                    row, mmd = BenchRow(**saved[name]["row"]), saved[name]["mmd"]
                    est = None if mmd is None else metrics.MMDEstimate(*mmd)
                else:
                    if meter is not None and math.isnan(null_se) and rank == 0:  # not needed when all is read back
                        null_se = meter(q.sample(n, generator=torch.Generator().manual_seed(config.seed + 1))).se
                    measured, est = _run_method(q, meter, null_se, n, config.seed, nfe, mname, method,
                                                config.device)
                    if measured is None:  # not rank 0
                        continue
                    row = BenchRow(target=tname, d=q.dim, nfe=nfe, method=mname, **measured)
                    if checkpoint is not None:
                        entry = {"config": config.as_dict(), "row": asdict(row),
                                 "mmd": None if est is None else (est.value, est.se, est.leave_out)}
                        _atomic(checkpoint / name, lambda tmp, e=entry: torch.save(e, tmp))
                if est is not None:
                    estimates[mname] = est
                block.append(row)
                if progress is not None:
                    if read_back:  # costs nothing now: out of the estimate
                        units[tname, nfe, mname] = 0.0
                    done.add((tname, nfe, mname))
                    progress(f"[{len(done)} of {len(units)}, {time_left(units, done, time.perf_counter() - t_start)}] "
                             f"{tname}, {nfe} evaluations, {mname}: {row.metric} {row.value:.3g} "
                             + ("(read back)" if read_back else f"({row.wall_seconds:.0f} s)"))
            if not block:
                continue
            ours = next(r for r in block if r.method == "sgmlab")
            for r in block:
                if r.method in estimates and "sgmlab" in estimates:
                    r.diff_vs_sgmlab, r.diff_se = metrics.ExactMMD.difference(estimates[r.method], estimates["sgmlab"])
                elif r.metric == "kl_gaussian_fit":  # biased up by about the floor
                    r.diff_vs_sgmlab, r.diff_se = r.value - r.noise_floor - ours.value, 0.0
                else:
                    r.diff_vs_sgmlab, r.diff_se = r.value - ours.value, 0.0
            rows += block
            if progress is not None:
                progress(f"{tname}, {nfe} evaluations done")
    return rows


def summary(rows: list[BenchRow]) -> list[BenchSummary]:
    """Per target and budget: sgmlab's default, the paper's sampler, the best diffusers peer, and
    the verdict (see :func:`verdict`); for data-set targets also sgmlab's TV bounds, the smallest
    lower bound among the peers, and :func:`tv_verdict`."""
    out = []
    keys = sorted({(r["target"], r["nfe"]) for r in rows}, key=lambda k: (list(TARGETS).index(k[0]), k[1]))
    for tname, nfe in keys:
        sel = [r for r in rows if r["target"] == tname and r["nfe"] == nfe]
        peers = [r for r in sel if r["method"].startswith("diffusers:")]
        best = min(peers, key=lambda r: r["value"]) if peers else None
        get = {r["method"]: r for r in sel}
        z = min((r["diff_vs_sgmlab"] / r["diff_se"] if r["diff_se"] > 0 else math.copysign(math.inf, r["diff_vs_sgmlab"])
                 for r in peers), default=math.inf)
        ours = get["sgmlab"]
        out.append(BenchSummary(
            target=tname, nfe=nfe, metric=ours.metric, sgmlab=ours.value, sgmlab_se=ours.se, paper=get["paper"].value,
            best_peer=best.method if best else None, best_peer_value=best.value if best else math.nan,
            noise_floor=max(r.noise_floor for r in sel), min_z=z, sgmlab_wins=verdict(peers),
            sgmlab_tv_lower=ours.tv_lower, sgmlab_tv_upper=ours.tv_upper,
            peers_tv_lower=min((r.tv_lower for r in peers), default=math.nan), tv_wins=tv_verdict(ours, peers)))
    return out


def tv_verdict(ours: dict[str, Any], peers: list[dict[str, Any]]) -> str:
    """By the TV bounds of :func:`sgmlab.metrics.atom_tv` (data-set targets; '' elsewhere): 'yes' if
    sgmlab's upper bound is below every peer's lower bound, 'no' if some peer's upper bound is below
    sgmlab's lower bound, 'tie' otherwise."""
    if math.isnan(ours["tv_upper"]) or not peers:
        return ""
    if all(ours["tv_upper"] < r["tv_lower"] for r in peers):
        return "yes"
    if any(r["tv_upper"] < ours["tv_lower"] for r in peers):
        return "no"
    return "tie"


def verdict(peers: list[dict[str, Any]]) -> str:
    """'n/a' without peers; 'yes' if sgmlab's default is more accurate than every peer: by the exact value, or by more
    than ``Z_VERDICT`` standard errors of the coupled difference (p = 0.01 for each peer); 'no' if
    some peer is more accurate by that margin; 'tie' otherwise (the sample size does not resolve
    the difference)."""
    def beats(r: dict[str, Any], sign: float) -> bool:
        diff = sign * r["diff_vs_sgmlab"]
        return diff > Z_VERDICT * r["diff_se"] if r["diff_se"] > 0 else diff > 0

    if not peers:  # nothing to win against (a --no-peers run)
        return "n/a"
    if all(beats(r, 1.0) for r in peers):
        return "yes"
    if any(beats(r, -1.0) for r in peers):
        return "no"
    return "tie"


def bench_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from ..plotting import _plt

    plt = _plt()
    figs = {}
    for tname in dict.fromkeys(r["target"] for r in rows):
        fig, ax = plt.subplots(figsize=(9.5, 4.5))
        sel = [r for r in rows if r["target"] == tname]
        floor = max(r["noise_floor"] for r in sel)
        positive = [r["value"] for r in sel if r["value"] > 0]
        bottom = min(positive + [floor] if floor > 0 else positive or [1e-12]) / 3  # where values <= 0 are drawn
        marked = False
        for i, mname in enumerate(dict.fromkeys(r["method"] for r in rows)):
            pts = sorted((r["nfe"], r["value"], r["noise_floor"]) for r in sel if r["method"] == mname)
            if not pts:
                continue
            color, main = f"C{i % 10}", mname in ("sgmlab", "paper")
            # every value at its true position; under its own noise floor an open marker (not resolved
            # from 0; exact values have none); an unbiased estimate <= 0 has no place on a log axis: an
            # open triangle at the bottom
            ax.loglog([n for n, v, _ in pts], [v if v > 0 else bottom for n, v, _ in pts], "-" if main else "--",
                      color=color, lw=2 if mname == "sgmlab" else 1, label=mname)
            for n, v, own in pts:
                below = v <= own
                ax.plot([n], [v if v > 0 else bottom], "v" if v <= 0 else ("o" if main else "x"), color=color,
                        markerfacecolor="none" if below else color, ms=6)
                marked |= v <= 0
        if floor > 0:
            ax.axhline(floor, color="grey", ls=":", label="noise floor of sampled estimates (open markers: under "
                       "their own)")
        if marked:
            ax.axhline(bottom, color="grey", lw=0.5, label="values <= 0 (open triangles)")
        ax.set_xlabel("score evaluations")
        ax.set_ylabel(sel[0]["metric"])
        ax.set_title(tname, fontsize=9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, inside the figure
        fig.tight_layout()
        figs[f"bench_{tname}.png"] = fig
    return figs


@dataclass(frozen=True)
class BenchResult(Result):
    config: BenchConfig
    rows: list[BenchRow]

    @property
    def table(self) -> list[BenchSummary]:
        return summary(self.rows)

    def report(self) -> str:
        lines = [f"  {'target':12s} {'nfe':>4s} {'metric':16s} {'sgmlab':>10s} {'paper':>10s} {'best diffusers':>26s} "
                 f"{'floor':>8s} {'min z':>6s} win"]
        table = self.table
        for r in table:
            peer = f"{r.best_peer_value:.3g} ({r.best_peer.split(':')[-1]})" if r.best_peer else "-"
            lines.append(f"  {r.target:12s} {r.nfe:4d} {r.metric:16s} {r.sgmlab:10.3g} {r.paper:10.3g} {peer:>26s} "
                         f"{r.noise_floor:8.2g} {r.min_z:6.3g} {r.sgmlab_wins}")
        atoms = [r for r in table if r.tv_wins]
        if atoms:
            lines += ["", "  TV to the data, outputs within a rounding tolerance of a data point counted as it "
                          "(bounds at p = 0.01)", f"  {'target':12s} {'nfe':>4s} {'sgmlab':>17s} {'peers >=':>9s} win"]
            lines += [f"  {r.target:12s} {r.nfe:4d} [{r.sgmlab_tv_lower:.3g}, {r.sgmlab_tv_upper:.3g}]".ljust(37)
                      + f" {r.peers_tv_lower:9.3g} {r.tv_wins}" for r in atoms]
        return "\n".join(lines)

    def files(self) -> dict[str, Any]:
        return {"config.json": self.config.as_dict(), "results.csv": self.rows, "summary.csv": self.table,
                "ran.json": ran(self.config), **bench_figures(self.rows)}


def ran(config: BenchConfig) -> dict[str, Any]:
    """What each method ran at each budget: its sampler, every time of its grid (OU time) and where
    the plan came from (:func:`sgmlab.experiments.sampling.run_record`); the evaluations each made
    are the rows' ``score_evaluations``."""
    from .sampling import run_record

    out: dict[str, Any] = {}
    for nfe in config.budgets:
        block = {}
        for name, (sampler, grid, _) in _methods(nfe, config.peers, config.peer_names).items():
            if name == "sgmlab":
                block[name] = run_record(sampler, grid, "ou", f"the default table's row for {nfe} evaluations "
                                                              "(sgmlab.default_plan)")
            elif name == "paper":
                block[name] = run_record(sampler, grid, "ou", "the paper's sampler on a uniform grid from T=5 to "
                                                              "delta=1e-3")
            else:  # the scheduler's timesteps in OU time, then where its last step ends
                block[name] = run_record(sampler, sampler.ou_path(), "ou", "the scheduler's own timesteps at its "
                                         "default settings", name=f"diffusers {sampler.name}")
        out[str(nfe)] = block
    return out


def run(config: BenchConfig, progress: Callable[[str], None] | None = None,
        checkpoint: str | Path | None = None) -> BenchResult:
    """:func:`run_bench` as a result that reports and saves itself."""
    return BenchResult(config, run_bench(config, progress=progress, checkpoint=checkpoint))
