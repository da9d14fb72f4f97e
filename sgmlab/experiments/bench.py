"""Ground-truth benchmark: targets with exact scores x samplers x budgets of score evaluations.

Error: the exact KL(output || q) where the output law is Gaussian and known (affine samplers, and
any deterministic sampler through its action on d + 1 points); otherwise a sample metric with its
noise floor. diffusers' schedulers join when diffusers is installed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .. import grids, metrics, samplers
from ..defaults import default_plan
from ..processes import OU
from ..scores import exact
from ..targets import Empirical, Gaussian, Target, anisotropic_gaussian, mixture, mixture2d
from .sampling import TimedScore


def digits_target() -> Empirical:
    """The empirical law of scikit-learn's digits, standardized (one mean and scale): a real-data target."""
    from ..learn.data import load_data

    x = load_data("digits").x
    return Empirical((x - x.mean()) / x.std())


TARGETS: dict[str, Callable[[], Target]] = {
    "gaussian10": lambda: anisotropic_gaussian(10), "gaussian100": lambda: anisotropic_gaussian(100),
    "mixture2d": mixture2d, "mixture16": lambda: mixture(16), "digits": digits_target}


@dataclass(frozen=True)
class BenchConfig:
    targets: tuple[str, ...] = tuple(TARGETS)
    budgets: tuple[int, ...] = (10, 20, 50, 100)
    n: int = 10_000
    n_gaussian: int = 50_000
    peers: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"unknown target(s) {bad}; expected some of {sorted(TARGETS)}")
        if not self.budgets or min(self.budgets) < 2:
            raise ValueError(f"budgets must be integers >= 2; got {self.budgets}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _methods(nfe: int, peers: bool) -> dict[str, tuple[Any, Any, bool]]:
    """name -> (sampler, grid, deterministic)."""
    plan = default_plan(nfe)
    out = {"sgmlab": (plan.sampler, plan.grid, True),
           "paper": (samplers.exponential_integrator, grids.uniform(5.0, 1e-3, nfe), False)}
    if peers:
        from ..interop.peers import PEERS, DiffusersPeer

        for name in PEERS:
            p = DiffusersPeer(name, nfe)
            out[f"diffusers:{name}"] = (p, None, p.deterministic)
    return out


def _fit_kl(x: torch.Tensor, q: Gaussian) -> float:
    fit = Gaussian(x.mean(0), torch.cov(x.T).reshape(q.dim, q.dim))
    return metrics.gaussian_kl(fit, q)


def run_bench(config: BenchConfig, progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    rows = []
    ou = OU()
    for tname in config.targets:
        q = TARGETS[tname]()
        score = exact(q)
        for nfe in config.budgets:
            for mname, (sampler, grid, det) in _methods(nfe, config.peers).items():
                g = torch.Generator().manual_seed(config.seed)
                timed = TimedScore(score)
                row = {"target": tname, "d": q.dim, "nfe": nfe, "method": mname}
                if isinstance(q, Gaussian) and (det or sampler is samplers.exponential_integrator):
                    t0 = time.perf_counter()
                    law = (samplers.deterministic_output_law(sampler, q, grid) if det
                           else samplers.exact_output_law(sampler, q, grid))
                    row.update(metric="kl_exact", value=metrics.gaussian_kl(law, q), noise_floor=0.0)
                    row.update(wall_seconds=time.perf_counter() - t0, score_seconds=float("nan"))
                else:
                    n = config.n_gaussian if isinstance(q, Gaussian) else config.n
                    t0 = time.perf_counter()
                    x = sampler(timed, ou.prior_sample(n, q.dim, generator=g), grid, generator=g)
                    wall = time.perf_counter() - t0
                    if isinstance(q, Gaussian):
                        value, floor = _fit_kl(x, q), _fit_kl(q.sample(n, generator=g), q)
                        row.update(metric="kl_gaussian_fit", value=value, noise_floor=floor)
                    else:
                        m = (metrics.tv_histogram(x, q, generator=g) if q.dim <= 2
                             else metrics.sliced_w2(x, q, generator=g))
                        row.update(metric=m.name, value=m.value, noise_floor=m.noise_floor)
                    row.update(wall_seconds=wall, score_seconds=timed.seconds)
                    if timed.calls > nfe:
                        raise RuntimeError(f"{mname} used {timed.calls} score evaluations for a budget of {nfe}")
                rows.append(row)
            if progress is not None:
                progress(f"{tname}, {nfe} evaluations done")
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and budget: sgmlab's default, the paper's sampler and the best diffusers peer."""
    out = []
    keys = sorted({(r["target"], r["nfe"]) for r in rows}, key=lambda k: (list(TARGETS).index(k[0]), k[1]))
    for tname, nfe in keys:
        sel = [r for r in rows if r["target"] == tname and r["nfe"] == nfe]
        peers = [r for r in sel if r["method"].startswith("diffusers:")]
        best = min(peers, key=lambda r: r["value"]) if peers else None
        get = {r["method"]: r for r in sel}
        out.append({"target": tname, "nfe": nfe, "metric": get["sgmlab"]["metric"], "sgmlab": get["sgmlab"]["value"],
                    "paper": get["paper"]["value"], "best_peer": best["method"] if best else None,
                    "best_peer_value": best["value"] if best else math.nan,
                    "noise_floor": max(r["noise_floor"] for r in sel),
                    "sgmlab_wins": _verdict(get["sgmlab"]["value"], best["value"] if best else None,
                                            max(r["noise_floor"] for r in sel))})
    return out


def _verdict(ours: float, peer: float | None, floor: float) -> str:
    """'yes' if sgmlab's default is more accurate than the best peer; 'noise' when both are within
    20% of the metric's noise floor (the comparison is below what the sample size resolves)."""
    if peer is None or ours < peer:
        return "yes"
    if floor > 0 and max(ours, peer) <= 1.2 * floor:
        return "noise"
    return "no"


def bench_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from ..plotting import _plt

    plt = _plt()
    figs = {}
    for tname in dict.fromkeys(r["target"] for r in rows):
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for mname in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["nfe"], max(r["value"], 1e-12)) for r in rows if r["target"] == tname and r["method"] == mname]
            style = "o-" if mname in ("sgmlab", "paper") else "x--"
            ax.loglog(*zip(*pts), style, label=mname, lw=2 if mname == "sgmlab" else 1)
        sel = [r for r in rows if r["target"] == tname]
        floor = max(r["noise_floor"] for r in sel)
        if floor > 0:
            ax.axhline(floor, color="grey", ls=":", label="noise floor")
        ax.set_xlabel("score evaluations")
        ax.set_ylabel(sel[0]["metric"])
        ax.set_title(tname, fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        figs[f"bench_{tname}.png"] = fig
    return figs
