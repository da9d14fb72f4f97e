"""Sample a named target with a named sampler and grid, and measure the error against the truth."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .. import catalogue, distributed, metrics, scores
from ..defaults import run_in_chunks_
from .. import processes as P
from ..samplers.base import Callback
from ..targets import BUILTIN, Gaussian, GaussianMixture, Target, builtin
from .results import Result

# Names meet objects in sgmlab.catalogue; these views of it keep their old shapes.
SAMPLERS: dict[str, Any] = {n: e.sampler for n, e in catalogue.SAMPLERS.items() if e.family == "ou"}
GRIDS = catalogue.GRIDS
PROCESSES: dict[str, P.Process] = catalogue.PROCESSES
DTYPES = {"float64": torch.float64, "float32": torch.float32}  # of a sampler's state
# what the sample metrics cost: the points exact W2 (optimal transport, cubic in them) is computed on
METRICS = {"none": 0, "fast": 500, "all": 2000}


OU_T_MAX = 100.0  # the largest start T (OU time) a run takes


def physical_memory() -> int:
    """This machine's memory in bytes (0 when the system does not say)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


@dataclass(frozen=True)
class SampleConfig:
    """Everything that determines a sampling run; saved as config.json beside its results."""

    target: str = "mixture2d"
    dim: int | None = None
    sampler: str = "exponential_integrator"
    grid: str = "uniform"
    steps: int = 200
    T: float = 5.0
    delta: float = 1e-3
    n: int = 10_000
    seed: int = 0
    process: str = "ou"
    batch_size: int | None = None  # rows per chunk (sgmlab.defaults.chunk_rows); None: about 2^22 numbers
    dtype: str = "float64"  # of the sampler's state: float64 or float32
    device: str = "cpu"  # where the state lives; "cuda": the process's own GPU (under torchrun, its local one)
    metrics: str = "fast"  # none: no sample metrics; fast: exact W2 on 500 points; all: on 2000 (METRICS)

    def chunks(self, d: int) -> int:
        """How many chunks the run takes in d dimensions."""
        from ..defaults import chunk_rows

        return -(-self.n // chunk_rows(d, self.batch_size, distributed.device(self.device)))

    def __post_init__(self) -> None:
        for name, table in (("target", BUILTIN), ("grid", GRIDS), ("process", PROCESSES)):
            value = getattr(self, name)
            if value not in table:
                raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(table)}")
        if self.sampler != catalogue.DEFAULT:
            entry = catalogue.sampler(self.sampler)
            if entry.family == "cld":
                raise ValueError(f"{entry.name} samples CLD (`sgmlab compare-cld`, or a CLD model with --model); "
                                 f"here the process is {self.process}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"n must be an integer >= 2; got {self.n!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        self.chunks(1)  # batch_size checked
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}; got {self.dtype!r}")
        if self.metrics not in METRICS:
            raise ValueError(f"metrics must be one of {list(METRICS)}; got {self.metrics!r}")
        distributed.device(self.device)

    def build(self) -> tuple[Target, P.Process, torch.Tensor]:
        """The target, process and grid this config names (raises ValueError on bad values)."""
        process = PROCESSES[self.process]
        if self.dim is not None:  # a d x d covariance and its factors, before anything is allocated
            need, have = 4 * 8 * self.dim ** 2, physical_memory()
            if have and need > have / 2:
                raise ValueError(f"dim={self.dim} needs about {need / 2**30:.3g} GiB for the target's covariance and "
                                 f"its factors, more than half of this machine's {have / 2**30:.3g} GiB")
        if self.sampler != catalogue.DEFAULT:
            if self.T > process.t_max:
                raise ValueError(f"T={self.T} is beyond the range of process {self.process!r} (t_max={process.t_max})")
            if isinstance(process, P.OU) and self.T > OU_T_MAX:
                raise ValueError(f"T={self.T:g} is beyond OU time {OU_T_MAX:g}: from about 19 on, e^(-2T) is below "
                                 "float64's resolution, so a larger T changes nothing but overflows the steps")
        target = builtin(self.target, self.dim)
        if self.sampler == catalogue.DEFAULT:
            from ..defaults import default_plan, in_clock

            return target, process, in_clock(default_plan(self.steps).grid, process)
        grid = GRIDS[self.grid](self.T, self.delta, self.steps // catalogue.sampler(self.sampler).evaluations)
        return target, process, grid

    def as_dict(self) -> dict[str, Any]:
        """The config as saved: with the default sampler, the grid, T and delta are the default
        table's (metrics.json's ``ran`` holds its times), not the fields' unused values."""
        d = asdict(self)
        if self.sampler == catalogue.DEFAULT:
            d.update(grid="the default table's row for the budget (metrics.json: ran)", T=None, delta=None)
        return d


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(map(_fmt, v)) + "]"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def metric_lines(sample_metrics: dict[str, Any]) -> list[str]:
    """Sample metrics with their noise floors (and mode weights), as the reports print them."""
    lines = [f"  {'sample metric':32s} {'value':>10s} {'noise floor':>12s}"]
    for name, d in sample_metrics.items():
        if not isinstance(d, dict):
            lines.append(f"    {name:30s} {d:10.4g}")
            continue
        spread = f" +- {d['noise_floor_spread']:.2g}" if "noise_floor_spread" in d else ""
        lines.append(f"    {name:30s} {d['value']:10.4g} {d['noise_floor']:12.4g}{spread}")
        if "weights_measured" in d:
            lines.append(f"      mode weights measured [{', '.join(f'{w:.4f}' for w in d['weights_measured'])}]  "
                         f"exact [{', '.join(f'{w:.4f}' for w in d['weights_exact'])}]")
    lines.append("  noise floor: the metric's mean magnitude over 4 exact samples of the same size, +- their spread "
                 "(mode_tv: its expected value)")
    return lines


@dataclass(frozen=True)
class SampleResult(Result):
    config: SampleConfig
    samples: torch.Tensor
    reference: Target  # q_delta, the law the sampler targets
    metrics: dict[str, Any] = field(default_factory=dict)

    def report(self) -> str:
        m, c = self.metrics, self.config
        lines = [f"{c.sampler} on {c.target} (d={self.samples.shape[1]}): {m['ran']['summary']}, "
                 f"process {c.process}, n={c.n}, seed={c.seed}", f"  plan: {m['ran']['plan']}",
                 f"  {m['score_evaluations']} score evaluations, {m['wall_seconds']:.2f} s "
                 f"({m['score_seconds']:.2f} s in the score)", f"  reference: {m['reference']}"]
        if "exact" in m:
            lines.append("  exact (output law computed in closed form, no Monte-Carlo error):")
            lines += [f"    {k:32s} {_fmt(v)}" for k, v in m["exact"].items()]
        return "\n".join(lines + metric_lines(m["samples"]))

    def files(self) -> dict[str, Any]:
        from ..plotting import samples_over_density

        c = self.config
        fig = samples_over_density(self.samples, self.reference,
                                   f"{self.metrics['ran']['summary']}: samples over the exact density of "
                                   f"{self.metrics['reference'].split(':')[0]}"
                                   + (" (first two coordinates)" if self.samples.shape[1] > 2 else ""))
        return {"config.json": c.as_dict(), "metrics.json": self.metrics, "samples.npy": self.samples,
                "samples.png": fig}


def synchronize(x: torch.Tensor) -> torch.Tensor:
    """``x``, once the work queued on its GPU is done (so that a timer reads the work's time)."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    return x


def metrics_generator(g: torch.Generator, seed: int) -> torch.Generator:
    """The generator of the metrics' draws (on the CPU, where the samples are measured): the sampler's
    own when it is a CPU one, else a CPU one from ``seed``."""
    return g if g.device.type == "cpu" else torch.Generator().manual_seed(seed)


class TimedScore:
    """Wraps a score to count its evaluations and the time spent in them (on a GPU, to the end of
    the work they queued)."""

    def __init__(self, score: scores.ScoreFn):
        self.score, self.calls, self.seconds = score, 0, 0.0

    def __call__(self, x: torch.Tensor, t: float) -> torch.Tensor:
        t0 = time.perf_counter()
        out = synchronize(self.score(x, t))
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def grid_text(grid: torch.Tensor) -> str:
    """A grid in a few words: its steps, first and last times, and the denoising step."""
    g = [float(v) for v in grid]
    last = g[-2] if g[-1] == 0 else g[-1]
    return (f"{len(g) - 1} steps from {g[0]:.4g} to {last:.3g}" + (", then the denoising step to 0" if g[-1] == 0
                                                                   else ""))


def run_record(sampler: Any, grid: torch.Tensor, process: str, plan: Any, *, name: str | None = None
               ) -> dict[str, Any]:
    """What a run did, as it did it: the sampler (``name``, default its catalogue name), every time
    of its grid (in the process's clock), the process, and where the plan came from (``plan``)."""
    name = catalogue.name_of(sampler) if name is None else name
    return {"sampler": name, "grid": [float(v) for v in grid], "process": process,
            "clock": "OU time" if process == "ou" else f"the {process} process's own time", "plan": plan,
            "summary": f"{name}, {grid_text(grid)}"}


def ran(sampler: Any, grid: torch.Tensor, config: SampleConfig) -> dict[str, Any]:
    """:func:`run_record` of a target's run: the default table's row, or the named grid."""
    default = config.sampler == catalogue.DEFAULT
    return run_record(sampler, grid, config.process,
                      f"the default table's row for {config.steps} evaluations (sgmlab.default_plan)" if default
                      else f"the {config.grid} grid from T={config.T} to delta={config.delta}")


def run_sampling(config: SampleConfig, *, callback: Callback | None = None,
                 metrics_n: int | None = None) -> SampleResult | None:
    """Run the configured sampler from the prior and measure its output against q_delta.

    Metrics: for a Gaussian target, the exact output law (KL both ways, W2, TV bounds, against
    q_delta and against q); for a mixture, the mode-weight TV; in 1-D and 2-D the binned TV by
    quadrature; sliced W2 and MMD, and exact W2 on ``metrics_n`` points (default: 500 for
    ``config.metrics == "fast"``, 2000 for ``"all"``; ``"none"`` skips the sample metrics). Each sample metric
    comes with its noise floor.

    Under torchrun each rank samples its shard with seed ``seed + rank`` (:mod:`sgmlab.distributed`);
    rank 0 gathers the samples, measures them and returns the result, the other ranks None.
    """
    target, process, grid = config.build()
    rank, ranks = distributed.world()
    sizes = distributed.shard_sizes(config.n, ranks)
    if min(sizes) < 1:
        raise ValueError(f"n={config.n} samples cannot be shared among {ranks} processes")
    dev = distributed.device(config.device)
    g = torch.Generator(dev).manual_seed(config.seed + rank)
    if config.sampler == catalogue.DEFAULT:
        from ..defaults import default_plan

        sampler, route = default_plan(config.steps).sampler, "deterministic"
    else:
        entry = catalogue.sampler(config.sampler)
        sampler, route = entry.sampler, entry.exact_law
    score = TimedScore(scores.exact(target.to(dev), process))
    x0 = process.prior_sample(sizes[rank], target.dim, generator=g, dtype=DTYPES[config.dtype], device=dev)
    t0 = time.perf_counter()
    x = synchronize(run_in_chunks_(sampler, score, x0, grid, process=process, generator=g,
                                   batch_size=config.batch_size, callback=callback))
    wall = time.perf_counter() - t0
    x = distributed.gather_rows(x.cpu(), sizes)  # through gloo; measured on the CPU, against the target there
    if x is None:
        return None
    g = metrics_generator(g, config.seed)
    end = float(grid[-1])
    reference = target if end == 0 else process.marginal(target, end)
    out: dict[str, Any] = {
        "ran": ran(sampler, grid, config),
        "reference": ("q: the target itself (the grid ends with the denoising step)" if end == 0 else
                      f"q_delta: the target noised to forward time delta={end:g}"),
        "score_evaluations": score.calls, "wall_seconds": wall, "score_seconds": score.seconds,
    }
    if ranks > 1:
        out["ranks"] = {"processes": ranks, "rows": sizes, "seeds": [config.seed + r for r in range(ranks)],
                        "timings": "rank 0's"}
    if isinstance(target, Gaussian) and route in ("affine", "deterministic", "multistep"):
        law = catalogue.EXACT_LAWS[route](sampler, target, grid, process=process)
        out["exact"] = {
            "kl_output_to_q_delta": metrics.gaussian_kl(law, reference),
            "kl_q_delta_to_output": metrics.gaussian_kl(reference, law),
            "w2_output_to_q_delta": metrics.gaussian_w2(law, reference),
            "tv_bounds_output_to_q_delta": list(metrics.gaussian_tv_bounds(law, reference)),
            "kl_output_to_q": metrics.gaussian_kl(law, target),
            "w2_q_delta_to_q": metrics.gaussian_w2(reference, target),
        }
        if config.dtype != "float64":
            out["exact"]["arithmetic"] = ("float64: the output law of the algorithm; this run's float32 rounding is "
                                          "not in it (benchmarks/float32.md measures that)")
    if config.metrics == "none":
        out["samples"] = {}
        return SampleResult(config, x, reference, out)
    metrics_n = METRICS[config.metrics] if metrics_n is None else metrics_n
    sample_metrics = []
    if isinstance(target, GaussianMixture):
        sample_metrics.append(metrics.mode_tv(x, target, generator=g))
    if target.dim <= 2:
        sample_metrics.append(metrics.tv_histogram(x, reference, generator=g))
    sample_metrics += [metrics.sliced_w2(x, reference, generator=g),
                       metrics.mmd(x, reference, max_n=metrics_n, generator=g),
                       metrics.w2(x, reference, max_n=metrics_n, generator=g)]
    if reference.smallest_scale() is not None:
        sample_metrics.append(metrics.mmd_small_scales(x, reference, generator=g))
    out["samples"] = {m.name: m.as_dict() for m in sample_metrics}
    return SampleResult(config, x, reference, out)
