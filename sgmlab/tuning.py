r"""``sg.tune``: a sampling plan fitted to the score at hand, with a certificate.

A deterministic sampler (DPM-Solver++ 3M by default) maps each prior draw z to an output; so does
a reference solution of the same probability-flow ODE, solved with many steps to a tiny delta
from the same z. The tuner chooses every time of the plan's grid (the start, delta, where the
steps go, and whether to end with the denoising step) to minimise a distance between the plan's
output law and the reference's, estimated on pilot draws.

The distance (``objective="within"``, the default) is the mean squared distance E|plan(z) - ref(z)|^2
over the draws whose two outputs stay in one mode (closer than a quarter of the outputs' median
distance). A draw whose path switches modes under the plan moves the coupling, not the law: over
all draws (``objective="coupled"``, the tuner before) a few such draws dominate the mean on a
multimodal target, so the search follows which pilot draws switch instead of the accuracy within
the modes that the law sees (``docs/tuning.md`` measures both, and ``objective="law"``: the squared
MMD between the output laws with kernels down to the smallest scale). The fixed default
(:func:`sgmlab.default_plan`) is measured on the same draws, and the tuned plan replaces it only
where fresh draws resolve it as better and not worse on the law (:class:`sgmlab.metrics.CoupledMMD`).

On fresh draws the certificate bounds MMD^2(plan, reference) at a stated confidence, reports the
share of draws whose outputs switch modes, and keeps the W2 bound of the coupling (informative
where nothing switches) (:class:`Certificate`).

The optimiser is derivative-free (Nelder-Mead) over a low-dimensional grid family: the start and
end log-SNR and a piecewise-constant step density in log-SNR (:func:`spec_from_params`,
:func:`sgmlab.grids.log_snr_density`). It needs only score evaluations, so it works for any score
(a trained network, an exact score, one that is not differentiable in t), with multistep samplers
whose step depends on the history (which rules out GITS-style dynamic programming over
independent steps), and costs nfe evaluations per pilot draw and trial.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import _checks, catalogue, grids
from .defaults import GridSpec, SamplePlan, default_plan, in_clock
from ._io import strict_json
from .metrics import CoupledMMD
from .processes import OU, Process
from .samplers import dpm_solver_pp_3m
from .scores import ScoreFn

TUNABLE = catalogue.TUNABLE  # samplers the tuner can fit a grid for, by the name saved in a plan file
BINS = 4  # pieces of the step density in log-SNR
LEVELS = (0.9, 0.95, 0.99)  # confidence levels of the certificate


def _sampler_name(sampler: Any) -> str:
    for name, s in TUNABLE.items():
        if s is sampler or s == sampler:
            return name
    raise ValueError(f"the tuner fits grids for DPM-Solver++ 2M/3M and UniPC 2/3 (sgmlab.samplers."
                     f"dpm_solver_pp_3m, ...); got {sampler!r}")


def _lam(t: float) -> float:
    """log-SNR log(alpha/sigma) at OU time t."""
    return -t - 0.5 * math.log(-math.expm1(-2 * t))


def _sigmoid(u: float) -> float:
    return 1 / (1 + math.exp(-u)) if u > -700 else 0.0


def _ou_from_lam(lam: float) -> float:
    return 0.5 * math.log1p(math.exp(-2 * lam))


def spec_from_params(params: Any, denoise: bool, lam_range: tuple[float, float]) -> GridSpec:
    r"""The grid a parameter vector stands for. ``params = (a, b, w_1, ..., w_{K-1})``: the start
    log-SNR is :math:`\lambda_s = L_0 + (L_1 - L_0)\,\sigma(a)` within ``lam_range`` = (L_0, L_1), the
    end :math:`\lambda_e = \lambda_s + (L_1 - \lambda_s)\,\sigma(b)`, and the step density in log-SNR
    is :math:`e^{w_k}` on the k-th of K equal pieces (:math:`w_0 = 0`;
    :func:`sgmlab.grids.log_snr_density`)."""
    p = np.asarray(params, dtype=np.float64)
    lo, hi = lam_range
    ls = lo + (hi - lo) * _sigmoid(float(p[0]))
    le = max(ls + (hi - ls) * _sigmoid(float(p[1])), ls + 1e-6 * (hi - lo))
    w = np.clip(np.concatenate([[0.0], p[2:]]), -20, 20)
    return GridSpec(_ou_from_lam(ls), _ou_from_lam(le), tuple(float(v) for v in np.exp(w - w.max())), denoise)


def params_for(T: float, delta: float, lam_range: tuple[float, float]) -> np.ndarray:
    """The parameters of the log-SNR grid from T to delta (OU times), within ``lam_range``."""
    lo, hi = lam_range

    def logit(p: float) -> float:
        p = min(max(p, 1e-9), 1 - 1e-9)
        return math.log(p / (1 - p))

    ls = min(max(_lam(T), lo), hi)
    le = min(max(_lam(delta), ls), hi)
    return np.array([logit((ls - lo) / (hi - lo)), logit((le - ls) / max(hi - ls, 1e-12))] + [0.0] * (BINS - 1))


class _Checked:
    """The score, counted, and refused when it returns a wrong shape or a non-finite value."""

    def __init__(self, score: ScoreFn):
        self.score, self.calls = score, 0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        self.calls += x.shape[0]
        s = self.score(x, t)
        if not isinstance(s, torch.Tensor) or s.shape != x.shape:
            got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise ValueError(f"the score returned {got} "
                             f"for points of shape {tuple(x.shape)}; does d match the score's dimension?")
        if not bool(torch.isfinite(s).all()):
            raise FloatingPointError(f"the score returned NaN or infinite values at t = {t:.6g}; "
                                     "a plan cannot be tuned for it")
        return s


@dataclass(frozen=True)
class Reference:
    """The reference solution: ``sampler`` with ``steps`` log-SNR steps from OU time ``T`` to
    ``delta`` (no denoising step); ``halving_rms`` is the RMS distance between it and the same
    with half the steps, on the certificate draws: an estimate (not a bound) of its own error."""

    sampler: str
    steps: int
    T: float
    delta: float
    halving_rms: float


@dataclass(frozen=True)
class Certificate:
    r"""What fresh draws (``n`` of them, not used in the tuning) say of the plan against the reference.

    **The law** (``mmd2_*``): MMD^2(plan's output law, reference's) <= ``mmd2_upper`` at confidence
    ``level``; ``mmd2`` is the coupled U-statistic (:class:`sgmlab.metrics.CoupledMMD`, kernels
    ``bandwidths`` times ``median``) and ``mmd2_se`` its jackknife standard error; the bound is
    ``mmd2 + z mmd2_se`` with z the normal quantile at 1 - (1 - level)/2, because the same draws
    chose between the tuned plan and the default (a union bound over the two: it holds for either).
    ``reference_mmd2`` is the reference's own error, estimated: the same statistic between the
    reference and the reference with half its steps.

    **Mode switches**: ``disagreements`` of the n draws end farther than ``switch_radius`` (a
    quarter of the reference outputs' median distance) from their reference output: their paths
    chose another mode. They move the coupling, not necessarily the law.

    **The coupling** (W2): since (plan(Z), ref(Z)) is a coupling, :math:`W_2^2 \le E|plan(Z) -
    ref(Z)|^2`; ``rms`` is its square root on the draws and ``w2_upper`` the square root of the
    bootstrap-t upper confidence bound of the mean (at the same adjusted level). Where draws switch
    modes the bound is dominated by them and says little about the law. With an exact score,
    ``terms`` chain it to the target q: W2(plan, q) <= the sum of the terms (``w2_to_target``).
    """

    level: float
    n: int
    rms: float
    w2_upper: float
    terms: tuple[tuple[str, float, str], ...] = ()
    w2_to_target: float | None = None
    mmd2: float = math.nan
    mmd2_se: float = math.nan
    mmd2_upper: float = math.nan
    reference_mmd2: float = math.nan
    median: float = math.nan
    bandwidths: tuple[float, ...] = ()
    disagreements: int = 0
    switch_radius: float = math.nan

    def describe(self) -> str:
        lines = []
        if math.isfinite(self.mmd2_upper):
            lo, hi = min(self.bandwidths, default=math.nan), max(self.bandwidths, default=math.nan)
            lines += [f"MMD^2(plan, reference) <= {self.mmd2_upper:.4g} at confidence {self.level} "
                      f"(estimate {self.mmd2:.3g} +- {self.mmd2_se:.2g} on {self.n} fresh draws; Gaussian kernels "
                      f"from {hi * self.median:.3g} down to {lo * self.median:.3g})",
                      f"reference's own error: MMD^2 {self.reference_mmd2:.3g} to half its steps (estimated)",
                      f"mode switches: {self.disagreements} of {self.n} draws ({self.disagreements / self.n:.1%}) end "
                      f"over {self.switch_radius:.3g} from their reference output"]
        why = (f"; the coupling's bound, dominated by the {self.disagreements} draws that switch modes, not a "
               "statement on the law" if self.disagreements else "")
        lines.append(f"W2(plan, reference) <= {self.w2_upper:.4g} at confidence {self.level} "
                     f"(coupled RMS {self.rms:.4g} on {self.n} fresh draws; the bootstrap-t bound of the mean "
                     f"squared distance{why})")
        if self.terms:
            lines.append(f"W2(plan, target) <= {self.w2_to_target:.4g}, the sum of:")
            lines += [f"  {name:34s} {value:10.4g}  {how}" for name, value, how in self.terms]
        return "\n".join(lines)


@dataclass(frozen=True)
class TunedPlan:
    """A plan fitted to a score: ``sampler``, ``grid`` (OU time converted to the process's clock)
    and ``evaluations`` as :class:`sgmlab.defaults.SamplePlan`, with its certificate, the reference
    it was tuned against, and the tuning cost in score evaluations (one per point per call).

    Parameters
    ----------
    sampler : sampler
        DPM-Solver++ 2M/3M or UniPC 2/3 (``TUNABLE``).
    grid : torch.Tensor
        Every time of the plan, in the process's clock (it may end at 0, the denoising step).
    evaluations : int
        The score evaluations it makes per sample.
    certificate : Certificate
        Its bounds against the reference, on fresh draws.
    reference : Reference
        The solution it was tuned against.
    cost : int
        The tuning's score evaluations (points x calls).
    objective, default_objective : float
        The objective of the plan and of the fixed default on the pilot draws.
    source : str
        Tuned, or the fixed default kept (and why).
    spec : GridSpec, optional
        The grid's four numbers, when the search made it.
    criterion : str
        The objective's kind (``CRITERIA``).
    tuned_for : dict, optional
        What it was tuned for: process, clock, time range, the score (a record written into the file).
    """

    sampler: Any
    grid: torch.Tensor
    evaluations: int
    certificate: Certificate
    reference: Reference
    cost: int
    objective: float
    default_objective: float
    source: str = "tuned"
    spec: GridSpec | None = None
    criterion: str = "coupled"  # the objective's kind: "law" (MMD^2 to the reference) or "coupled" (E|plan - ref|^2)
    tuned_for: dict[str, Any] | None = None  # what it was tuned for: process, clock, time range, score (a record)

    @property
    def plan(self) -> SamplePlan:
        return SamplePlan(self.sampler, self.grid, self.evaluations)

    def describe(self) -> str:
        g = self.grid.tolist()
        sp = self.spec
        shape = (f"start {sp.T:.4g}, delta {sp.delta:.3g}, log-SNR step density "
                 f"({', '.join(f'{v:.2g}' for v in sp.density)}), {'with' if sp.denoise else 'no'} denoising step"
                 if sp is not None else f"start {g[0]:.4g}, last times {', '.join(f'{t:.3g}' for t in g[-3:])}")
        return "\n".join([
            f"{_sampler_name(self.sampler)}, {len(g) - 1} steps ({self.source}), {self.evaluations} score "
            f"evaluations: {shape}",
            (f"objective {CRITERIA[self.criterion]} {self.objective:.4g} on the pilot draws"
             + (f" (the fixed default: {self.default_objective:.4g})" if math.isfinite(self.default_objective)
                else " (the fixed default was not measured)")),
            self.certificate.describe(),
            f"reference: {self.reference.sampler}, {self.reference.steps} log-SNR steps from {self.reference.T:.3g} "
            f"to {self.reference.delta:.3g}; its own error (RMS to half the steps, estimated) "
            f"{self.reference.halving_rms:.3g}",
            f"tuning cost: {self.cost:,} score evaluations (points x calls)"]
            + ([f"tuned for: {self.tuned_for.get('score', 'a score')}; {self.tuned_for.get('process', '')} in "
                f"{self.tuned_for.get('clock', '')}"] if self.tuned_for else []))

    def as_dict(self) -> dict[str, Any]:
        """The plan as strict JSON values: a non-finite number (a default that does not fit the score's
        time range, say) is written as null; ``sha256`` is the checksum of the rest, which
        :meth:`from_dict` checks (a plan edited by hand is refused)."""
        d = strict_json({"sampler": _sampler_name(self.sampler), "grid": self.grid.tolist(),
                        "evaluations": self.evaluations,
                        "certificate": {**asdict(self.certificate), "terms": [list(t) for t in self.certificate.terms],
                                        "bandwidths": list(self.certificate.bandwidths)},
                        "reference": asdict(self.reference), "cost": self.cost, "objective": self.objective,
                        "criterion": self.criterion, "default_objective": self.default_objective,
                        "source": self.source, "spec": None if self.spec is None else self.spec._asdict(),
                        **({} if self.tuned_for is None else {"tuned_for": self.tuned_for})})
        return {**d, "sha256": _digest(d)}

    def save(self, path: str | Path) -> Path:
        from ._io import write_json

        return write_json(Path(path), self.as_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TunedPlan:
        """A plan read back from :meth:`as_dict`; every field is checked (a plan file is input): its
        checksum when it has one, the sampler by name, every number's range, the spec against the
        grid and the evaluations against the grid's steps."""
        if not isinstance(d, dict):
            raise ValueError(f"not a valid tuned plan: a JSON object expected; got {type(d).__name__}")
        if "sha256" in d and d["sha256"] != _digest({k: v for k, v in d.items() if k != "sha256"}):
            raise ValueError("not a valid tuned plan: its checksum (sha256) does not match its content, so it was "
                             "changed after sg.tune wrote it; tune again")
        if d.get("sampler") not in TUNABLE:
            raise ValueError(f"not a valid tuned plan: sampler {d.get('sampler')!r} is not one of {sorted(TUNABLE)}")
        try:
            sampler = TUNABLE[d["sampler"]]
            grid = grids.from_times(d["grid"], allow_zero_end=True)
            evaluations = _checks.positive_int("evaluations", d["evaluations"])
            c = d["certificate"]
            law = {k: _number(c.get(k)) for k in ("mmd2", "mmd2_se", "mmd2_upper", "reference_mmd2", "median",
                                                   "switch_radius")}
            cert = Certificate(float(c["level"]), int(c["n"]), _number(c["rms"]), _number(c["w2_upper"], math.inf),
                               tuple((str(a), float(b), str(h)) for a, b, h in c["terms"]),
                               None if c["w2_to_target"] is None else float(c["w2_to_target"]), **law,
                               bandwidths=tuple(float(v) for v in c.get("bandwidths", ())),
                               disagreements=int(c.get("disagreements", 0)))
            criterion = str(d.get("criterion", "coupled"))
            if criterion not in CRITERIA:
                raise ValueError(f"criterion {criterion!r} is not one of {sorted(CRITERIA)}")
            r = d["reference"]
            ref = Reference(str(r["sampler"]), int(r["steps"]), float(r["T"]), float(r["delta"]),
                            _number(r["halving_rms"]))
            sp = d.get("spec")
            spec = None if sp is None else GridSpec(float(sp["T"]), float(sp["delta"]),
                                                    tuple(float(v) for v in sp["density"]), bool(sp["denoise"]))
            tuned_for = d.get("tuned_for")
            if tuned_for is not None and not isinstance(tuned_for, dict):
                raise TypeError(f"tuned_for must be a record (a JSON object); got {type(tuned_for).__name__}")
            out = cls(sampler, grid, evaluations, cert, ref, int(d["cost"]), _number(d["objective"], math.inf),
                      _number(d["default_objective"], math.inf), str(d.get("source", "tuned")), spec, criterion,
                      tuned_for)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"not a valid tuned plan ({type(e).__name__}: {e})") from None
        if grid.shape[0] - 1 != evaluations:
            raise ValueError(f"not a valid tuned plan: {grid.shape[0] - 1} steps for {evaluations} evaluations")
        _check_ranges(out)
        return out

    @classmethod
    def load(cls, path: str | Path) -> TunedPlan:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: JSON nested too deep to be a plan
            raise ValueError(f"cannot read the plan file {path} ({type(e).__name__}: {str(e)[:200]})") from None
        if not isinstance(d, dict):
            raise ValueError(f"the plan file {path} does not hold a plan")
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _digest(d: dict[str, Any]) -> str:
    """SHA-256 of a plan's JSON values, keys sorted: what ``sha256`` in a plan file checks."""
    import hashlib

    return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_ranges(tp: TunedPlan) -> None:
    """Every number of a plan read from a file in its range (a plan file is input)."""
    c, r = tp.certificate, tp.reference

    def bad(field: str, value: Any, want: str) -> ValueError:
        return ValueError(f"not a valid tuned plan: {field} = {value!r}; expected {want}")

    if c.level not in LEVELS:
        raise bad("certificate.level", c.level, f"one of {list(LEVELS)}")
    if c.n < 2:
        raise bad("certificate.n", c.n, "at least 2 draws")
    for name in ("rms", "mmd2_se", "median", "switch_radius"):
        v = getattr(c, name)
        if not (math.isnan(v) or 0 <= v < math.inf):
            raise bad(f"certificate.{name}", v, "a finite number >= 0 (or null)")
    for name in ("mmd2", "mmd2_upper", "reference_mmd2"):
        v = getattr(c, name)
        if math.isinf(v):
            raise bad(f"certificate.{name}", v, "a finite number (or null)")
    if not (c.w2_upper >= 0):
        raise bad("certificate.w2_upper", c.w2_upper, "a number >= 0")
    if c.w2_to_target is not None and not (0 <= c.w2_to_target < math.inf):
        raise bad("certificate.w2_to_target", c.w2_to_target, "a finite number >= 0 (or null)")
    if any(not (0 <= v < math.inf) for _, v, _ in c.terms):
        raise bad("certificate.terms", [v for _, v, _ in c.terms], "finite numbers >= 0")
    if not 0 <= c.disagreements <= c.n:
        raise bad("certificate.disagreements", c.disagreements, f"a count in [0, {c.n}]")
    if r.steps < 8 or not (0 < r.delta < r.T < math.inf):
        raise bad("reference", (r.steps, r.T, r.delta), "at least 8 steps from a finite T down to delta > 0")
    if tp.cost < 0:
        raise bad("cost", tp.cost, "a count >= 0")
    if tp.spec is not None:
        try:
            spec_grid = tp.spec.grid(tp.evaluations)
        except (ValueError, TypeError) as e:
            raise bad("spec", tp.spec, f"a grid specification ({e})") from None
        if spec_grid.shape != tp.grid.shape or not torch.allclose(spec_grid, tp.grid, rtol=1e-9, atol=1e-300):
            raise ValueError("not a valid tuned plan: its spec does not give its grid (one of them was changed)")


CRITERIA = {"law": "MMD^2(plan, reference)", "coupled": "E|plan - ref|^2", "within": "E[|plan - ref|^2 | same mode]"}


def _number(v: Any, missing: float = math.nan) -> float:
    """A float read from a plan file, where null (or absence) stands for ``missing``."""
    return missing if v is None else float(v)


def _upper_mean(v: torch.Tensor, level: float, resamples: int = 4000) -> float:
    """One-sided upper confidence bound of E[v] by the bootstrap-t (studentized bootstrap), which
    corrects the normal bound's undercoverage for right-skewed v such as squared distances (second-
    order accurate; ``benchmarks/certificate.md`` measures both). Deterministic: fixed resampling seed."""
    n = v.shape[0]
    if n < 2:
        return math.inf
    v = v.to(torch.float64)
    mean, se = float(v.mean()), float(v.std()) / math.sqrt(n)
    if se == 0:
        return mean
    g = torch.Generator().manual_seed(20_221_121)
    idx = torch.randint(n, (resamples, n), generator=g)
    b = v[idx]
    t = (b.mean(1) - mean) / (b.std(1) / math.sqrt(n)).clamp_min(1e-300)
    return mean - float(torch.quantile(t, 1 - level)) * se


def tune(score: ScoreFn, d: int, nfe: int, *, process: Process | None = None, sampler: Any = None,
         n_pilot: int = 512, generator: torch.Generator | None = None, t_range: tuple[float, float] | None = None,
         reference_steps: int = 512, max_trials: int = 240, level: float = 0.95, target: Any = None,
         progress: Any = None, objective: str = "within", smallest_scale: float | None = None,
         trained: bool = False) -> TunedPlan:
    r"""Fit the times of a deterministic sampler's grid to ``score`` for a budget of ``nfe`` score
    evaluations (module docstring), and certify it.

    Parameters
    ----------
    score : s(x, t) in the clock of ``process`` (default OU), for points in ``d`` dimensions.
    nfe : the budget; the plan makes at most this many score evaluations per sample.
    sampler : DPM-Solver++ 3M (default), 2M, or UniPC (``sgmlab.samplers.unipc_3``, ``unipc_2``).
    n_pilot : prior draws to tune on; as many fresh ones choose between the tuned plan and the
        default and make the certificate.
    t_range : (smallest, largest) time the score may be evaluated at, in the process's clock
        (default (1e-8, 12) in OU time; for a trained model, its training range). The reference
        runs over the whole range, the plan within it.
    reference_steps : steps of the reference (DPM-Solver++ 3M on a log-SNR grid); its error is
        estimated by halving them.
    max_trials : grids tried (each costs ``nfe`` x ``n_pilot`` evaluations): a design of up to 18
        log-SNR grids, then Nelder-Mead (which may overrun its share by a few trials).
    level : confidence of the certificate (0.9, 0.95 or 0.99).
    target : the exact law, when the score is its exact score: the certificate then also bounds
        W2(plan, target) (:class:`Certificate`), and its smallest scale sets the smallest kernel.
    progress : a callable taking a message string, or None.
    objective : ``"within"`` (default): E|plan(z) - ref(z)|^2 over the draws whose outputs stay in
        the reference's mode (within a quarter of the outputs' median distance); ``"law"``: the
        squared MMD between the output laws (:class:`sgmlab.metrics.CoupledMMD`); ``"coupled"``:
        E|plan(z) - ref(z)|^2 over all draws (the tuner before: on a multimodal target, dominated
        by the few draws that switch modes). ``"within"`` and ``"law"`` keep the default unless
        fresh draws resolve the tuned plan as better, and never take one resolved worse on the law.
    smallest_scale : the smallest scale of the data (a standard deviation), for the smallest kernel
        of the law objective; default: the target's, or 1/64 of the outputs' median distance.
    trained : the score is a trained model's on standardized data (``sgmlab tune --model``): the
        default it is measured against, and keeps unless beaten, is ``default_plan(nfe,
        t_range=..., trained=True)``, the one ``sgmlab sample --model`` runs.

    Examples
    --------
    >>> import torch, sgmlab as sg
    >>> q = sg.targets.Gaussian([0.0, 1.0], [[1.0, 0.0], [0.0, 0.01]])
    >>> tp = sg.tune(sg.scores.exact(q), 2, 10, n_pilot=64, max_trials=40,
    ...              generator=torch.Generator().manual_seed(0))
    >>> tp.evaluations, tp.criterion
    (10, 'within')
    """
    nfe = _checks.positive_int("nfe", nfe)
    d = _checks.positive_int("d", d)
    n_pilot = _checks.positive_int("n_pilot", n_pilot, minimum=8)
    reference_steps = _checks.positive_int("reference_steps", reference_steps, minimum=8)
    max_trials = _checks.positive_int("max_trials", max_trials)
    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}; got {level!r}")
    if objective not in CRITERIA:
        raise ValueError(f"objective must be one of {sorted(CRITERIA)}; got {objective!r}")
    if not callable(score):
        raise TypeError(f"score must be a callable s(x, t); got {type(score).__name__}")
    if not isinstance(trained, bool):
        raise TypeError(f"trained must be True or False; got {trained!r}")
    process = OU() if process is None else process
    if not isinstance(process, Process):
        raise TypeError(f"process must be an sgmlab process (OU or VP); got {type(process).__name__}")
    baseline_sampler = None if sampler is None else sampler  # the default's own sampler when not given
    sampler = dpm_solver_pp_3m if sampler is None else sampler
    _sampler_name(sampler)
    if target is not None:
        from .targets import Target

        if not isinstance(target, Target) or target.dim != d:
            raise ValueError(f"target must be an sgmlab target in d = {d} dimensions; got {target!r}")
    if smallest_scale is not None:
        smallest_scale = _checks.real("smallest_scale", smallest_scale, low=0.0, low_open=True)
    elif target is not None:
        smallest_scale = target.smallest_scale()
    _checks.generator_for(generator, torch.device("cpu"))
    if t_range is None:
        tau_lo, tau_hi = 1e-8, min(12.0, float(process.ou_time(process.t_max)))
    else:
        lo = _checks.real("t_range[0]", t_range[0], low=0.0, low_open=True)
        hi = _checks.real("t_range[1]", t_range[1], low=lo, low_open=True, high=process.t_max)
        tau_lo, tau_hi = float(process.ou_time(lo)), float(process.ou_time(hi))
    lam_range = (_lam(tau_hi), _lam(tau_lo))
    say = progress if progress is not None else (lambda m: None)

    checked = _Checked(score)
    z = process.prior_sample(2 * n_pilot, d, generator=generator).to(torch.float64)
    z_fit, z_cert = z[:n_pilot], z[n_pilot:]

    def ref_grid(steps: int) -> torch.Tensor:
        return in_clock(grids.log_snr(tau_hi, tau_lo, steps), process)

    try:  # one probe, so that a dimension mismatch is named as such
        checked(z[:2], float(ref_grid(reference_steps)[0]))
    except (ValueError, RuntimeError, TypeError) as e:
        raise ValueError(f"the score cannot be evaluated on points in d = {d} dimensions ({e}); does d match "
                         "the score's dimension?") from e
    say(f"reference: {reference_steps} steps from {tau_hi:.3g} to {tau_lo:.3g} on {2 * n_pilot} draws")
    t_ref = time.perf_counter()
    ref = dpm_solver_pp_3m(checked, z, ref_grid(reference_steps), process=process)
    t_ref = (time.perf_counter() - t_ref) / reference_steps  # a step on 2 n_pilot draws: a trial step costs less
    # in the score and as much in fixed costs, which dominate for cheap scores
    half = dpm_solver_pp_3m(checked, z_cert, ref_grid(reference_steps // 2), process=process)
    say(f"the search should take about {max_trials * nfe * t_ref:.0f} s ({max_trials} trials of {nfe} steps on "
        f"{n_pilot} draws, timed by the reference's steps)")
    ref_fit, ref_cert = ref[:n_pilot], ref[n_pilot:]
    halving_rms = float(((half - ref_cert) ** 2).sum(1).mean().sqrt())
    meter = CoupledMMD(ref, smallest=smallest_scale, features=512)

    def run(g: torch.Tensor, zs: torch.Tensor, by: Any = None) -> torch.Tensor:
        return (by or sampler)(checked, zs, g, process=process)

    def value(out: torch.Tensor, target_out: torch.Tensor) -> float:
        if objective == "law":
            return meter(out, target_out).value
        sq = ((out - target_out) ** 2).sum(1)
        if objective == "within":  # draws whose outputs switch modes are left out (Certificate)
            sq = sq[_same_mode(sq, meter.median / 4)]
        return float(sq.mean())

    trials = 0
    t_search = time.perf_counter()
    every = max(1, max_trials // 10)

    def trial(params: np.ndarray, denoise: bool) -> float:
        nonlocal trials
        try:
            g = spec_from_params(params, denoise, lam_range).grid(nfe)
        except ValueError:  # a density too uneven for the steps
            return math.inf
        trials += 1
        if progress is not None and trials % every == 0 and trials < max_trials:
            left = (time.perf_counter() - t_search) / trials * (max_trials - trials)
            say(f"trial {trials} of about {max_trials}, about {left:.0f} s of search left, then the certificate")
        out = run(in_clock(g, process), z_fit)
        if not bool(torch.isfinite(out).all()):
            return math.inf
        v = value(out, ref_fit)
        return v if math.isfinite(v) else math.inf

    # the fixed default, on the same draws (kept unless the search beats it)
    # (clamped into the score's time range, as `sgmlab sample --model` and PlanScheduler run it)
    try:
        dplan, default_ok = default_plan(nfe, t_range=(tau_lo, tau_hi), trained=trained), True
    except ValueError:  # the range leaves no room for the default's grid
        dplan, default_ok = default_plan(nfe), False
    baseline_sampler = baseline_sampler or dplan.sampler
    dgrid = dplan.grid.clone()
    if default_ok:
        out_fit = run(in_clock(dgrid, process), z_fit, baseline_sampler)
        default_ok = bool(torch.isfinite(out_fit).all())  # a score that fails the default's grid
    default_obj = value(out_fit, ref_fit) if default_ok else math.inf

    # a small design of starts (as many as max_trials allows), then Nelder-Mead from the best one
    # of each ending with the trials left
    design = [(T, dl) for T in (tau_hi, 9.0, 5.0) for dl in (1e-2, 1e-3, 1e-4) if tau_lo <= dl < T <= tau_hi]
    design = [(dn, T, dl) for T, dl in design or [(tau_hi, tau_lo)] for dn in (True, False)]
    best: dict[bool, tuple[float, np.ndarray]] = {}
    for denoise, T, dl in design[:max_trials]:
        p = params_for(T, dl, lam_range)
        v = trial(p, denoise)
        if denoise not in best or v < best[denoise][0]:
            best[denoise] = (v, p)
    from scipy.optimize import minimize

    starts = {dn: vp for dn, vp in best.items() if math.isfinite(vp[0])}
    results = [(v0, p0, dn) for dn, (v0, p0) in starts.items()]
    for denoise, (v0, p0) in starts.items():
        n_eval = (max_trials - trials) // len(starts)
        if n_eval < p0.shape[0] + 2:  # not even one simplex step
            continue
        say(f"search ({'with' if denoise else 'without'} the denoising step) from objective {v0:.4g}")
        simplex = np.vstack([p0] + [p0 + 0.7 * np.eye(p0.shape[0])[i] for i in range(p0.shape[0])])
        if objective == "law":  # may be negative (an unbiased estimate near 0): relative to the start's size
            unit = max(abs(v0), 1e-300)
            f = (lambda p, dn=denoise, u=unit: trial(p, dn) / u)
        else:
            f = (lambda p, dn=denoise: math.log(max(trial(p, dn), 1e-300)))
        r = minimize(f, p0, method="Nelder-Mead",
                     options={"maxfev": n_eval, "initial_simplex": simplex, "xatol": 1e-3, "fatol": 1e-4})
        v = r.fun * unit if objective == "law" else math.exp(r.fun)
        if math.isfinite(v) and v < v0:
            results.append((v, r.x, denoise))
    if not results and not math.isfinite(default_obj):
        raise FloatingPointError("every grid tried gave non-finite outputs; check the score")
    v_best, p_best, dn_best = min(results, key=lambda r: r[0]) if results else (math.inf, None, True)

    # tuned or default: on the fresh draws, where the search could not fit their noise
    # tuned or default: "within" and "law" decide on the fresh draws, where the search could not fit
    # their noise, so the certificate holds for either candidate (a union bound over the two)
    level_used = level if objective == "coupled" else 1 - (1 - level) / 2
    z_level = _normal_quantile(level_used)
    spec = spec_from_params(p_best, dn_best, lam_range) if p_best is not None else None
    out_tuned = run(in_clock(spec.grid(nfe), process), z_cert) if spec is not None else None
    out_default = run(in_clock(dgrid, process), z_cert, baseline_sampler) if default_ok else None
    if out_default is not None and not bool(torch.isfinite(out_default).all()):
        out_default = None
    laws: dict[str, Any] = {}  # the fresh draws' law estimates, where the choice made them
    if out_tuned is None or not bool(torch.isfinite(out_tuned).all()):
        use_tuned, why = False, "the search found no finite grid"
    elif out_default is None:
        use_tuned, why = True, ""
    elif v_best >= default_obj:
        use_tuned, why = False, "the search did not beat it"
    elif objective == "coupled":
        use_tuned, why = True, ""
    else:
        laws = {"tuned": meter(out_tuned, ref_cert), "default": meter(out_default, ref_cert)}
        use_tuned, why = _resolved_better(out_tuned, out_default, ref_cert, meter, objective, z_level,
                                          laws=(laws["tuned"], laws["default"]))
    if not use_tuned and out_default is None:
        raise FloatingPointError("neither the tuned plan nor the fixed default gives finite outputs on fresh draws; "
                                 "check the score")
    if use_tuned:
        grid, objective_value, source, out = spec.grid(nfe), v_best, "tuned", out_tuned
    else:
        grid, objective_value, source, out = dgrid, default_obj, f"the fixed default ({why})", out_default
        sampler, spec = baseline_sampler, None
    grid = in_clock(grid, process)

    # the certificate, on the fresh draws (the law's estimate made once: the choice's, where it made one)
    law = laws.get("tuned" if use_tuned else "default")
    law = meter(out, ref_cert) if law is None else law
    sq = ((out - ref_cert) ** 2).sum(1)
    rms = float(sq.mean().sqrt())
    w2_upper = math.sqrt(max(_upper_mean(sq, level_used), 0.0))
    radius = meter.median / 4
    switches = int(((out - ref_cert).norm(dim=1) > radius).sum())
    terms: tuple[tuple[str, float, str], ...] = ()
    total = None
    if target is not None:
        m2, dim = float(target.second_moment()), d
        prior = math.sqrt(math.exp(-2 * tau_hi) * m2 + (1 - math.sqrt(-math.expm1(-2 * tau_hi))) ** 2 * dim)
        early = math.sqrt(math.expm1(-tau_lo) ** 2 * m2 - math.expm1(-2 * tau_lo) * dim)
        terms = (("W2(plan, reference)", w2_upper,
                  f"statistical upper bound, confidence {level} (coupling, bootstrap-t)"),
                 ("reference's discretisation", halving_rms, "estimated: RMS to the reference with half the steps"),
                 ("prior N(0, I) against q_T", prior,
                  f"rigorous at T = {tau_hi:.3g}; carried through the flow taken as 1-Lipschitz (estimated)"),
                 ("W2(q_delta, q), early stopping", early,
                  f"rigorous: E|X_delta - X_0|^2 at delta = {tau_lo:.3g} with the target's exact second moment"))
        total = sum(t[1] for t in terms)
    cert = Certificate(level, n_pilot, rms, w2_upper, terms, total, mmd2=law.value, mmd2_se=law.se,
                       mmd2_upper=law.value + z_level * law.se, reference_mmd2=meter(half, ref_cert).value,
                       median=meter.median, bandwidths=meter.bandwidths, disagreements=switches,
                       switch_radius=radius)
    reference = Reference("dpmpp_3m", reference_steps, tau_hi, tau_lo, halving_rms)
    say(f"done: {source}, MMD^2(plan, reference) <= {cert.mmd2_upper:.3g}, {switches} mode switches")
    tuned_for = {"process": repr(process), "clock": "OU time" if isinstance(process, OU) else "the process's own time",
                 "t_range": [float(process.time_from_ou(tau_lo)), float(process.time_from_ou(tau_hi))],
                 "score": "the exact score of the given target" if target is not None else "the given score"}
    return TunedPlan(sampler, grid, nfe, cert, reference, checked.calls, objective_value, default_obj, source,
                     spec, objective, tuned_for)


def _resolved_better(tuned: torch.Tensor, default: torch.Tensor, ref: torch.Tensor, meter: CoupledMMD,
                     objective: str, z: float, laws: tuple[Any, Any] | None = None) -> tuple[bool, str]:
    """Whether fresh draws resolve the tuned plan as better than the default (one-sided z): on the
    law for ``"law"``; for ``"within"``, on the squared distance to the reference over the draws
    where neither plan switches modes, and never resolved worse on the law."""
    law_t, law_d = laws if laws is not None else (meter(tuned, ref), meter(default, ref))
    law_gain, law_se = meter.difference(law_d, law_t)
    if law_gain < -z * law_se:
        return False, "fresh draws resolve the search's plan as worse on the law"
    if objective == "law":
        return law_gain > z * law_se, "fresh draws do not resolve the search's plan as better"
    sq_t, sq_d = ((tuned - ref) ** 2).sum(1), ((default - ref) ** 2).sum(1)
    gain = (sq_d - sq_t)[_same_mode(torch.maximum(sq_t, sq_d), meter.median / 4)]
    if gain.shape[0] < 2:
        return False, "too few fresh draws to compare"
    se = float(gain.std()) / math.sqrt(gain.shape[0])
    return float(gain.mean()) > z * se, "fresh draws do not resolve the search's plan as better"


def _same_mode(sq: torch.Tensor, radius: float) -> torch.Tensor:
    """The draws whose squared distance to the reference ``sq`` is within ``radius``^2: those beyond
    switched modes, as long as they are a minority; of more than a quarter beyond, only the quarter
    farthest is left out (errors that large are the plan's, not switches)."""
    beyond = int((sq > radius * radius).sum())
    drop = min(beyond, sq.shape[0] // 4)
    keep = torch.ones_like(sq, dtype=torch.bool)
    if drop:
        keep[sq.topk(drop).indices] = False
    return keep


def _normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))
