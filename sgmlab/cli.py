"""Command line: ``sgmlab <command>``. Thin: each command parses its arguments into a config,
prepares the output folder (refusing before any work), runs an experiment of
:mod:`sgmlab.experiments`, prints ``result.report()`` and calls ``result.save(folder)``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

from . import _io
from . import catalogue
from .experiments.results import Result, wrote
from .experiments.sampling import GRIDS, PROCESSES, SampleConfig, run_sampling
from .interop.peers import PEERS
from .targets import BUILTIN


def _bar(total: int, enabled: bool, desc: str) -> tuple[Any, Callable[[], None]]:
    """A sampler callback drawing a progress bar on stderr, and its closer."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)

    def step(info: Any) -> None:
        if bar.n >= bar.total:  # the sampler runs in chunks of rows: one more chunk of ``total`` steps
            bar.total += total
            bar.set_description(f"{desc}, chunk {bar.total // total}")
        bar.update(1)

    return step, bar.close


def _say(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress messages on stderr, unless --no-progress."""
    return None if args.no_progress else (lambda m: print(f"  ... {m}", file=sys.stderr))


def _out(args: argparse.Namespace, kind: str, name: str) -> Path:
    """The results folder (default results/<kind>-<name>-<time>), prepared: refused before any work
    when it exists (without --force), is a file or cannot be written."""
    default = Path("results") / f"{kind}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    return _io.prepare_dir(args.out or default, force=args.force)


def _finish(result: Result, out: Path | None) -> Result:
    print(result.report())
    if out is not None:
        print(wrote(out, result.save(out)))
    return result


def _sample(config: SampleConfig, args: argparse.Namespace, kind: str) -> None:
    from . import distributed

    rank, ranks = distributed.init()  # under torchrun: each rank samples its shard, rank 0 measures and writes
    target, _, grid = config.build()  # every value checked before the folder is made
    out = distributed.on_rank_zero(lambda: _out(args, kind, config.target))
    from .defaults import chunk_rows

    mine = distributed.shard_sizes(config.n, ranks)[rank]
    rows = chunk_rows(target.dim, config.batch_size, distributed.device(config.device))
    steps = (grid.shape[0] - 1) * -(-mine // rows)
    _run_with_bar(run_sampling, config, out, steps, config.sampler, args, rank)


def _run_with_bar(run: Callable[..., Any], config: Any, out: Path | None, steps: int, desc: str,
                  args: argparse.Namespace, rank: int) -> None:
    """Run a sampling experiment with a progress bar (rank 0 only); rank 0 reports and saves."""
    callback, close = _bar(steps, not args.no_progress and rank == 0, desc)
    try:
        res = run(config, callback=callback)
    finally:
        close()
    if res is not None:
        _finish(res, out)


def cmd_demo(args: argparse.Namespace) -> None:
    print("sgmlab demo: the paper's DDPM sampler (the exponential integrator Chen et al. analyse) with the "
          "exact score\non a non-log-concave 2-D mixture with unequal mode weights.\n")
    _sample(SampleConfig(target="mixture2d", steps=args.steps, n=args.n, seed=args.seed), args, "demo")


def cmd_sample(args: argparse.Namespace) -> None:
    if args.model is not None:
        return _sample_model(args)
    catalogue.check_default_alone(args.sampler, args.grid, args.T, args.delta)
    if args.data is not None:
        raise ValueError("--data goes with --model (the data a trained model is measured against)")
    if args.no_box:
        raise ValueError("--no-box goes with --model (an exact score has no training data and no box)")
    config = SampleConfig(target=args.target or "mixture2d", dim=args.dim,
                          sampler=args.sampler or "exponential_integrator", grid=args.grid or "uniform",
                          steps=args.steps, T=5.0 if args.T is None else args.T,
                          delta=1e-3 if args.delta is None else args.delta, n=args.n, seed=args.seed,
                          process=args.process or "ou", batch_size=args.batch_size, dtype=args.dtype or "float64",
                          device=args.device, metrics=args.metrics)
    _sample(config, args, "sample")


def _sample_model(args: argparse.Namespace) -> None:
    from .experiments.learned import ModelSampleConfig, run_model_sampling

    given = [f"--{k}" for k in ("target", "process", "dim") if getattr(args, k) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} describe an exact-score run; a model brings its own target and process "
                         "(drop them, or drop --model)")
    from . import distributed

    rank, _ = distributed.init()  # under torchrun: each rank samples its shard, rank 0 measures and writes
    config = ModelSampleConfig(str(args.model), sampler=args.sampler, grid=args.grid, steps=args.steps, T=args.T,
                               delta=args.delta, n=args.n, seed=args.seed, data=args.data, batch_size=args.batch_size,
                               dtype=args.dtype or "float32", device=args.device, box=not args.no_box,
                               metrics=args.metrics, force_plan=args.force)
    out = distributed.on_rank_zero(lambda: _out(args, "sample", Path(args.model).name))
    if not args.no_progress and rank == 0:
        from .experiments.learned import sampling_seconds
        from .experiments.sampling import DTYPES

        secs, chunks, rows = sampling_seconds(args.model, args.steps, args.n, batch_size=args.batch_size,
                                              dtype=DTYPES[config.dtype], device=args.device)
        _say(args)(f"sampling should take about {secs:.{1 if secs < 10 else 0}f} s ({args.steps} network evaluations "
                   f"on {chunks} chunk(s) of {rows} rows, timed on one), the metrics after it")
    _run_with_bar(run_model_sampling, config, out, args.steps, args.sampler or "sampling", args, rank)


def cmd_plan(args: argparse.Namespace) -> None:
    from .experiments.plans import PlanConfig, run_plan

    config = PlanConfig(target=args.target, dim=args.dim, eps=args.eps, delta=args.delta, C=args.C, n_max=args.n_max,
                        seed=args.seed)
    out = _io.prepare_dir(args.out, force=args.force) if args.out else None  # before the long search
    _finish(run_plan(config, progress=_say(args)), out)


def cmd_bound(args: argparse.Namespace) -> None:
    from .experiments import bounds

    if args.model is not None:
        return _bound_model(args)
    config = bounds.BoundConfig(target=args.target or "mixture2d", dim=args.dim, grid=args.grid,
                                steps=tuple(args.steps), T=5.0 if args.T is None else args.T,
                                delta=1e-3 if args.delta is None else args.delta, n=args.n, seed=args.seed,
                                eps_score=args.eps_score, error_shape=args.error_shape, C=args.C, n_paths=args.n_paths)
    config.check()
    out = _out(args, "bound", config.target)
    _finish(bounds.run(config, progress=_say(args)), out)


def _bound_model(args: argparse.Namespace) -> None:
    from .experiments.learned import ModelBoundConfig, model_bound_target, run_model_bound

    given = [flag for flag, on in (("--target", args.target is not None), ("--dim", args.dim is not None),
                                   ("--eps-score", args.eps_score != 0.0), ("--C", args.C != 1.0),
                                   ("--T", args.T is not None), ("--delta", args.delta is not None)) if on]
    if given:
        raise ValueError(f"{', '.join(given)} describe an exact-score bound; a model brings its own score, target and "
                         "trained range (drop them, or drop --model)")
    config = ModelBoundConfig(str(args.model), steps=tuple(args.steps), grid=args.grid, n=args.n,
                              n_paths=args.n_paths, seed=args.seed)
    model_bound_target(args.model)  # refused before the folder is made
    out = _out(args, "bound", Path(args.model).name)
    _finish(run_model_bound(config, progress=_say(args)), out)


def cmd_train(args: argparse.Namespace) -> None:
    from .experiments.learned import DataSpec, checkpoint_step, run_training

    spec = DataSpec(args.data, n=args.n, columns=tuple(args.columns) if args.columns else None, seed=args.seed,
                    delimiter="\t" if args.delimiter == "tab" else args.delimiter,
                    image_shape=tuple(args.image_shape) if args.image_shape else None)
    choices = dict(net=args.net, hidden=args.hidden, depth=args.depth, parametrization=args.parametrization,
                   weighting=args.weighting, time_sampling=args.time_sampling, T=args.T, delta=args.delta,
                   steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                   eval_every=args.eval_every, checkpoint_every=args.eval_every, process=args.process,
                   lr_schedule=args.lr_schedule, clip=args.clip, warmup=args.warmup,
                   reference=args.reference)  # None: the recipe's (or the checkpoint's) value
    bar = None
    if not args.no_progress and _rank() == 0:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, desc="train", unit="step", file=sys.stderr)

    def callback(info: Any) -> None:
        if bar is not None:
            bar.total = info.steps
            bar.n = info.step
            bar.set_postfix(loss=f"{info.loss:.4g}", refresh=False)
            bar.refresh()
        if info.eval_loss is not None:
            (bar.write if bar is not None else print)(f"  step {info.step}: eval loss {info.eval_loss:.5g}")

    out = Path(args.out)
    try:
        res = run_training(spec, choices, out, resume=args.resume, force=args.force, callback=callback,
                           say=bar.write if bar is not None else print)
    except (KeyboardInterrupt, OSError, FloatingPointError) as e:
        if bar is not None:
            bar.close()
        if isinstance(e, FloatingPointError):
            print(f"sgmlab train: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        done = checkpoint_step(out)
        kept = (f"the checkpoint at step {done} in {out} is intact; continue with the same command and --resume"
                if done is not None else f"no checkpoint was complete in {out}")
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"could not write to {out} ({e})"
        print(f"sgmlab train: {why}; {kept}", file=sys.stderr)
        raise SystemExit(130 if isinstance(e, KeyboardInterrupt) else 1) from None
    finally:
        if bar is not None:
            bar.close()
    if _rank() == 0:
        print(res.report())


def _rank() -> int:
    import torch

    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def cmd_compare_cld(args: argparse.Namespace) -> None:
    from .experiments import compare_cld

    config = compare_cld.CompareCLDConfig(dims=tuple(args.dims), nfes=tuple(args.nfes), cond=args.cond, T=args.T,
                                          delta=args.delta, n=args.n, seed=args.seed)
    out = _out(args, "compare-cld", "gaussian")
    _finish(compare_cld.run(config, progress=_say(args)), out)


def cmd_claims(args: argparse.Namespace) -> None:
    from .experiments import claims

    config = claims.ClaimsConfig(quick=args.quick, seed=args.seed)
    out = _out(args, "claims", "paper")
    _finish(claims.run(config, progress=_say(args)), out)


def cmd_bench(args: argparse.Namespace) -> None:
    from .experiments import bench

    if args.suite != "targets":
        return _bench_family(args)
    if args.gaussians is not None or args.mixtures is not None:
        raise ValueError("--gaussians and --mixtures size a random family: use them with --suite heldout or train")
    peers = not args.no_peers
    if args.peers and not peers:
        raise ValueError("--peers names diffusers peers to run; it cannot go with --no-peers")
    if peers:
        _need_diffusers(" or pass --no-peers")
    sizes = [v for v in args.n or [] if isinstance(v, tuple)]
    common = [v for v in args.n or [] if not isinstance(v, tuple)]
    if len(common) > 1:
        raise ValueError(f"--n takes one common sample size and any number of TARGET=N; got {common}")
    config = bench.BenchConfig(targets=tuple(args.targets or bench.TARGETS), budgets=tuple(args.budgets),
                               n=common[0] if common else None, peers=peers, seed=args.seed, n_by_target=tuple(sizes),
                               peer_names=tuple(args.peers) if args.peers else None, device=args.device)
    from . import distributed

    rank, _ = distributed.init()  # under torchrun: samples shard across ranks, rank 0 merges, reports and writes
    out = distributed.on_rank_zero(lambda: _bench_out(args))  # every rank reads the checkpoints it holds
    try:
        res = bench.run(config, progress=_say(args) if rank == 0 else None, checkpoint=out / "partial")
    except KeyboardInterrupt:
        kept = len(list((out / "partial").glob("*.pt")))
        print(f"sgmlab bench: interrupted; {kept} finished methods are kept in {out / 'partial'}; continue with the "
              "same command and --resume", file=sys.stderr)
        raise SystemExit(130) from None
    if rank == 0:
        _finish(res, out)


def _need_diffusers(alternative: str = "") -> None:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise ValueError(f"diffusers is not installed: `pip install sgmlab[bench]`{alternative}") from None


def _bench_family(args: argparse.Namespace) -> None:
    """``sgmlab bench --suite heldout|train``: a random family of targets (sgmlab.experiments.heldout)."""
    from .experiments import heldout

    if args.no_peers:
        raise ValueError("--suite measures against diffusers' schedulers; it cannot go with --no-peers")
    if args.device != "cpu":
        raise ValueError("--device is for the bench's named targets; --suite heldout and train run on the CPU")
    if args.resume:
        raise ValueError("--resume is for --suite targets; a family run is minutes long")
    if args.targets is not None:
        raise ValueError("--targets names the bench's fixed targets; --suite draws its own (--gaussians, --mixtures)")
    _need_diffusers()
    sizes = args.n or []
    if any(isinstance(v, tuple) for v in sizes) or len(sizes) > 1:
        raise ValueError(f"--n with --suite is one sample size for the mixtures; got {sizes}")
    bad = [p for p in args.peers or [] if p not in heldout.PEERS]
    if bad:
        raise ValueError(f"--suite compares with diffusers' deterministic schedulers {list(heldout.PEERS)}; got {bad}")
    modes = args.suite.startswith("modes-")
    config = heldout.HeldoutConfig(family=args.suite, seed=args.seed,
                                   gaussians=(0 if modes else 16) if args.gaussians is None else args.gaussians,
                                   mixtures=(8 if modes else 4) if args.mixtures is None else args.mixtures,
                                   budgets=tuple(args.budgets), n=sizes[0] if sizes else 20_000,
                                   peers=tuple(args.peers) if args.peers else heldout.PEERS)
    out = _out(args, "bench", args.suite)
    _finish(heldout.run(config, progress=_say(args)), out)


def _bench_out(args: argparse.Namespace) -> Path:
    """The bench's results folder. Each finished method is kept in its ``partial/`` folder, so that
    ``--resume`` continues a stopped run there; without it an existing run is refused."""
    import shutil

    if args.resume:
        if args.force:
            raise ValueError("--resume continues the run in --out and --force would discard it; pass one of them")
        if args.out is None:
            raise ValueError("--resume continues a stopped run: give its folder with --out")
        return _io.prepare_dir(args.out, force=True)  # creates it; refuses a file
    if args.out is not None and (args.out / "partial").is_dir() and not args.force:
        raise ValueError(f"--out {args.out} holds a bench run; pass --resume to continue it (same arguments), "
                         "--force to start again, or choose another folder")
    out = _out(args, "bench", "suite")
    if args.force:
        shutil.rmtree(out / "partial", ignore_errors=True)
    return out


def _bench_size(s: str) -> int | tuple[str, int]:
    """``N`` or ``TARGET=N`` for ``sgmlab bench --n``."""
    name, eq, size = s.rpartition("=")
    try:
        value = int(size) if size.strip().lstrip("+").isdigit() else int(float(size)) if float(size).is_integer() else -1
    except ValueError:
        value = -1
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected N or TARGET=N with N an integer >= 1 (1e5 is fine); got {s!r}")
    return (name, value) if eq else value


def cmd_tune(args: argparse.Namespace) -> None:
    from .experiments.plans import TuneConfig, run_tune

    config = TuneConfig(args.nfe, target=args.target, dim=args.dim,
                        model=None if args.model is None else str(args.model),
                        diffusers=None if args.diffusers is None else str(args.diffusers), sampler=args.sampler,
                        n_pilot=args.n_pilot, trials=args.trials, level=args.level, seed=args.seed)
    path = config.plan_path()
    if path is not None:  # a model's plan goes into its folder
        if args.out is not None:
            raise ValueError(f"--out is for --target and --diffusers; a model's plan goes into its folder ({path})")
        if path.exists() and not args.force:
            raise ValueError(f"{path} exists; pass --force to tune again and replace it")
        out = None
    else:
        out = _out(args, "tune", args.target or "diffusers")
    res = run_tune(config, progress=_say(args))
    print(res.report())
    names = res.save(out if out is not None else path.parent)
    if path is not None:
        print(f"  wrote {names[0]}; `sgmlab sample --model {args.model} --steps {args.nfe}` uses it")
    else:
        print(wrote(out, names))


def cmd_targets(args: argparse.Namespace) -> None:
    width = max(map(len, BUILTIN))
    for name, spec in BUILTIN.items():
        print(f"{name:{width}s}  {spec.description}")


def _positive_int(s: str, minimum: int = 1) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {s!r}") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}; got {v}")
    return v


def _seed(s: str) -> int:
    """A seed: an integer in [0, 2^62) (torch's generators take 64-bit seeds; ranks and offsets are added)."""
    try:
        v = int(s)
    except ValueError:
        v = -1
    if not 0 <= v < 2**62:
        raise argparse.ArgumentTypeError(f"expected an integer seed in [0, 2^62); got {s!r}")
    return v


def _nonnegative_int(s: str) -> int:
    return _positive_int(s, minimum=0)


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {s!r}") from None
    if not (v > 0) or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {s}")
    return v


def _output_args(p: argparse.ArgumentParser) -> None:
    """--out, --force and --no-progress, the same for every command that writes a results folder."""
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default results/<command>-<name>-<time>); must be new or empty")
    p.add_argument("--force", action="store_true", help="overwrite the files of an existing results folder "
                                                         "(sample --model: also run a saved plan tuned for another "
                                                         "checkpoint, recorded in the results)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or messages")


def _target_args(p: argparse.ArgumentParser, default: str | None = "mixture2d") -> None:
    p.add_argument("--target", choices=sorted(BUILTIN), default=default, help="built-in target (default mixture2d)")
    p.add_argument("--dim", type=_positive_int, default=None, help="dimension, for targets that take one")


def _common(p: argparse.ArgumentParser, steps: int, n: int) -> None:
    p.add_argument("--steps", type=_positive_int, default=steps, help=f"number of steps N = score evaluations (default {steps})")
    _common_io(p, n)


def _common_io(p: argparse.ArgumentParser, n: int) -> None:
    p.add_argument("--n", type=_positive_int, default=n, help=f"number of samples (default {n})")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the torch.Generator (default 0)")
    _output_args(p)


def _device_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--device", default="cpu",
                   help=f"where {what} run: cpu (default), cuda (under torchrun: each process's own GPU), "
                        "cuda:K; the random draws are the device's own, so a seed gives other samples on a GPU "
                        "than on the CPU (benchmarks/gpu.md: what a GPU measures)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sgmlab", description="Score-based generative models with provable guarantees (Chen et al., ICLR 2023), "
                                   "checked against exact answers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="sample the built-in 2-D mixture with the paper's sampler; print errors, write a figure",
                       description="Sample the built-in non-log-concave 2-D mixture with the paper's DDPM sampler "
                                   "(exponential integrator, uniform grid, T=5, delta=1e-3) and the exact score. "
                                   "Prints the measured error next to the exact answer; writes samples, metrics, "
                                   "config and a figure.")
    _common(p, steps=200, n=10_000)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sample", help="sample a built-in target with exact scores and measure the error",
                       description="Sample a built-in target (see `sgmlab targets`) with the exact score, measure the "
                                   "output against q_delta (exactly for Gaussian targets), and write samples.npy, "
                                   "metrics.json, config.json and samples.png.")
    _target_args(p)
    p.set_defaults(target=None)  # mixture2d unless --model: given with --model, it is refused
    p.add_argument("--sampler", choices=[catalogue.DEFAULT, *catalogue.SAMPLERS, *catalogue.ALIASES], default=None,
                   help="a sampler by the library's name (dpm_solver_pp_3m, unipc_3, probability_flow_heun, "
                        "cld_sscs for CLD models, ...), or `default`: sg.sample's choice for --steps evaluations "
                        "with its own grid, T and delta. Default: exponential_integrator, the paper's; with --model, "
                        "a plan saved by `sgmlab tune --model` for --steps evaluations is used unless --sampler, "
                        "--grid, --T or --delta is given, and otherwise `default` (CLD models: cld_exponential_integrator)")
    p.add_argument("--grid", choices=list(GRIDS), default=None,
                   help="time grid: uniform (the paper's), exponential (geometric), two_phase (Benton et al.), "
                        "log_snr (DPM-Solver), log_snr_focused (denser where trajectories choose a mode), "
                        "karras, vp_linear (DDPM spacing)")
    p.add_argument("--process", choices=list(PROCESSES), default=None, help="forward process (default ou)")
    p.add_argument("--T", type=_positive_float, default=None,
                   help="time horizon T, in the process's clock (default 5, or the model's)")
    p.add_argument("--delta", type=_positive_float, default=None,
                   help="early-stopping time delta > 0 (default 1e-3, or the model's)")
    p.add_argument("--model", type=Path, default=None,
                   help="sample from the trained model in this folder (`sgmlab train`) instead of a target's exact score")
    p.add_argument("--metrics", choices=["none", "fast", "all"], default="fast",
                   help="sample metrics: none; fast (default: exact W2 on 500 points, with its noise floor); all "
                        "(exact W2 on 2000 points, the costly one)")
    p.add_argument("--no-box", action="store_true",
                   help="with --model: do not project the model's denoised estimates onto the box of its training "
                        "data at high noise (signal-to-noise ratio <= 4), which stops a network extrapolating outside "
                        "the data from sending samples far into the tails; models trained before the box have none")
    p.add_argument("--data", default=None,
                   help="with --model: the training data file to measure the samples against (a model folder never "
                        "makes sgmlab read a file outside it on its own; built-in data sets need no --data)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="rows the sampler runs on at a time, which bounds its working memory (default: about 2^22 "
                        "numbers a chunk, 32 MiB in float64; 2^25 on a GPU); deterministic samplers give the same "
                        "output for any value, stochastic ones the same output for the same value")
    p.add_argument("--dtype", choices=["float64", "float32"], default=None,
                   help="the sampler's state: float64 (default for exact scores) or float32 (default for trained "
                        "models, whose networks are float32; half the memory); grids and coefficients stay float64. "
                        "benchmarks/float32.md: what float32 costs against float64 on exact laws")
    _device_arg(p, "the sampler's state, the exact score or the network")
    _common(p, steps=100, n=10_000)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="train a score network by denoising score matching",
                       description="Train a score network on data by denoising score matching. Data: a built-in "
                                   "target (exact samples), 'digits' or 'wine' (scikit-learn's bundled sets), or a "
                                   ".npy/.csv file. The default recipe follows the data: images get the U-Net, "
                                   "trained on the noise MSE at uniform times of the linear VP schedule; tables and "
                                   "vectors the MLP on the paper's objective (the time average of eps_score^2 under "
                                   "the OU process); every option below overrides it (benchmarks/"
                                   "recipe_vs_diffusers.md measures both). Checkpoints (safetensors, written "
                                   "atomically) go to --out; --resume continues exactly, with the checkpoint's "
                                   "settings.")
    p.add_argument("--data", required=True, help="built-in target name, 'digits', 'wine', or a .npy/.csv path")
    p.add_argument("--out", type=Path, required=True, help="folder for config, checkpoint and history")
    p.add_argument("--columns", nargs="+", default=None, help="CSV columns to use, by header name (default all)")
    p.add_argument("--delimiter", choices=[",", ";", "tab"], default=None,
                   help="CSV delimiter (default: detected among , ; and tab; with ; or tab, decimal commas are read)")
    p.add_argument("--image-shape", type=_positive_int, nargs=2, default=None, metavar=("H", "W"),
                   help="the rows are images of H x W pixels (a .npy of shape (N, H, W) is recognised without it): "
                        "images are standardized globally (one mean and scale) and get the U-Net and the image "
                        "recipe; tables are standardized per column and get the MLP")
    p.add_argument("--n", type=_positive_int, default=20_000, help="samples drawn from a built-in target (default 20000)")
    p.add_argument("--net", choices=["mlp", "unet", "unet8"], default=None,
                   help="network (default: unet for images, mlp otherwise; unet8: the 8x8 U-Net of models trained "
                        "before)")
    p.add_argument("--hidden", type=_positive_int, default=None,
                   help="MLP width or U-Net channels (default 128 for mlp, 32 for unet and unet8)")
    p.add_argument("--depth", type=_positive_int, default=None,
                   help="MLP residual blocks, or U-Net blocks per resolution (default 3 for mlp, 1 for unet)")
    p.add_argument("--parametrization", choices=["noise", "score", "data", "v"], default=None,
                   help="what the network predicts (default noise)")
    p.add_argument("--weighting", choices=["a3", "likelihood", "eps", "min-snr", "edm"], default=None,
                   help="a3: the loss estimates the time average of eps_score(t)^2 (default for tables and vectors); "
                        "eps: the mean squared error of the predicted noise (default for images); min-snr: that with "
                        "min(SNR, 5) / SNR; edm: the MSE of v at EDM's log-normal noise levels (with --time-sampling "
                        "log-normal and --parametrization v, EDM's loss); likelihood: beta(t)")
    p.add_argument("--time-sampling", choices=["uniform", "log-uniform", "log-normal"], default=None,
                   help="distribution of training times on [delta, T] (default: uniform for images, log-uniform "
                        "otherwise; benchmarks/recipe_ablation.md measures the others)")
    p.add_argument("--process", choices=["ou", "vp-linear", "vp-cosine", "cld"], default=None,
                   help="ou or vp-*: denoising score matching (times in that process's clock); cld: hybrid score "
                        "matching of the CLD velocity score (default: vp-linear for images, ou otherwise)")
    p.add_argument("--T", type=_positive_float, default=None,
                   help="largest training time, in the process's clock (default: 1 for vp-*, 5 for ou and cld)")
    p.add_argument("--delta", type=_positive_float, default=None, help="smallest training time (default 1e-3)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="optimizer steps (default: 8000 for images, 20000 otherwise; docs/training.md gives measured "
                        "times)")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help="global batch size (default: 128 for images, 256 otherwise)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="Adam learning rate (default: 4e-3 for images, 2e-3 otherwise)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default=None,
                   help="cosine: linear warm-up (--warmup), then cosine decay to 0 (default); constant")
    p.add_argument("--clip", type=_positive_float, default=None,
                   help="clip the gradient norm at this value (default 1)")
    p.add_argument("--warmup", type=_nonnegative_int, default=None,
                   help="warm-up steps of the cosine schedule (default: 5%% of the steps for images; 500 "
                        "otherwise, at most 10%% of the steps)")
    p.add_argument("--reference", type=_nonnegative_int, default=None,
                   help="the stable target field (Xu et al. 2023): the noise target is replaced by its posterior "
                        "average over this many reference rows (the batch, then draws from the data), which lowers "
                        "its variance at high noise; 0: the plain noise target (default 1024; "
                        "benchmarks/recipe_ablation_time.md, benchmarks/recipe_ablation_digits.md)")
    p.add_argument("--eval-every", type=_positive_int, default=None,
                   help="evaluate and checkpoint every so many steps (default 500)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of initialisation, batches, times and noise (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out, exactly")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("plan", help="steps needed for TV <= eps: theorem, certified bound, later rates",
                       description="How many steps does the paper's sampler need for TV(p, q_delta) <= eps on a "
                                   "built-in target? (a) Theorem 2's corollary with constant C (order of magnitude); "
                                   "(b) the certified bound, searched for the uniform and two-phase grids; (c) later "
                                   "analyses' rates. Prints T, h, N and the required L2 score accuracy.")
    _target_args(p)
    p.add_argument("--eps", type=_positive_float, default=0.05, help="TV accuracy to reach, in (0, 1) (default 0.05)")
    p.add_argument("--delta", type=_positive_float, default=1e-3, help="early-stopping time (default 1e-3)")
    p.add_argument("--C", type=_positive_float, default=1.0, help="the theorem's hidden constant (default 1)")
    p.add_argument("--n-max", type=_positive_int, default=None,
                   help="largest N the certified search tries (default 2^20 for Gaussians, 2^12 otherwise)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the Monte-Carlo estimates (default 0)")
    p.add_argument("--out", type=Path, default=None, help="also write plan.json into this new folder")
    p.add_argument("--force", action="store_true", help="overwrite the files of an existing folder")
    p.add_argument("--no-progress", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("bound", help="theorem terms, certified bound and measured error, against step size",
                       description="For the paper's sampler on a built-in target, print side by side Theorem 2's "
                                   "terms, the certified bound and the measured error for each number of steps, and "
                                   "write a log-log figure of error against step size with the three curves.")
    _target_args(p, default=None)
    p.add_argument("--model", type=Path, default=None,
                   help="a model trained on a built-in target (`sgmlab train --data mixture2d`): Theorem 2 with its "
                        "measured score error, beside its samples' error (an ESTIMATE)")
    p.add_argument("--grid", choices=list(GRIDS), default="uniform", help="time grid (default uniform)")
    p.add_argument("--steps", type=_positive_int, nargs="+", default=[10, 20, 50, 100, 200, 500],
                   help="numbers of steps to sweep (default 10 20 50 100 200 500)")
    p.add_argument("--T", type=_positive_float, default=None, help="time horizon (default 5)")
    p.add_argument("--delta", type=_positive_float, default=None, help="early-stopping time (default 1e-3)")
    p.add_argument("--eps-score", type=float, default=0.0, help="L2 size of an added score error (default 0: exact)")
    p.add_argument("--error-shape", choices=["bias", "localized"], default="bias",
                   help="shape of the added error: a global bias, or concentrated on a set of probability 1e-3")
    p.add_argument("--C", type=_positive_float, default=1.0, help="the theorem's hidden constant (default 1)")
    p.add_argument("--n-paths", type=_positive_int, default=1000,
                   help="forward paths a step for the Monte-Carlo path KL (default 1000)")
    _common_io(p, n=10_000)
    p.set_defaults(func=cmd_bound)

    p = sub.add_parser("compare-cld", help="DDPM against CLD at equal score evaluations (claim 5)",
                       description="DDPM's and CLD's exponential integrators (and CLD's splitting sampler) at equal "
                                   "numbers of score evaluations: exact output-law KL and path KL on anisotropic "
                                   "Gaussians of growing d, and binned TV on the 2-D mixture. Writes results.csv "
                                   "and figures.")
    p.add_argument("--dims", type=_positive_int, nargs="+", default=[2, 4, 8, 16, 32, 64], help="dimensions")
    p.add_argument("--nfes", type=_positive_int, nargs="+", default=[10, 20, 50, 100, 200],
                   help="numbers of score evaluations")
    p.add_argument("--cond", type=_positive_float, default=10.0, help="condition number of the Gaussians (default 10)")
    p.add_argument("--T", type=_positive_float, default=5.0, help="time horizon (default 5)")
    p.add_argument("--delta", type=_positive_float, default=1e-3, help="early-stopping time (default 1e-3)")
    p.add_argument("--n", type=_positive_int, default=10_000, help="samples for the mixture (default 10000)")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    _output_args(p)
    p.set_defaults(func=cmd_compare_cld)

    p = sub.add_parser("claims", help="the paper's five claims and its title, measured against exact answers: "
                                      "report.md",
                       description="Run the five claims of Chen et al. (2023) in the abstract's order on instances "
                                   "with a known answer (L2 score accuracy suffices; no functional inequality; "
                                   "polynomial dependence on h, T, eps_score and d; N = L^2 d / eps^2 steps; CLD does "
                                   "not help the analysis), then the title on trained networks (sampling is as easy "
                                   "as learning the score), and write report.md with a verdict per claim, "
                                   "claims.json, a CSV and a figure per claim. --quick runs smaller sizes.")
    p.add_argument("--quick", action="store_true", help="smaller sizes (for tests; the verdicts hold at both)")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    _output_args(p)
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("bench", help="ground-truth benchmark of samplers (sgmlab, the paper's, diffusers')",
                       description="Targets with exact scores x samplers x budgets of score evaluations. Error: exact "
                                   "KL where the output law is Gaussian and known, otherwise the unbiased squared MMD "
                                   "against the target's characteristic function, compared between methods started "
                                   "from the same prior draws (verdict at p = 0.01 per peer); wall time and time in the score. diffusers' schedulers need "
                                   "`pip install sgmlab[bench]`.")
    p.add_argument("--suite", choices=["targets", "heldout", "train", "modes-heldout", "modes-train"], default="targets",
                   help="targets: the fixed targets below (default); heldout: a random family no default was "
                        "chosen on, drawn from --seed (Gaussians by exact KL, mixtures by the exact-law MMD), "
                        "with the fixed default, the tuned plan (sg.tune) and diffusers' deterministic "
                        "schedulers; train: the same for the family the defaults were chosen on; modes-heldout, "
                        "modes-train: multimodal, anisotropic mixtures with small components (mixtures only)")
    p.add_argument("--targets", nargs="+", default=None,
                   help="benchmark targets (default all: gaussian10 gaussian100 mixture2d mixture16 digits)")
    p.add_argument("--gaussians", type=int, default=None, help="--suite: random Gaussians (default 16)")
    p.add_argument("--mixtures", type=int, default=None, help="--suite: random mixtures (default 4)")
    p.add_argument("--budgets", type=_positive_int, nargs="+", default=[10, 20, 50, 100],
                   help="numbers of score evaluations (default 10 20 50 100)")
    p.add_argument("--n", type=_bench_size, nargs="+", default=None, metavar="N|TARGET=N",
                   help="samples for the sample-metric targets: one size for all, and/or TARGET=N for some "
                        "(default 1e6 for mixture2d, 2e5 for mixture16, 5e4 for digits)")
    p.add_argument("--no-peers", action="store_true", help="without diffusers' schedulers")
    p.add_argument("--peers", nargs="+", default=None, metavar="NAME",
                   help=f"only these diffusers schedulers (default all: {' '.join(PEERS)}); verdicts are then "
                        "against these alone")
    p.add_argument("--seed", type=_seed, default=0, help="seed (default 0)")
    _device_arg(p, "the samplers (the metrics are computed on the CPU)")
    p.add_argument("--resume", action="store_true",
                   help="continue a stopped run in --out with the same arguments: the methods it finished "
                        "(kept in --out/partial) are read back, the rest run")
    _output_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tune", help="fit a sampling plan to a score (exact, trained or a diffusers pipeline's) "
                                    "and certify it",
                       description="Choose every time of a deterministic sampler's grid (start, delta, where the "
                                   "steps go, the final denoising step) for a budget of score evaluations, by the "
                                   "distance of its outputs to a many-step reference solution of the same ODE from "
                                   "the same prior draws, over the draws that stay in their mode; print the plan, "
                                   "its certificate on fresh draws (MMD^2 to the reference's law, mode switches, W2 "
                                   "through the coupling) and the tuning cost. --target: a built-in target's exact "
                                   "score (the certificate then bounds W2 to the target); writes plan.json and "
                                   "plan.png to --out. --model: a trained model; the plan is saved in its folder, "
                                   "and `sgmlab sample --model` uses it for that budget. --diffusers: a pipeline "
                                   "saved with save_pretrained; writes plan.json, plan.png and scheduler/ to --out.")
    p.add_argument("--target", choices=sorted(BUILTIN), default=None, help="built-in target (exact score)")
    p.add_argument("--dim", type=_positive_int, default=None, help="dimension, for targets that take one")
    p.add_argument("--model", type=Path, default=None, help="folder of a model trained with `sgmlab train`")
    p.add_argument("--diffusers", type=Path, default=None,
                   help="folder of a diffusers pipeline saved with save_pretrained (a unet and its scheduler): "
                        "writes plan.json and a scheduler/ folder that PlanScheduler.from_pretrained loads")
    p.add_argument("--nfe", type=_positive_int, required=True, help="budget of score evaluations per sample")
    p.add_argument("--sampler", choices=list(catalogue.TUNABLE), default="dpmpp_3m",
                   help="the deterministic sampler to fit the grid for (default dpmpp_3m)")
    p.add_argument("--n-pilot", type=_positive_int, default=512,
                   help="prior draws to tune on; as many fresh ones make the certificate (default 512)")
    p.add_argument("--trials", type=_positive_int, default=240, help="grids the optimiser tries (default 240)")
    p.add_argument("--level", type=float, choices=[0.9, 0.95, 0.99], default=0.95,
                   help="confidence of the certificate (default 0.95)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the pilot draws (default 0)")
    _output_args(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("targets", help="list the built-in targets", description="List the built-in targets.")
    p.set_defaults(func=cmd_targets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:  # the library's word for bad input: one line (other exceptions are bugs: traceback)
        _io.remove_empty_created()  # a failed run leaves no empty folder behind
        if os.environ.get("SGMLAB_TRACEBACK"):
            raise
        print(f"sgmlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BaseException:
        _io.remove_empty_created()
        raise
    finally:
        _leave_process_group()
    _io.CREATED.clear()
    return 0


def _leave_process_group() -> None:
    """Under torchrun: wait for every rank (rank 0 measures and writes after the others are done
    sampling), then leave the group, so that no rank exits while a collective is pending."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.barrier()
        finally:
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
