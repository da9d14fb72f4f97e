"""Bounds against the truth: Theorem 2's terms, the certified bound and the measured error of the
paper's sampler over a sweep of step counts."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .. import metrics, samplers, scores, theory
from ..processes import OU
from ..targets import BUILTIN, Gaussian, GaussianMixture, builtin
from .results import Result
from .sampling import GRIDS

ERROR_SHAPES = ("bias", "localized")


@dataclass(frozen=True)
class BoundConfig:
    """A sampling configuration of the paper's sampler and the step counts to sweep."""

    target: str = "mixture2d"
    dim: int | None = None
    grid: str = "uniform"
    steps: tuple[int, ...] = (10, 20, 50, 100, 200, 500)
    T: float = 5.0
    delta: float = 1e-3
    n: int = 10_000
    seed: int = 0
    eps_score: float = 0.0
    error_shape: str = "bias"
    C: float = 1.0
    n_paths: int = 1000

    def __post_init__(self) -> None:
        if self.target not in BUILTIN:
            raise ValueError(f"unknown target {self.target!r}; expected one of {sorted(BUILTIN)}")
        if self.grid not in GRIDS:
            raise ValueError(f"unknown grid {self.grid!r}; expected one of {sorted(GRIDS)}")
        if self.error_shape not in ERROR_SHAPES:
            raise ValueError(f"unknown error shape {self.error_shape!r}; expected one of {ERROR_SHAPES}")
        if not self.steps or any(int(s) < 1 for s in self.steps):
            raise ValueError(f"steps must be a non-empty list of integers >= 1; got {self.steps}")
        if not (self.eps_score >= 0) or math.isinf(self.eps_score):
            raise ValueError(f"eps_score must be a finite number >= 0; got {self.eps_score}")
        if self.n < 2:
            raise ValueError(f"n must be >= 2; got {self.n}")

    def check(self) -> None:
        """Raise ValueError on values only the builders can check (dimension, T against delta)."""
        builtin(self.target, self.dim)
        GRIDS[self.grid](self.T, self.delta, min(self.steps))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BoundRow:
    steps: int
    max_step: float
    theorem: theory.DDPMBound
    certified: theory.CertifiedBound
    measured: float
    measured_error: float  # standard error (Gaussian Monte-Carlo TV) or noise floor (sample metric)
    measured_name: str
    tv_lower: float | None  # rigorous lower bound on the true TV (Gaussian targets)

    def as_dict(self) -> dict[str, Any]:
        c = self.certified
        return {"steps": self.steps, "max_step": self.max_step,
                "theorem": {"init": self.theorem.init, "discretisation": self.theorem.discretisation,
                            "score": self.theorem.score, "total": self.theorem.total, "kind": self.theorem.kind,
                            "C": self.theorem.C},
                "certified": {"init_tv": c.init_tv, "path_kl": c.path_kl, "path_kl_stderr": c.path_kl_stderr,
                              "quadrature_error": c.quadrature_error, "tv_bound": c.tv_bound,
                              "tv_bound_stderr": c.tv_bound_stderr, "init_kl": c.init_kl, "kl_bound": c.kl_bound,
                              "method": c.method, "kind": c.kind},
                "measured": {"name": self.measured_name, "value": self.measured, "error": self.measured_error,
                             "tv_lower_bound": self.tv_lower}}


def run_bounds(config: BoundConfig, *, progress: Callable[[str], None] | None = None
               ) -> tuple[theory.ProblemConstants, list[BoundRow]]:
    """For each step count: Theorem 2 (C, the target's constants for q_delta), the certified bound,
    and the measured TV-type error of the exponential integrator to q_delta.

    Measured: Gaussian targets, TV(p, q_delta) by Monte Carlo from the exact output law (its
    standard error) with the closed-form lower bound; mixtures in 2-D, the binned TV by quadrature;
    mixtures in higher d, the mode-weight TV (each with its noise floor). Every measured quantity is
    a lower bound on TV (up to noise), so a valid upper bound must lie above it.
    """
    g = torch.Generator().manual_seed(config.seed)
    target = builtin(config.target, config.dim)
    ou = OU()
    reference = ou.marginal(target, config.delta)
    consts = theory.problem_constants(target, delta=config.delta, generator=g)
    exact = scores.exact(target)
    score = exact if config.eps_score == 0 else scores.perturbed(exact, target, config.eps_score, shape=config.error_shape)
    rows = []
    for N in sorted(set(int(s) for s in config.steps)):
        grid = GRIDS[config.grid](config.T, config.delta, N)
        h = float((grid[:-1] - grid[1:]).max())
        thm = theory.ddpm_theorem(L=consts.L, d=consts.d, m2=consts.m2, kl=consts.kl, h=h, T=config.T - config.delta,
                                  eps_score=config.eps_score, C=config.C)
        cert = theory.certified_bound(target, score, grid, generator=g, n_paths=config.n_paths)
        lower = None
        if isinstance(target, Gaussian) and scores.affine_form(score, float(grid[0])) is not None:
            law = samplers.exact_output_law(samplers.exponential_integrator, target, grid,
                                            bias=score if score is not exact else None)
            est = metrics.gaussian_tv_mc(law, reference, 200_000, generator=g)
            value, err, name = est.value, est.stderr, "TV (Monte Carlo from the exact output law)"
            lower = metrics.gaussian_tv_bounds(law, reference).lower
        else:
            x = samplers.exponential_integrator(score, ou.prior_sample(config.n, target.dim, generator=g), grid, generator=g)
            if isinstance(target, Gaussian) and target.dim > 2:  # the error acts along its direction
                v = score.direction
                x1 = (x @ v)[:, None]
                ref1 = Gaussian((reference.mean @ v).reshape(1), (v @ reference.cov @ v).reshape(1, 1))
                m = metrics.tv_histogram(x1, ref1, generator=g)
                m_name = "TV of the projection on the error's direction (binned; a lower bound on TV)"
            elif target.dim <= 2:
                m = metrics.tv_histogram(x, reference, generator=g)
                m_name = m.name
            elif isinstance(target, GaussianMixture):
                m = metrics.mode_tv(x, target, generator=g)
                m_name = m.name
            else:
                m = metrics.sliced_w2(x, reference, generator=g)
                m_name = m.name
            value, err, name = m.value, m.noise_floor, f"{m_name} (noise floor as error)"
        rows.append(BoundRow(N, h, thm, cert, value, err, name, lower))
        if progress is not None:
            progress(f"N={N}: theorem {thm.total:.3g}, certified {cert.tv_bound:.3g}, measured {value:.3g}")
    return consts, rows


