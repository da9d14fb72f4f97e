"""Training on data, and sampling from a trained model with every sampler."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .. import metrics
from ..learn import evaluate, load_data, load_model, score_error, standardized_target
from .. import samplers as S
from ..processes import CLD, OU
from ..targets import GaussianMixture
from .. import catalogue
from .sampling import GRIDS

# samplers for models trained with process "cld" (hybrid score matching), by their short names too
CLD_SAMPLERS = {n[len("cld_"):]: e.sampler for n, e in catalogue.SAMPLERS.items() if e.family == "cld"}


@dataclass(frozen=True)
class DataSpec:
    """Where the training data came from (saved as data.json beside the checkpoint)."""

    data: str
    n: int = 20_000
    columns: tuple[str, ...] | None = None
    seed: int = 0
    delimiter: str | None = None

    def load(self):
        return load_data(self.data, n=self.n, columns=list(self.columns) if self.columns else None, seed=self.seed,
                         delimiter=self.delimiter)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_path(folder: str | Path, nfe: int) -> Path:
    """Where ``sgmlab tune --model`` keeps the plan for a budget of ``nfe`` score evaluations."""
    return Path(folder) / f"plan-nfe{int(nfe)}.json"


def tune_model(folder: str | Path, nfe: int, *, sampler: str = "dpmpp_3m", n_pilot: int = 512, max_trials: int = 240,
               level: float = 0.95, seed: int = 0, progress: Any = None):
    """:func:`sgmlab.tune` for the model trained in ``folder`` (in its standardized coordinates,
    within its training range of times); returns the :class:`sgmlab.TunedPlan` (not yet saved)."""
    from ..tuning import TUNABLE, tune

    if sampler not in TUNABLE:
        raise ValueError(f"unknown sampler {sampler!r} for tuning; expected one of {sorted(TUNABLE)}")
    res = load_model(folder)
    if res.config.process == "cld":
        raise ValueError(f"the model in {folder} is a CLD model; the tuner fits plans for OU and VP models")
    from ..learn.train import vp_family

    dim = res.standardizer.mean.shape[0]
    return tune(res.model.score_fn(), dim, nfe, process=vp_family(res.config.process), sampler=TUNABLE[sampler],
                n_pilot=n_pilot, max_trials=max_trials, level=level, t_range=(res.config.delta, res.config.T),
                generator=torch.Generator().manual_seed(seed), progress=progress)


def _data_spec(folder: str | Path, data: str | None) -> tuple[DataSpec | None, str | None]:
    """The training data to measure against, from ``data.json`` and the user's ``data``, and why not
    if it is not read. A model folder is untrusted: a file it names is read only when the user
    names it too (``data``); built-in data sets are always fine."""
    import json

    from ..learn.data import BUNDLED
    from ..targets import BUILTIN

    path = Path(folder) / "data.json"
    spec = None
    if path.exists():
        try:
            raw = json.loads(path.read_text())
            spec = DataSpec(**{k: tuple(v) if k == "columns" and v else v for k, v in raw.items()})
            if not isinstance(spec.data, str):
                raise TypeError(f"data must be a string; got {type(spec.data).__name__}")
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path} is not a valid data description ({e})") from None
    if data is not None:
        return (DataSpec(data) if spec is None else DataSpec(data, spec.n, spec.columns, spec.seed, spec.delimiter)), None
    if spec is None:
        return None, "no data.json in the model folder"
    if spec.data in BUILTIN or spec.data in BUNDLED:
        return spec, None
    return None, (f"not read: data.json names the file {spec.data!r}, and a model folder never makes sgmlab read "
                  "a file outside it; name it yourself (--data) to measure against it")


def sample_model(folder: str | Path, *, sampler: str = "exponential_integrator", grid: str = "uniform",
                 steps: int = 200, T: float | None = None, delta: float | None = None, n: int = 10_000,
                 seed: int = 0, callback: Any = None, plan: Any = None,
                 data: str | None = None) -> tuple[torch.Tensor, dict[str, Any], Any]:
    """Samples (in data units) from a trained model and what can be measured about them.

    With ``plan`` (a :class:`sgmlab.TunedPlan`, as ``sgmlab tune --model`` saves) its sampler and
    grid are used and ``sampler``, ``grid``, ``steps``, ``T`` and ``delta`` are ignored.
    For data drawn from a built-in target: the metrics against the target and the eps_score(t)
    profile on the sampling grid. For digits: the classifier-based evaluation. A data file named
    in the folder's ``data.json`` is read only when ``data`` names it (the folder is untrusted).
    """

    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; expected one of {sorted(GRIDS)}")
    res = load_model(folder)
    is_cld = res.config.process == "cld"
    if is_cld and sampler in CLD_SAMPLERS:
        sampler = "cld_" + sampler
    default = sampler == catalogue.DEFAULT
    if default and is_cld:
        raise ValueError("the default plan (DPM-Solver++) is for OU and VP models; a CLD model takes cld_* samplers")
    entry = None if default else catalogue.sampler(sampler, "cld" if is_cld else "ou")
    spec, why_not = _data_spec(folder, data)
    T = res.config.T if T is None else T
    delta = res.config.delta if delta is None else delta
    from ..learn.train import vp_family

    process = CLD() if is_cld else vp_family(res.config.process)
    if plan is not None:
        if is_cld:
            raise ValueError("a tuned plan is for OU and VP models, not CLD ones")
        run, g_times = plan.sampler, plan.grid
        T, delta, steps = float(g_times[0]), float(g_times[g_times > 0][-1]), plan.evaluations
    elif default:  # sg.sample's plan for the budget, inside [delta, T]
        from ..learn.train import model_default_plan

        dp = model_default_plan(process, delta, T, steps)
        run, g_times = dp.sampler, dp.grid
    else:
        run, g_times = entry.sampler, GRIDS[grid](T, delta, steps // entry.evaluations)
    g = torch.Generator().manual_seed(seed)
    score = res.model.score_fn()
    dim = res.standardizer.mean.shape[0]
    x = run(score, process.prior_sample(n, dim, generator=g), g_times, process=process, generator=g,
            callback=callback)
    x = res.standardizer.inverse(CLD.positions(x) if is_cld else x)
    S.base.check_output(x, "the samples in data units (the model's standardization undone)")
    out: dict[str, Any] = {"model": str(folder), "process": res.config.process, "sampler": sampler, "grid": grid,
                           "steps": steps, "T": T, "delta": delta, "n": n, "seed": seed}
    if plan is not None:
        out.update(sampler=plan.as_dict()["sampler"], grid="tuned plan", plan=plan.as_dict())
    lo, hi = res.config.delta, res.config.T
    if T > hi * 1.0001 or 0 < delta < lo * 0.9999:
        out["warnings"] = [f"sampling from T={T:.4g} to delta={delta:.4g}, outside the range the model was trained "
                           f"on, [{lo:.4g}, {hi:.4g}]: the network was never fitted there"]
    data = spec.load() if spec is not None else None
    if why_not is not None:
        out["data"] = why_not
    profile, ref = None, None
    if data is not None and data.target is not None:
        target = data.target
        # the law the sampler targets: the data noised to delta (CLD: the x-marginal of its law at delta)
        # (a plan ending with the denoising step targets the data law itself)
        denoised = plan is not None and float(g_times[-1]) == 0.0
        ref = (CLD().marginal(target, delta).project(range(target.dim)) if is_cld
               else target if denoised else OU().marginal(target, float(process.ou_time(delta))))
        sm = []
        if isinstance(target, GaussianMixture):
            sm.append(metrics.mode_tv(x, target, generator=g))
        if target.dim <= 2:
            sm.append(metrics.tv_histogram(x, ref, generator=g))
        sm += [metrics.sliced_w2(x, ref, generator=g), metrics.mmd(x, ref, max_n=2000, generator=g)]
        out["samples"] = {m.name: m.as_dict() for m in sm}
        profile = score_error(score, standardized_target(target, res.standardizer), g_times[g_times > 0],
                              process=process, generator=g)
        out["score_error"] = {"times": profile.times.tolist(), "eps2": profile.eps2.tolist(),
                              "stderr": profile.stderr.tolist(), "time_average_eps2": profile.time_average,
                              "time_average_stderr": profile.time_average_stderr,
                              "coordinates": "standardized data (the model's own)",
                              "score": "velocity score" if is_cld else "score"}
    elif data is not None and data.image_shape is not None and data.labels is not None:
        out["digits"] = evaluate.evaluate_digits(x, data.x, data.labels, seed=seed)
    elif data is not None:
        out["samples"] = {"sliced_w2_to_training_data": metrics.sliced_w2_samples(
            x, data.x[torch.randint(data.x.shape[0], (min(n, data.x.shape[0]),), generator=g)], generator=g)}
    return x, out, (data, profile, ref)

