"""Training on data, and sampling from a trained model with every sampler."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .. import metrics
from ..learn import evaluate, load_data, load_model, score_error, standardized_target
from .. import samplers as S
from ..processes import CLD, OU
from ..targets import GaussianMixture
from .. import catalogue, distributed, grids
from ..defaults import run_in_chunks_
from .results import Result, Row
from .sampling import DTYPES, GRIDS, METRICS, metric_lines, metrics_generator

# samplers for models trained with process "cld" (hybrid score matching), by their short names too
PROFILE_STEPS = 64  # times of the eps_score(t)^2 profile a model's sampling run reports
CLD_SAMPLERS = {n[len("cld_"):]: e.sampler for n, e in catalogue.SAMPLERS.items() if e.family == "cld"}


@dataclass(frozen=True)
class DataSpec:
    """Where the training data came from (saved as data.json beside the checkpoint)."""

    data: str
    n: int = 20_000
    columns: tuple[str, ...] | None = None
    seed: int = 0
    delimiter: str | None = None
    image_shape: tuple[int, int] | None = None

    def load(self):
        return load_data(self.data, n=self.n, columns=list(self.columns) if self.columns else None, seed=self.seed,
                         delimiter=self.delimiter, image_shape=self.image_shape)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def plan_path(folder: str | Path, nfe: int) -> Path:
    """Where ``sgmlab tune --model`` keeps the plan for a budget of ``nfe`` score evaluations."""
    return Path(folder) / f"plan-nfe{int(nfe)}.json"


def tune_model(folder: str | Path, nfe: int, *, sampler: str = "dpmpp_3m", n_pilot: int = 512, max_trials: int = 240,
               level: float = 0.95, seed: int = 0, progress: Any = None, objective: str = "within"):
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
                generator=torch.Generator().manual_seed(seed), progress=progress, objective=objective,
                trained=res.config.standardize == "feature")


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
            spec = DataSpec(**{k: tuple(v) if k in ("columns", "image_shape") and v else v for k, v in raw.items()})
            if not isinstance(spec.data, str):
                raise TypeError(f"data must be a string; got {type(spec.data).__name__}")
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path} is not a valid data description ({e})") from None
    if data is not None:
        return (DataSpec(data) if spec is None else DataSpec(data, spec.n, spec.columns, spec.seed, spec.delimiter,
                                                             spec.image_shape)), None
    if spec is None:
        return None, "no data.json in the model folder"
    if spec.data in BUILTIN or spec.data in BUNDLED:
        return spec, None
    return None, (f"not read: data.json names the file {spec.data!r}, and a model folder never makes sgmlab read "
                  "a file outside it; name it yourself (--data) to measure against it")


def sampling_seconds(folder: str | Path, steps: int, n: int, *, batch_size: int | None = None,
                     dtype: torch.dtype = torch.float32, device: Any = "cpu") -> tuple[float, int, int]:
    """An estimate of the seconds sampling ``n`` points with ``steps`` network evaluations each
    takes, before it starts: one evaluation timed on a chunk of rows (the second of two: the first
    warms up), times the evaluations and chunks. Returns (seconds, chunks, rows per chunk); the
    metrics come on top."""
    import time

    from ..defaults import chunk_rows

    res = load_model(folder)
    dev = distributed.device(device)
    dim = res.standardizer.mean.shape[0]
    width = 2 * dim if res.config.process == "cld" else dim
    rows = min(n, chunk_rows(width, batch_size, dev))
    score = res.model.to(dev).score_fn()
    x = torch.randn(rows, width, generator=torch.Generator().manual_seed(0)).to(device=dev, dtype=dtype)
    t = 0.0
    for _ in range(2):
        t0 = time.perf_counter()
        with torch.no_grad():
            score(x, 0.5)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter() - t0
    chunks = -(-n // rows)
    return steps * chunks * t, chunks, rows


def sample_model(folder: str | Path, *, sampler: str = "exponential_integrator", grid: str = "uniform",
                 steps: int = 200, T: float | None = None, delta: float | None = None, n: int = 10_000,
                 seed: int = 0, callback: Any = None, plan: Any = None, data: str | None = None,
                 batch_size: int | None = None, dtype: torch.dtype = torch.float32, device: Any = "cpu",
                 box: bool = True, measure: bool = True) -> tuple[torch.Tensor, dict[str, Any], Any]:
    """Samples (in data units) from a trained model and what can be measured about them.

    With ``plan`` (a :class:`sgmlab.TunedPlan`, as ``sgmlab tune --model`` saves) its sampler and
    grid are used and ``sampler``, ``grid``, ``steps``, ``T`` and ``delta`` are ignored.
    For data drawn from a built-in target: the metrics against the target and the eps_score(t)
    profile on the sampling grid. For digits: the classifier-based evaluation. A data file named
    in the folder's ``data.json`` is read only when ``data`` names it (the folder is untrusted).
    ``device``: where the network and the sampler's state live (``"cuda"``: the process's own GPU).
    ``box``: project the denoised estimates onto the training data's box at high noise
    (:func:`sgmlab.learn.box_score`; models trained before it have none).
    """

    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; expected one of {sorted(GRIDS)}")
    res = load_model(folder)
    if not box:
        res.model.box = None
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

        dp = model_default_plan(process, delta, T, steps, res.config.standardize)
        run, g_times = dp.sampler, dp.grid
    else:
        run, g_times = entry.sampler, GRIDS[grid](T, delta, steps // entry.evaluations)
    rank, ranks = distributed.world()  # under torchrun: shards seeded seed + rank, gathered on rank 0
    sizes = distributed.shard_sizes(n, ranks)
    if min(sizes) < 1:
        raise ValueError(f"n={n} samples cannot be shared among {ranks} processes")
    dev = distributed.device(device)
    g = torch.Generator(dev).manual_seed(seed + rank)
    score = res.model.to(dev).score_fn()
    dim = res.standardizer.mean.shape[0]
    x0 = process.prior_sample(sizes[rank], dim, generator=g, dtype=dtype, device=dev)
    x = run_in_chunks_(run, score, x0, g_times, process=process, generator=g, callback=callback, batch_size=batch_size)
    x = distributed.gather_rows(x.cpu(), sizes)  # through gloo
    if x is None:
        return None, {}, (None, None, None)
    g = metrics_generator(g, seed)
    x = res.standardizer.inverse(CLD.positions(x) if is_cld else x)
    S.base.check_output(x, "the samples in data units (the model's standardization undone)")
    out: dict[str, Any] = {"model": str(folder), "process": res.config.process, "sampler": sampler, "grid": grid,
                           "steps": steps, "T": T, "delta": delta, "n": n, "seed": seed,
                           "dtype": str(dtype).replace("torch.", ""),
                           "box": getattr(res.model, "box", None) is not None}
    if plan is not None:
        out.update(sampler=plan.as_dict()["sampler"], grid="tuned plan", plan=plan.as_dict())
    out["ran"] = _ran(folder, run, g_times, res, plan, default, steps)
    lo, hi = res.config.delta, res.config.T
    if T > hi * 1.0001 or 0 < delta < lo * 0.9999:
        out["warnings"] = [f"sampling from T={T:.4g} to delta={delta:.4g}, outside the range the model was trained "
                           f"on, [{lo:.4g}, {hi:.4g}]: the network was never fitted there"]
    data = spec.load() if spec is not None else None
    if why_not is not None:
        out["data"] = why_not
    profile, ref = None, None
    if not measure:  # --metrics none
        return x, out, (data, None, None)
    if data is not None and data.target is not None:
        target = data.target
        # the law the sampler targets: the data noised to delta (CLD: the x-marginal of its law at delta);
        # a grid ending with the denoising step (the default's, a tuned plan's) targets the data law itself
        denoised = not is_cld and float(g_times[-1]) == 0.0
        ref = (CLD().marginal(target, delta).project(range(target.dim)) if is_cld
               else target if denoised else OU().marginal(target, float(process.ou_time(delta))))
        out["reference"] = ("q: the data law itself (the grid ends with the denoising step)" if denoised else
                            f"q_delta: the data law noised to delta={delta:g}")
        sm = []
        if isinstance(target, GaussianMixture):
            sm.append(metrics.mode_tv(x, target, generator=g))
        if target.dim <= 2:
            sm.append(metrics.tv_histogram(x, ref, generator=g))
        sm += [metrics.sliced_w2(x, ref, generator=g), metrics.mmd(x, ref, max_n=2000, generator=g)]
        if ref.smallest_scale() is not None:
            sm.append(metrics.mmd_small_scales(x, ref, generator=g))
        out["samples"] = {m.name: m.as_dict() for m in sm}
        # on a grid of its own across the trained range, so that the number is the model's, not --steps'
        profile = score_error(score, standardized_target(target, res.standardizer),
                              grids.exponential(res.config.T, res.config.delta, PROFILE_STEPS), process=process,
                              n=2048, generator=torch.Generator().manual_seed(seed))
        out["score_error"] = {"grid": f"{PROFILE_STEPS} log-spaced times over the trained range [{res.config.delta:.4g}, "
                                      f"{res.config.T:.4g}] (its own, not the sampler's); the average weights each "
                                      "time by its step (a left Riemann sum of the time integral)",
                              "times": profile.times.tolist(), "eps2": profile.eps2.tolist(),
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



def _ran(folder: str | Path, sampler: Any, grid: torch.Tensor, res: Any, plan: Any, default: bool,
         steps: int) -> dict[str, Any]:
    """What a model's sampling run did: the sampler, every time of its grid (in the model's clock),
    the process, where the plan came from (the tuned plan file with its SHA-256, the default table's
    row clamped into the trained range, or the named grid), and the checkpoint's step and SHA-256."""
    import hashlib

    from .sampling import run_record

    if plan is not None:
        path = plan_path(folder, steps)
        source = {"kind": "tuned plan", "file": str(path),
                  "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None}
    elif default:
        feature = res.config.standardize == "feature"
        table = "the trained-model default (sgmlab.default_plan(..., trained=True))" if feature else \
            "the default table's row"
        source = {"kind": f"{table} for {steps} evaluations, clamped into the trained range "
                          f"[{res.config.delta:.4g}, {res.config.T:.4g}]"}
    else:
        source = {"kind": "named sampler and grid"}
    return {**run_record(sampler, grid, res.config.process, source), "checkpoint": checkpoint_record(folder)}


def checkpoint_record(folder: str | Path) -> dict[str, Any]:
    """The checkpoint in ``folder`` as a run records it: its step, its SHA-256 and the steps it was
    trained for."""
    import json

    from ..learn.train import read_metadata

    meta = read_metadata(folder)
    return {"folder": str(folder), "step": int(meta.get("step", -1)), "sha256": meta.get("sha256"),
            "trained_steps": json.loads(meta["config"]).get("steps") if "config" in meta else None}


def check_model_dir(model: str | Path) -> None:
    if not (Path(model) / "checkpoint.safetensors").is_file():
        raise ValueError(f"--model {model}: no checkpoint.safetensors there (train one with `sgmlab train`)")


def model_process(folder: str | Path) -> str:
    """The process a trained model was trained with (its metadata only; loading checks the rest)."""
    import json

    from ..learn.train import read_metadata

    return json.loads(read_metadata(folder)["config"])["process"]


@dataclass(frozen=True)
class ModelSampleConfig:
    """``sgmlab sample --model``: which model, how to sample it, and the data to measure against.

    ``sampler`` None: a plan that ``sgmlab tune --model`` saved for ``steps`` evaluations if there is
    one and no grid, T or delta is given; otherwise ``default`` (sg.sample's plan for the budget,
    inside the trained range; CLD models: CLD's exponential integrator), or the paper's sampler when a
    grid, T or delta is given."""

    model: str
    sampler: str | None = None
    grid: str | None = None
    steps: int = 100
    T: float | None = None
    delta: float | None = None
    n: int = 10_000
    seed: int = 0
    data: str | None = None
    batch_size: int | None = None  # rows per chunk (sgmlab.defaults.chunk_rows)
    dtype: str = "float32"  # of the sampler's state (the network is float32)
    device: str = "cpu"  # of the network and the state; "cuda": the process's own GPU
    box: bool = True  # project the denoised estimates onto the training data's box at high noise
    metrics: str = "fast"  # none: no metrics nor score-error profile; fast and all: every metric (none costly)
    force_plan: bool = False  # use a saved plan that was tuned for another checkpoint or process (recorded)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}; got {self.dtype!r}")
        if self.metrics not in METRICS:
            raise ValueError(f"metrics must be one of {list(METRICS)}; got {self.metrics!r}")
        distributed.device(self.device)
        catalogue.check_default_alone(self.sampler, self.grid, self.T, self.delta)
        check_model_dir(self.model)
        self.plan()  # a saved plan is checked before any work

    def plan(self) -> tuple[Any, str | None]:
        """The plan ``sgmlab tune --model`` saved for ``steps`` evaluations, when it is the one to run
        (no sampler, grid, T or delta given), checked against the model (:func:`saved_plan`); and
        what did not match, when ``force_plan`` runs it anyway."""
        if self.sampler is None and self.grid is None and self.T is None and self.delta is None:
            return saved_plan(self.model, self.steps, force=self.force_plan)
        return None, None


def saved_plan(folder: str | Path, steps: int, *, force: bool = False) -> tuple[Any, str | None]:
    """The tuned plan saved in the model folder for ``steps`` evaluations (None when there is none),
    checked against the model: its own checksum and fields (:meth:`sgmlab.TunedPlan.load`), the
    checkpoint it was tuned for (its SHA-256), the process, and the budget. A plan that does not
    match is refused with the way out, or with ``force`` returned with what did not match."""
    from ..learn.train import read_metadata, vp_family
    from ..tuning import TunedPlan

    path = plan_path(folder, steps)
    if not path.is_file():
        return None, None
    retune = f"re-tune with `sgmlab tune --model {folder} --nfe {steps} --force`"
    try:
        plan = TunedPlan.load(path)
    except ValueError as e:
        raise ValueError(f"{e}; {retune}, or pass --sampler to sample without a plan") from None
    import json

    meta = read_metadata(folder)
    tuned = plan.tuned_for or {}
    ck = tuned.get("checkpoint") or {}
    process = repr(vp_family(json.loads(meta["config"])["process"])) if "config" in meta else None
    problems = []
    if not ck:
        problems.append("it records no checkpoint (written by hand, or before plans recorded what they were tuned for)")
    elif ck.get("sha256") != meta.get("sha256"):
        problems.append(f"it was tuned for checkpoint {str(ck.get('sha256'))[:12]} (step {ck.get('step')}) and this "
                        f"folder holds {str(meta.get('sha256'))[:12]} (step {meta.get('step')})")
    if tuned.get("process") is not None and process is not None and tuned["process"] != process:
        problems.append(f"it was tuned for the process {tuned['process']} and the model runs {process}")
    if plan.evaluations != steps:
        problems.append(f"it makes {plan.evaluations} evaluations, not the {steps} asked")
    note = "; ".join(problems) or None
    if note and not force:
        raise ValueError(f"{path}: {note}. {retune[0].upper() + retune[1:]}, or pass --force to use it anyway (the "
                         "result records it)")
    return plan, note

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelSampleResult(Result):
    config: ModelSampleConfig
    samples: torch.Tensor  # in data units
    metrics: dict[str, Any]
    data: Any = None  # the training data, when it could be read
    profile: Any = None  # eps_score(t)^2 on the grid, for data from a built-in target
    reference: Any = None  # the law the sampler targets, when known
    plan: Any = None  # the tuned plan used, if any

    def report(self) -> str:
        m, c = self.metrics, self.config
        lines = []
        if self.plan is not None:
            cert = self.plan.certificate
            law = (f"MMD^2(plan, reference) <= {cert.mmd2_upper:.3g} ({cert.disagreements} of {cert.n} draws switch "
                   "modes), " if math.isfinite(cert.mmd2_upper) else "")  # a plan tuned before the law has none
            lines.append(f"using the tuned plan {plan_path(c.model, c.steps)} (`sgmlab tune --model`; pass --sampler or "
                         f"--grid to sample without it): {law}W2(plan, reference) <= {cert.w2_upper:.3g} "
                         f"at confidence {cert.level}")
        lines.append(f"{m['sampler']} from the model in {c.model} (checkpoint step {m['ran']['checkpoint']['step']}): "
                     f"{m['ran']['summary']}, n={c.n}")
        if "data" in m:
            lines.append(f"  training data {m['data']}")
        lines += [f"  warning: {w}" for w in m.get("warnings", [])]
        if self.profile is not None:
            lines.append(f"  score error: time average of eps_score(t)^2 = {self.profile.time_average:.4g} "
                         f"+- {self.profile.time_average_stderr:.2g} (standardized coordinates; over the trained "
                         f"range on {PROFILE_STEPS} log-spaced times of its own)")
        if m.get("samples"):
            lines += metric_lines(m["samples"])
        lines += [f"  {k:48s} {[round(u, 3) for u in v] if isinstance(v, list) else round(v, 4)}"
                  for k, v in m.get("digits", {}).items()]
        return "\n".join(lines)

    def files(self) -> dict[str, Any]:
        from ..plotting import image_grid, samples_over_density, samples_vs_data, score_error_profile

        name, steps, x = self.metrics["sampler"], self.metrics["steps"], self.samples
        if self.data is not None and self.data.image_shape is not None:
            fig = image_grid(x, self.data.image_shape, f"{name}, {steps} steps: generated digits")
        elif self.reference is not None:
            fig = samples_over_density(x, self.reference, f"{name}, {steps} steps, learned score: samples over "
                                                          "the exact density of the law it targets")
        else:
            fig = samples_vs_data(x, None if self.data is None else self.data.x, f"{name}, {steps} steps, learned score",
                                  columns=None if self.data is None else self.data.columns)
        out = {"config.json": {k: self.metrics[k] for k in ("model", "sampler", "grid", "steps", "T", "delta", "n", "dtype",
                                                            "seed", "box")},
               "metrics.json": self.metrics, "samples.npy": x, "samples.png": fig}
        if self.profile is not None:
            out["score_error.png"] = score_error_profile(self.profile.times, self.profile.eps2, self.profile.stderr,
                                                         f"eps_score(t)^2 of the model in {self.config.model}")
        return out


def run_model_sampling(config: ModelSampleConfig, *, callback: Any = None) -> ModelSampleResult | None:
    """Sample the model of ``config`` (:class:`ModelSampleConfig` says which sampler and plan) and
    measure what can be measured (:func:`sample_model`)."""
    c = config
    plan, forced = c.plan()
    sampler = c.sampler
    if sampler is None:  # sg.sample's plan for the budget, unless a grid, T or delta asks for the paper's
        sampler = "exponential_integrator" if (c.grid or c.T or c.delta) else catalogue.DEFAULT
    if sampler == catalogue.DEFAULT and model_process(c.model) == "cld":
        sampler = "exponential_integrator"  # a CLD model: CLD's exponential integrator
    x, m, (data, profile, ref) = sample_model(c.model, sampler=sampler, grid=c.grid or "uniform", steps=c.steps,
                                              T=c.T, delta=c.delta, n=c.n, seed=c.seed, callback=callback, plan=plan,
                                              data=c.data, batch_size=c.batch_size, dtype=DTYPES[c.dtype],
                                              device=c.device, box=c.box, measure=c.metrics != "none")
    if x is None:  # not rank 0 under torchrun
        return None
    if sampler == catalogue.DEFAULT and plan is None:
        m["grid"] = "its own"
    if forced:
        m["ran"]["plan"]["forced"] = f"used with --force although {forced}"
    return ModelSampleResult(c, x, m, data, profile, ref, plan)


@dataclass(frozen=True)
class TrainRunResult(Result):
    """A finished ``sgmlab train``: the trained model (:class:`sgmlab.learn.TrainResult`) in ``out``."""

    out: Path
    result: Any  # sgmlab.learn.TrainResult

    def report(self) -> str:
        return (f"  done: final eval loss {self.result.history[-1]['eval_loss']:.5g}; sample with "
                f"`sgmlab sample --model {self.out}`")

    def files(self) -> dict[str, Any]:
        return {}  # the training writes its folder as it goes (checkpoints, config.json, data.json)


def run_training(spec: DataSpec, choices: dict[str, Any], out: str | Path, *, resume: bool = False,
                 force: bool = False, callback: Any = None, say: Any = print) -> TrainRunResult:
    """``sgmlab train``: load the data of ``spec``, build the :class:`sgmlab.learn.TrainConfig` of
    the default recipe for the data (:func:`sgmlab.learn.recipe`: the U-Net for images, the
    MLP otherwise, the data's own standardization) with ``choices`` (fields given, None meaning
    not given) over it, prepare ``out`` (rank 0 under torchrun; ``resume`` continues the checkpoint
    there, with the checkpoint's settings where ``choices`` gives none; ``force`` starts again) and
    train. ``config.json`` tells the truth at the end (steps done), after ``resume`` too."""
    import torch

    from .. import _io
    from ..learn import train
    from ..learn.train import init_distributed, recipe

    init_distributed()  # under torchrun
    data = spec.load()
    choices = {k: v for k, v in choices.items() if v is not None}
    config = recipe(data.image_shape, **{"standardize": data.standardize, **choices})
    out = Path(out)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    if resume:
        if force:
            raise ValueError("--resume continues the run in --out and --force would discard it; pass one of them")
        found = checkpoint_step(out)
        if found is None:
            raise ValueError(f"--resume: no checkpoint in {out}")
        from ..learn.train import read_metadata, saved_config

        saved = saved_config(read_metadata(out))  # what the command line does not give: the checkpoint's
        config = replace(saved, **choices)
        if rank == 0:
            say(f"resuming from the checkpoint at step {found} in {out}")
            if config.steps != saved.steps and config.lr_schedule == "cosine" and found < config.steps:
                from ..learn.train import cosine_factor

                was, now = (config.lr * cosine_factor(found, s, config.warmup) for s in (saved.steps, config.steps))
                say(f"  note: the cosine learning-rate schedule was laid out over {saved.steps} steps and is now laid "
                    f"out over {config.steps}: at step {found} the rate becomes {now:.3g} (it would have been "
                    f"{was:.3g}); the result differs from one uninterrupted run of {config.steps} steps")
    elif rank == 0:
        _io.prepare_dir(out, force=force)
        for old in [out / "checkpoint.safetensors", *out.glob("plan-nfe*.json")]:  # --force: another model now
            old.unlink(missing_ok=True)
        _io.write_json(out / "config.json", {"train": asdict(config), "data": spec.as_dict()})
        _io.write_json(out / "data.json", spec.as_dict())
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    if rank == 0:
        say(f"training on {data.name}: {data.x.shape[0]} rows, d={data.x.shape[1]}; {config.net}, {config.steps} "
            f"steps, batch {config.batch_size}; checkpoints in {out}")
    res = train(data.x, config, out=out, resume=resume, callback=callback)
    if rank == 0:
        _io.write_json(out / "config.json", {"train": asdict(config), "data": spec.as_dict(),
                                             "steps_done": config.steps})  # the truth after --resume too
    return TrainRunResult(out, res)


def checkpoint_step(folder: str | Path) -> int | None:
    """The step of the checkpoint in ``folder``, or None when there is none."""
    from ..learn.train import read_metadata

    if not (Path(folder) / "checkpoint.safetensors").is_file():
        return None
    return int(read_metadata(folder)["step"])


@dataclass(frozen=True)
class ModelBoundConfig:
    """``sgmlab bound --model``: Theorem 2 for a trained model of a built-in target (OU or VP)."""

    model: str
    steps: tuple[int, ...] = (10, 20, 50, 100, 200)
    grid: str = "uniform"
    n: int = 10_000  # samples whose measured error stands beside the bound
    n_eps: int = 4096  # draws from each q_t measuring eps_score(t)^2
    n_paths: int = 1000  # forward paths a step for the exact score's path KL on mixtures
    level: float = 0.95
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelBoundRow(Row):
    steps: int
    score_error: float  # sum_k h_k eps_score(t_k)^2
    score_error_upper: float
    exact_path_kl: float
    exact_path_kl_stderr: float
    exact_kind: str
    path_kl_upper: float
    kl_bound: float
    tv_bound: float
    measured: dict[str, Any]  # the model's samples against q_delta (sample_model's metrics)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelBoundResult(Result):
    config: ModelBoundConfig
    checkpoint_step: int
    target: str
    rows: list[ModelBoundRow]

    def report(self) -> str:
        c = self.config
        lines = [f"Theorem 2 on the model in {c.model} (checkpoint step {self.checkpoint_step}), data {self.target}: "
                 f"the paper's exponential integrator, {c.grid} grid over the trained range",
                 f"  {'steps':>6s} | {'sum h eps^2':>11s} {'upper':>9s} | {'exact path KL':>13s} {'+-':>8s} | "
                 f"{'path KL <=':>10s} {'KL <=':>9s} {'TV <=':>7s} | measured (the samples against q_delta)"]
        for r in self.rows:
            shown = ", ".join(f"{k} {v['value']:.3g} (floor {v['noise_floor']:.2g})" for k, v in r.measured.items()
                              if k in ("tv_histogram", "mode_tv", "mmd2_small_scales"))
            lines.append(f"  {r.steps:6d} | {r.score_error:11.4g} {r.score_error_upper:9.4g} | {r.exact_path_kl:13.4g} "
                         f"{r.exact_path_kl_stderr:8.2g} | {r.path_kl_upper:10.4g} {r.kl_bound:9.4g} {r.tv_bound:7.3g} | "
                         f"{shown}")
        kind = self.rows[0].exact_kind.split(" (")[0] if self.rows else ""
        lines.append(f"  ESTIMATE at confidence {c.level}: sqrt(path KL) <= sqrt(sum_k h_k eps_score(t_k)^2) + "
                     f"sqrt(exact score's path KL) (Minkowski on the forward path), eps_score measured on {c.n_eps} "
                     f"draws of each q_t (finite variance assumed; errors on sets the draws never reach are not "
                     f"seen); the exact score's part: {kind}. A binned TV below the TV bound is what the theorem says.")
        return "\n".join(lines)

    def files(self) -> dict[str, Any]:
        return {"config.json": self.config.as_dict(),
                "bounds.json": {"checkpoint_step": self.checkpoint_step, "target": self.target,
                                "rows": [r.as_dict() for r in self.rows]}}


def model_bound_target(folder: str | Path) -> tuple[Any, Any, str]:
    """The model in ``folder``, its data's law in the model's coordinates and the data's name; a
    clear error when the bound cannot be made (a CLD model, data whose law is not known)."""
    res = load_model(folder)
    if res.config.process == "cld":
        raise ValueError(f"the model in {folder} is a CLD model; the bound here is the paper's Theorem 2 for OU and "
                         "VP models")
    spec, why_not = _data_spec(folder, None)
    data = spec.load() if spec is not None else None
    if data is None or data.target is None:
        raise ValueError(f"the bound needs the law of the model's data, known only for data from a built-in target "
                         f"(`sgmlab train --data mixture2d`); {why_not or 'this model was trained on a data set'}")
    return res, standardized_target(data.target, res.standardizer), spec.data


def run_model_bound(config: ModelBoundConfig, *, progress: Any = None) -> ModelBoundResult:
    """:func:`sgmlab.theory.learned_bound` for the model of ``config`` at each number of steps, its
    score measured on the data's known law in the model's coordinates, beside the error of its samples."""
    from ..learn.train import read_metadata, vp_family
    from ..theory import learned_bound

    c = config
    say = progress if progress is not None else (lambda m: None)
    if c.grid not in GRIDS:
        raise ValueError(f"grid must be one of {sorted(GRIDS)}; got {c.grid!r}")
    if not c.steps or any(not isinstance(s, int) or s < 1 for s in c.steps):
        raise ValueError(f"steps must be positive integers; got {c.steps!r}")
    res, q, name = model_bound_target(c.model)
    process = vp_family(res.config.process)
    rows = []
    for steps in c.steps:
        say(f"{steps} steps: the score error on each q_t, the exact score's path KL, then {c.n} samples")
        g = GRIDS[c.grid](res.config.T, res.config.delta, steps)
        lb = learned_bound(q, res.model.score_fn(), g, process, n=c.n_eps, n_paths=c.n_paths, level=c.level,
                           generator=torch.Generator().manual_seed(c.seed))
        _, out, _ = sample_model(c.model, sampler="exponential_integrator", grid=c.grid, steps=steps, n=c.n,
                                 seed=c.seed)
        rows.append(ModelBoundRow(steps, lb.score_error, lb.score_error_upper, lb.exact.path_kl,
                                  lb.exact.path_kl_stderr, lb.exact.kind, lb.path_kl_upper, lb.kl_bound, lb.tv_bound,
                                  out.get("samples", {})))
    return ModelBoundResult(c, int(read_metadata(c.model).get("step", -1)), name, rows)
