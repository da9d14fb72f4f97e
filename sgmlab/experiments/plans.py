"""Plans: the steps the theory asks for (``sgmlab plan``) and a plan tuned to a score (``sgmlab tune``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .. import _checks, theory
from ..targets import BUILTIN, builtin
from .results import Result


@dataclass(frozen=True)
class PlanConfig:
    target: str = "mixture2d"
    dim: int | None = None
    eps: float = 0.05
    delta: float = 1e-3
    C: float = 1.0
    n_max: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in BUILTIN:
            raise ValueError(f"unknown target {self.target!r}; expected one of {sorted(BUILTIN)}")
        _checks.real("eps", self.eps, low=0.0, high=1.0, low_open=True, high_open=True)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanResult(Result):
    config: PlanConfig
    plan: theory.Plan

    def report(self) -> str:
        p, cfg = self.plan, self.config
        c, t, r = p.constants, p.theorem, p.later
        lines = [f"plan for TV(p, q_delta) <= {p.eps} on {cfg.target} (d={c.d}), delta={p.delta}",
                 f"  constants of q_delta: m2={c.m2:.4g}, KL(q||N(0,I))={c.kl:.4g} (+-{c.kl_stderr:.2g}), "
                 f"L={c.L:.4g} [{c.L_method.split(':')[0]}]",
                 f"  (a) Theorem 2, C={cfg.C} ({t.kind.split(':')[0]}):",
                 f"      T={t.T:.3g}  paper h=eps^2/(L^2 d)={t.h_paper:.3g} N={t.N_paper:,}  |  "
                 f"clean h=eps^2/(L^2 d T)={t.h_clean:.3g} N={t.N_clean:,}  |  eps_score <= {t.eps_score:.3g}",
                 "  (b) certified bound (data processing + Pinsker + Girsanov, evaluated; rigorous unless marked):"]
        for name, cp in p.certified.items():
            more = "" if cp.reached else f"  NOT reached by N_max: bound {cp.bound.chain_tv:.3g} > eps/2"
            need = f"{cp.eps_score:.3g}" if cp.reached else "n/a"
            lines.append(f"      {name:10s} T={cp.T:.3g}  N={cp.N:,}  max h={cp.max_step:.3g}  eps_score <= {need}  "
                         f"(bound {cp.bound.chain_tv:.3g}: init {cp.bound.init_tv:.2g} + sqrt(KL/2) "
                         f"{cp.bound.girsanov_tv:.3g})"
                         + ("" if cp.bound.kind == theory.RIGOROUS else f" [{cp.bound.kind.split(':')[0]}]") + more)
        lines += ["  (c) later rates (orders of magnitude; logs and constants dropped in all four):",
                  f"      this paper L^2 d/eps^2={r.this_paper:.3g}  Benton et al. d/eps^2={r.benton:.3g}  "
                  f"Chen et al. ODE L^2 sqrt(d)/eps={r.chen_ode:.3g}  Li-Yan d/eps={r.li_yan:.3g}",
                  f"      with their stated logs: Benton d log^2(1/delta)/eps^2={r.benton_logs:.3g}  "
                  f"Li-Yan N with d log^3 N/N <= eps={r.li_yan_logs:,}"]
        return "\n".join(lines)

    def files(self) -> dict[str, Any]:
        p = self.plan
        return {"plan.json": {
            "eps": p.eps, "delta": p.delta, "target": self.config.target, "config": self.config.as_dict(),
            "constants": vars(p.constants),
            "theorem": {k: v for k, v in vars(p.theorem).items() if not k.startswith("bound")},
            "certified": {k: {"T": v.T, "N": v.N, "max_step": v.max_step, "eps_score": v.eps_score,
                              "tv_bound": v.bound.tv_bound, "chain_tv": v.bound.chain_tv, "reached": v.reached} for k, v in p.certified.items()},
            "later": vars(p.later)}}


def run_plan(config: PlanConfig, progress: Callable[[str], None] | None = None) -> PlanResult:
    """:func:`sgmlab.theory.plan` on the built-in target of ``config``."""
    target = builtin(config.target, config.dim)
    return PlanResult(config, theory.plan(target, config.eps, delta=config.delta, C=config.C, N_max=config.n_max,
                                          generator=torch.Generator().manual_seed(config.seed), progress=progress))


@dataclass(frozen=True)
class TuneConfig:
    """``sgmlab tune``: a built-in target's exact score (``target``), a trained model (``model``) or a
    diffusers pipeline saved with ``save_pretrained`` (``diffusers``)."""

    nfe: int
    target: str | None = None
    dim: int | None = None
    model: str | None = None
    diffusers: str | None = None
    sampler: str = "dpmpp_3m"
    n_pilot: int = 512
    trials: int = 240
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        from ..tuning import TUNABLE

        if sum(v is not None for v in (self.target, self.model, self.diffusers)) != 1:
            raise ValueError("give --target NAME (an exact score), --model DIR (a trained model) or --diffusers DIR "
                             "(a saved diffusers pipeline), one of them")
        if (self.model is not None or self.diffusers is not None) and self.dim is not None:
            raise ValueError("--dim is for --target; a model's dimension is its own")
        if self.target is not None and self.target not in BUILTIN:
            raise ValueError(f"unknown target {self.target!r}; expected one of {sorted(BUILTIN)}")
        if self.sampler not in TUNABLE:
            raise ValueError(f"unknown sampler {self.sampler!r} for tuning; expected one of {sorted(TUNABLE)}")
        if self.model is not None:
            from .learned import check_model_dir

            check_model_dir(self.model)

    def plan_path(self) -> Path | None:
        """Where a model's plan is kept (in its folder); None for a target."""
        from .learned import plan_path

        return None if self.model is None else plan_path(self.model, self.nfe)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TuneResult(Result):
    config: TuneConfig
    plan: Any  # sgmlab.TunedPlan
    dim: int | None = None  # the target's (a model's plan says where the model is)
    scheduler: Any = None  # for a diffusers pipeline: the PlanScheduler that runs the plan in it

    def report(self) -> str:
        c = self.config
        what = (f"the model in {c.model}" if c.model is not None
                else f"the pipeline in {c.diffusers} (d={self.dim})" if c.diffusers is not None
                else f"{c.target} (d={self.dim}), exact score")
        text = f"plan for {c.nfe} score evaluations of {what}\n{self.plan.describe()}"
        if self.scheduler is not None:
            text += ("\nin the pipeline (saved as scheduler/ with the results): pipe.scheduler = "
                     "sgmlab.interop.scheduler.PlanScheduler.from_pretrained(FOLDER, subfolder='scheduler'); "
                     f"pipe(num_inference_steps={c.nfe})")
        return text

    def _figure(self) -> Any:
        from ..plotting import plan_figure

        c = self.config
        name = c.target or c.model or c.diffusers
        default = None
        if c.model is not None:  # the default the plan was measured against: the model's, inside its range
            from ..learn import load_model
            from ..learn.train import model_default_plan, vp_family

            m = load_model(c.model).config
            default = model_default_plan(vp_family(m.process), m.delta, m.T, c.nfe, m.standardize).grid
        elif self.scheduler is not None:
            from ..defaults import default_plan

            default = default_plan(c.nfe, t_range=self.scheduler.ou_range).grid
        return plan_figure(self.plan, f"{name}, {c.nfe} evaluations", default)

    def files(self) -> dict[str, Any]:
        return {"plan.json": self.plan.as_dict(), "plan.png": self._figure()}

    def save(self, folder: str | Path) -> list[str]:
        """The plan through :meth:`sgmlab.TunedPlan.save` (so that ``TunedPlan.load`` reads it back) and
        its figure; a model's plan goes into the model's folder whatever ``folder`` is."""
        from .results import write

        path = self.config.plan_path()
        if path is not None:
            self.plan.save(path)
            return [str(path)]
        fig = self._figure()  # before the first file is written
        self.plan.save(Path(folder) / "plan.json")
        write(Path(folder) / "plan.png", fig)
        if self.scheduler is None:
            return ["plan.json", "plan.png"]
        self.scheduler.save_pretrained(str(Path(folder) / "scheduler"))
        return ["plan.json", "plan.png", "scheduler/"]


