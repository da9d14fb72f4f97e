"""Command line: ``sgmlab <command>``. Thin: it parses, draws progress, prints and writes files;
the work is in :mod:`sgmlab.experiments`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _io
from .experiments.sampling import GRIDS, PROCESSES, SAMPLERS, SampleConfig, SampleResult, run_sampling
from .targets import BUILTIN


def _progress(total: int, enabled: bool, desc: str) -> tuple[Any, Any]:
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", file=sys.stderr, leave=False)
    return (lambda info: bar.update(1)), bar.close


def _default_out(kind: str, target: str) -> Path:
    return Path("results") / f"{kind}-{target}-{time.strftime('%Y%m%d-%H%M%S')}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _report(res: SampleResult) -> str:
    m = res.metrics
    c = res.config
    lines = [f"{c.sampler} on {c.target} (d={res.samples.shape[1]}), {c.grid} grid, {c.steps} steps, "
             f"T={c.T}, delta={c.delta}, process {c.process}, n={c.n}, seed={c.seed}",
             f"  {m['score_evaluations']} score evaluations, {m['wall_seconds']:.2f} s "
             f"({m['score_seconds']:.2f} s in the score)", f"  reference: {m['reference']}"]
    if "exact" in m:
        lines.append("  exact (output law computed in closed form, no Monte-Carlo error):")
        lines += [f"    {k:32s} {_fmt(v) if not isinstance(v, list) else '[' + ', '.join(map(_fmt, v)) + ']'}"
                  for k, v in m["exact"].items()]
    lines.append(f"  {'sample metric':32s} {'value':>10s} {'noise floor':>12s}")
    for name, d in m["samples"].items():
        lines.append(f"    {name:30s} {d['value']:10.4g} {d['noise_floor']:12.4g}")
        if "weights_measured" in d:
            meas = ", ".join(f"{w:.4f}" for w in d["weights_measured"])
            exact = ", ".join(f"{w:.4f}" for w in d["weights_exact"])
            lines.append(f"      mode weights measured [{meas}]  exact [{exact}]")
    return "\n".join(lines)


def _write(res: SampleResult, out: Path) -> None:
    """Everything is computed (the figure included) before the first file is written."""
    from .plotting import samples_over_density

    c = res.config
    fig = samples_over_density(res.samples, res.reference,
                               f"{c.sampler}, {c.steps} steps, {c.grid} grid, T={c.T}, delta={c.delta}: "
                               f"samples over the exact density of q_delta"
                               + (" (first two coordinates)" if res.samples.shape[1] > 2 else ""))
    _io.write_json(out / "config.json", c.as_dict())
    _io.write_json(out / "metrics.json", res.metrics)
    _io.write_npy(out / "samples.npy", res.samples.cpu().numpy())
    _io.write_figure(out / "samples.png", fig)


def _run(config: SampleConfig, out: Path, force: bool, progress: bool) -> SampleResult:
    config.build()  # every value checked before anything is written
    out = _io.prepare_dir(out, force=force)
    callback, close = _progress(config.steps, progress, config.sampler)
    try:
        res = run_sampling(config, callback=callback)
    finally:
        close()
    _write(res, out)
    print(_report(res))
    print(f"  wrote {out}/config.json, metrics.json, samples.npy, samples.png")
    return res


def cmd_demo(args: argparse.Namespace) -> None:
    config = SampleConfig(target="mixture2d", steps=args.steps, n=args.n, seed=args.seed)
    print("sgmlab demo: the paper's DDPM sampler (exponential integrator, PAPER.md section 2) with the "
          "exact score\non a non-log-concave 2-D mixture with unequal mode weights.\n")
    _run(config, args.out or _default_out("demo", config.target), args.force, not args.no_progress)


def cmd_sample(args: argparse.Namespace) -> None:
    config = SampleConfig(target=args.target, dim=args.dim, sampler=args.sampler, grid=args.grid, steps=args.steps,
                          T=args.T, delta=args.delta, n=args.n, seed=args.seed, process=args.process)
    _run(config, args.out or _default_out("sample", config.target), args.force, not args.no_progress)


def cmd_targets(args: argparse.Namespace) -> None:
    width = max(map(len, BUILTIN))
    for name, spec in BUILTIN.items():
        print(f"{name:{width}s}  {spec.description}")


def _positive_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {v}")
    return v


def _positive_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {s!r}") from None
    if not (v > 0) or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0; got {s}")
    return v


def _common(p: argparse.ArgumentParser, steps: int, n: int) -> None:
    p.add_argument("--steps", type=_positive_int, default=steps, help=f"number of steps N = score evaluations (default {steps})")
    p.add_argument("--n", type=_positive_int, default=n, help=f"number of samples (default {n})")
    p.add_argument("--seed", type=int, default=0, help="seed of the torch.Generator (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default results/<command>-<target>-<time>); must be new or empty")
    p.add_argument("--force", action="store_true", help="overwrite the files of an existing results folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    p.add_argument("--target", choices=sorted(BUILTIN), default="mixture2d", help="built-in target (default mixture2d)")
    p.add_argument("--dim", type=_positive_int, default=None, help="dimension, for targets that take one")
    p.add_argument("--sampler", choices=list(SAMPLERS), default="exponential_integrator",
                   help="reverse-time sampler (default exponential_integrator, the paper's)")
    p.add_argument("--grid", choices=list(GRIDS), default="uniform",
                   help="time grid: uniform (the paper's), exponential (geometric), two_phase (Benton et al.)")
    p.add_argument("--process", choices=list(PROCESSES), default="ou", help="forward process (default ou)")
    p.add_argument("--T", type=_positive_float, default=5.0, help="time horizon T, in the process's clock (default 5)")
    p.add_argument("--delta", type=_positive_float, default=1e-3, help="early-stopping time delta > 0 (default 1e-3)")
    _common(p, steps=100, n=10_000)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("targets", help="list the built-in targets", description="List the built-in targets.")
    p.set_defaults(func=cmd_targets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ValueError, TypeError) as e:
        print(f"sgmlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