def bounds_figure(config: BoundConfig, rows: list[BoundRow]) -> Any:
    """Log-log figure: error against step size, with the theorem (C), the certified bound and the
    measured error (error bars: standard error or noise floor)."""
    from ..plotting import _plt

    plt = _plt()
    same = "tv" in rows[0].measured_name.lower()  # a TV is drawn with the bounds; another metric on its own panel
    fig, axes = plt.subplots(1, 1 if same else 2, figsize=(6.5 if same else 11, 4.5), squeeze=False)
    ax = axes[0, 0]
    h = [r.max_step for r in rows]
    ax.loglog(h, [r.theorem.total for r in rows], "o-", label=f"Theorem 2 (C={config.C}, order of magnitude)")
    ax.loglog(h, [r.certified.tv_bound for r in rows], "s-",
              label=f"certified bound ({rows[0].certified.kind.split(' (')[0].split(':')[0]}; vacuous at 1)")
    measured = dict(x=h, y=[max(r.measured, 1e-12) for r in rows], yerr=[r.measured_error for r in rows], fmt="^-",
                    label=f"measured: {rows[0].measured_name}")
    if same:
        ax.errorbar(**measured)
    else:  # another quantity: its own panel and axis, named for it (one axis per compared quantity)
        other = axes[0, 1]
        other.set_xscale("log")
        other.set_yscale("log")
        other.errorbar(**measured, color="C2")
        other.set_xlabel("step size h (largest step of the grid)")
        other.set_ylabel(rows[0].measured_name.split(" (")[0])
        other.set_title("measured (not a TV: not comparable with the bounds)", fontsize=9)
        other.legend(fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("step size h (largest step of the grid)")
    ax.set_ylabel("TV to q_delta")
    ax.set_title(f"{config.target}, {config.grid} grid, T={config.T}, delta={config.delta}, "
                 f"eps_score={config.eps_score}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class BoundsResult(Result):
    config: BoundConfig
    constants: theory.ProblemConstants
    rows: list[BoundRow]

    def report(self) -> str:
        config, consts, rows = self.config, self.constants, self.rows
        lines = [f"exponential integrator on {config.target} (d={consts.d}), {config.grid} grid, T={config.T}, "
                 f"delta={config.delta}, eps_score={config.eps_score} ({config.error_shape})",
                 f"  constants of q_delta: m2={consts.m2:.4g}, KL={consts.kl:.4g}, L={consts.L:.4g} "
                 f"[{consts.L_method.split(':')[0]}]",
                 f"  {'steps':>6s} {'max h':>9s} | {'theorem (C=' + str(config.C) + ')':>15s} {'init':>8s} "
                 f"{'disc':>8s} {'score':>8s} | {'TV bound':>9s} {'+-':>8s} {'init':>8s} {'path KL':>9s} "
                 f"{'KL bound':>9s} | {'measured':>9s} {'+-':>8s}"]
        for r in rows:
            t, c = r.theorem, r.certified
            lines.append(f"  {r.steps:6d} {r.max_step:9.3g} | {t.total:15.4g} {t.init:8.3g} {t.discretisation:8.3g} "
                         f"{t.score:8.3g} | {c.tv_bound:9.4g} {c.tv_bound_stderr:8.2g} {c.init_tv:8.2g} {c.path_kl:9.4g} "
                         f"{c.kl_bound:9.4g} | {r.measured:9.4g} {r.measured_error:8.2g}")
        lines.append(f"  theorem: {rows[0].theorem.kind}; TV and KL bounds: {rows[0].certified.kind} "
                     f"({rows[0].certified.method}; +- its standard error, 0 where exact); TV bound: the least of "
                     "init + sqrt(path KL / 2), sqrt(KL bound / 2) and sqrt(1 - exp(-KL bound)); "
                     f"measured: {rows[0].measured_name} (+- its standard error or noise floor)")
        return "\n".join(lines)

    def files(self) -> dict[str, Any]:
        return {"config.json": self.config.as_dict(),
                "bounds.json": {"constants": vars(self.constants), "rows": [r.as_dict() for r in self.rows]},
                "bounds.png": bounds_figure(self.config, self.rows)}


def run(config: BoundConfig, *, progress: Callable[[str], None] | None = None) -> BoundsResult:
    config.check()
    return BoundsResult(config, *run_bounds(config, progress=progress))