def _plan_scheduler(tp: Any, sched: Any) -> Any:
    """The PlanScheduler that runs ``tp`` in the pipeline whose schedule ``sched`` holds."""
    return type(sched).from_plan(tp, **sched.config)


def run_tune(config: TuneConfig, progress: Callable[[str], None] | None = None) -> TuneResult:
    from ..scores import exact
    from ..tuning import TUNABLE, tune

    c = config
    if c.diffusers is not None:
        from ..interop.scheduler import load_pipeline

        unet, sched, shape = load_pipeline(c.diffusers)
        tp = tune(sched.score_of(unet, shape), math.prod(shape), c.nfe, sampler=TUNABLE[c.sampler],
                  n_pilot=c.n_pilot, max_trials=c.trials, level=c.level, t_range=sched.ou_range,
                  generator=torch.Generator().manual_seed(c.seed), progress=progress)
        limits = {k: sched.config[k] for k in ("clip_sample", "clip_sample_range", "thresholding")}
        tp = _tuned_for(tp, score=f"the denoising network of the diffusers pipeline in {c.diffusers}, through its "
                        f"scheduler's data-prediction limits {limits}", pipeline=_pipeline_record(c.diffusers))
        return TuneResult(config, tp, math.prod(shape), scheduler=_plan_scheduler(tp, sched))
    if c.model is not None:
        from .learned import checkpoint_record, tune_model

        tp = tune_model(c.model, c.nfe, sampler=c.sampler, n_pilot=c.n_pilot, max_trials=c.trials, level=c.level,
                        seed=c.seed, progress=progress)
        return TuneResult(config, _tuned_for(tp, score=f"the trained model in {c.model}",
                                             checkpoint=checkpoint_record(c.model)))
    target = builtin(c.target, c.dim)
    tp = tune(exact(target), target.dim, c.nfe, sampler=TUNABLE[c.sampler], n_pilot=c.n_pilot,
              max_trials=c.trials, level=c.level, target=target, generator=torch.Generator().manual_seed(c.seed),
              progress=progress)
    return TuneResult(config, _tuned_for(tp, score=f"the exact score of the built-in target {c.target} "
                                         f"(d={target.dim})"), target.dim)


def _tuned_for(tp: Any, **record: Any) -> Any:
    """``tp`` with what it was tuned for added to its record (:attr:`sgmlab.TunedPlan.tuned_for`)."""
    from dataclasses import replace

    return replace(tp, tuned_for={**(tp.tuned_for or {}), **record})


def _pipeline_record(folder: str) -> dict[str, Any]:
    """A saved pipeline as a plan records it: the folder and the SHA-256 of each weights file."""
    import hashlib

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())
    return {"folder": folder, "weights": {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                                          for p in files}}
