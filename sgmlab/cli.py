"""Command line: ``sgmlab <command>``. Thin: it parses, draws progress, prints and writes files;
the work is in :mod:`sgmlab.experiments`."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _io
from . import catalogue
from .experiments.sampling import GRIDS, PROCESSES, SampleConfig, SampleResult, run_sampling
from .interop.peers import PEERS
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
    lines.append("  noise floor: the metric's mean magnitude over 4 exact samples of the same size (mode_tv: its "
                 "expected value)")
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
    print("sgmlab demo: the paper's DDPM sampler (the exponential integrator Chen et al. analyse) with the "
          "exact score\non a non-log-concave 2-D mixture with unequal mode weights.\n")
    _run(config, args.out or _default_out("demo", config.target), args.force, not args.no_progress)


def cmd_sample(args: argparse.Namespace) -> None:
    if args.sampler == catalogue.DEFAULT:
        given = [f"--{k}" for k in ("grid", "T", "delta") if getattr(args, k) is not None]
        if given:
            raise ValueError(f"--sampler default brings its own grid, T and delta; drop {', '.join(given)}")
    if args.model is not None:
        return _sample_model(args)
    if args.data is not None:
        raise ValueError("--data goes with --model (the data a trained model is measured against)")
    config = SampleConfig(target=args.target or "mixture2d", dim=args.dim, sampler=args.sampler or "exponential_integrator",
                          grid=args.grid or "uniform", steps=args.steps,
                          T=5.0 if args.T is None else args.T, delta=1e-3 if args.delta is None else args.delta,
                          n=args.n, seed=args.seed, process=args.process or "ou")
    _run(config, args.out or _default_out("sample", config.target), args.force, not args.no_progress)


def cmd_plan(args: argparse.Namespace) -> None:
    import torch

    from . import theory
    from .targets import builtin

    from . import _checks

    target = builtin(args.target, args.dim)
    _checks.real("eps", args.eps, low=0.0, high=1.0, low_open=True, high_open=True)
    if args.out:
        _io.prepare_dir(args.out, force=args.force)  # refuse an existing result before the long search
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    p = theory.plan(target, args.eps, delta=args.delta, C=args.C, N_max=args.n_max,
                    generator=torch.Generator().manual_seed(args.seed), progress=say)
    c = p.constants
    print(f"plan for TV(p, q_delta) <= {p.eps} on {args.target} (d={c.d}), delta={p.delta}")
    print(f"  constants of q_delta: m2={c.m2:.4g}, KL(q||N(0,I))={c.kl:.4g} (+-{c.kl_stderr:.2g}), "
          f"L={c.L:.4g} [{c.L_method.split(':')[0]}]")
    t = p.theorem
    print(f"  (a) Theorem 2, C={args.C} ({t.kind.split(':')[0]}):")
    print(f"      T={t.T:.3g}  paper h=eps^2/(L^2 d)={t.h_paper:.3g} N={t.N_paper:,}  |  "
          f"clean h=eps^2/(L^2 d T)={t.h_clean:.3g} N={t.N_clean:,}  |  eps_score <= {t.eps_score:.3g}")
    print("  (b) certified bound (data processing + Pinsker + Girsanov, evaluated; rigorous unless marked):")
    for name, cp in p.certified.items():
        more = "" if cp.reached else f"  NOT reached by N_max: bound {cp.bound.tv_bound:.3g} > eps/2"
        need = f"{cp.eps_score:.3g}" if cp.reached else "n/a"
        print(f"      {name:10s} T={cp.T:.3g}  N={cp.N:,}  max h={cp.max_step:.3g}  eps_score <= {need}  "
              f"(bound {cp.bound.tv_bound:.3g}: init {cp.bound.init_tv:.2g} + sqrt(KL/2) {cp.bound.girsanov_tv:.3g})"
              + ("" if cp.bound.kind == theory.RIGOROUS else f" [{cp.bound.kind.split(':')[0]}]") + more)
    r = p.later
    print("  (c) later rates (orders of magnitude; logs and constants dropped in all four):")
    print(f"      this paper L^2 d/eps^2={r.this_paper:.3g}  Benton et al. d/eps^2={r.benton:.3g}  "
          f"Chen et al. ODE L^2 sqrt(d)/eps={r.chen_ode:.3g}  Li-Yan d/eps={r.li_yan:.3g}")
    print(f"      with their stated logs: Benton d log^2(1/delta)/eps^2={r.benton_logs:.3g}  "
          f"Li-Yan N with d log^3 N/N <= eps={r.li_yan_logs:,}")
    if args.out:
        out = Path(args.out)
        _io.write_json(out / "plan.json", {
            "eps": p.eps, "delta": p.delta, "target": args.target, "constants": vars(c),
            "theorem": {k: v for k, v in vars(t).items() if not k.startswith("bound")},
            "certified": {k: {"T": v.T, "N": v.N, "max_step": v.max_step, "eps_score": v.eps_score,
                              "tv_bound": v.bound.tv_bound, "reached": v.reached} for k, v in p.certified.items()},
            "later": vars(r)})
        print(f"  wrote {out}/plan.json")


def cmd_bound(args: argparse.Namespace) -> None:
    from .experiments.bounds import BoundConfig, bounds_figure, run_bounds

    config = BoundConfig(target=args.target, dim=args.dim, grid=args.grid, steps=tuple(args.steps), T=args.T,
                         delta=args.delta, n=args.n, seed=args.seed, eps_score=args.eps_score,
                         error_shape=args.error_shape, C=args.C, n_paths=args.n_paths)
    config.check()
    out = _io.prepare_dir(args.out or _default_out("bound", config.target), force=args.force)
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    consts, rows = run_bounds(config, progress=say)
    print(f"exponential integrator on {config.target} (d={consts.d}), {config.grid} grid, T={config.T}, "
          f"delta={config.delta}, eps_score={config.eps_score} ({config.error_shape})")
    print(f"  constants of q_delta: m2={consts.m2:.4g}, KL={consts.kl:.4g}, L={consts.L:.4g} "
          f"[{consts.L_method.split(':')[0]}]")
    print(f"  {'steps':>6s} {'max h':>9s} | {'theorem (C=' + str(config.C) + ')':>15s} {'init':>8s} {'disc':>8s} "
          f"{'score':>8s} | {'certified':>9s} {'init':>8s} {'path KL':>9s} | {'measured':>9s} {'+-':>8s}")
    for r in rows:
        t, c = r.theorem, r.certified
        print(f"  {r.steps:6d} {r.max_step:9.3g} | {t.total:15.4g} {t.init:8.3g} {t.discretisation:8.3g} "
              f"{t.score:8.3g} | {c.tv_bound:9.4g} {c.init_tv:8.2g} {c.path_kl:9.4g} | {r.measured:9.4g} "
              f"{r.measured_error:8.2g}")
    print(f"  measured: {rows[0].measured_name}; certified: {rows[0].certified.method} [{rows[0].certified.kind}]")
    fig = bounds_figure(config, rows)
    _io.write_json(out / "config.json", config.as_dict())
    _io.write_json(out / "bounds.json", {"constants": vars(consts), "rows": [r.as_dict() for r in rows]})
    _io.write_figure(out / "bounds.png", fig)
    print(f"  wrote {out}/config.json, bounds.json, bounds.png")


def _check_model_dir(model: Path) -> None:
    if not (Path(model) / "checkpoint.safetensors").is_file():
        raise ValueError(f"--model {model}: no checkpoint.safetensors there (train one with `sgmlab train`)")


def _sample_model(args: argparse.Namespace) -> None:
    from .experiments.learned import sample_model
    from .plotting import image_grid, samples_over_density, samples_vs_data, score_error_profile

    given = [f"--{k}" for k in ("target", "process", "dim") if getattr(args, k) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} describe an exact-score run; a model brings its own target and process "
                         "(drop them, or drop --model)")
    _check_model_dir(args.model)
    from .experiments.learned import plan_path
    from .tuning import TunedPlan

    plan = None
    if args.sampler is None and args.grid is None and args.T is None and args.delta is None \
            and plan_path(args.model, args.steps).is_file():
        try:
            plan = TunedPlan.load(plan_path(args.model, args.steps))
        except ValueError as e:
            raise ValueError(f"{e}; re-tune with `sgmlab tune --model {args.model} --nfe {args.steps} --force`, "
                             "or pass --sampler to sample without a plan") from None
    if args.sampler is None:  # sg.sample's plan for the budget, unless a grid, T or delta asks for the paper's
        args.sampler = "exponential_integrator" if (args.grid or args.T or args.delta) else catalogue.DEFAULT
    if args.sampler == catalogue.DEFAULT and _checkpoint_process(args.model) == "cld":
        args.sampler = "exponential_integrator"  # a CLD model: CLD's exponential integrator, as before
    args.grid = args.grid or "uniform"
    out = _io.prepare_dir(args.out or _default_out("sample", Path(args.model).name), force=args.force)
    callback, close = _progress(args.steps, not args.no_progress, args.sampler)
    try:
        x, m, (data, profile, ref) = sample_model(args.model, sampler=args.sampler, grid=args.grid, steps=args.steps,
                                             T=args.T, delta=args.delta, n=args.n, seed=args.seed, callback=callback,
                                             plan=plan, data=args.data)
    finally:
        close()
    if args.sampler == catalogue.DEFAULT:
        args.grid = "its own"
    if plan is not None:
        args.sampler, args.grid = m["sampler"], "tuned"
        print(f"using the tuned plan {plan_path(args.model, args.steps)} (`sgmlab tune --model`; pass --sampler "
              f"or --grid to sample without it): W2(plan, reference) <= {plan.certificate.w2_upper:.3g} at "
              f"confidence {plan.certificate.level}")
    print(f"{args.sampler} from the model in {args.model}, {args.grid} grid, {args.steps} steps, T={m['T']:.4g}, "
          f"delta={m['delta']:.4g}, n={args.n}")
    if "data" in m:
        print(f"  training data {m['data']}")
    for w in m.get("warnings", []):
        print(f"  warning: {w}")
    figs = {}
    if data is not None and data.image_shape is not None:
        figs["samples.png"] = image_grid(x, data.image_shape, f"{args.sampler}, {args.steps} steps: generated digits")
    else:
        if ref is not None:
            figs["samples.png"] = samples_over_density(x, ref, f"{args.sampler}, {args.steps} steps, learned score: "
                                                       "samples over the exact density of q_delta")
        else:
            figs["samples.png"] = samples_vs_data(x, None if data is None else data.x,
                                                  f"{args.sampler}, {args.steps} steps, learned score")
    if profile is not None:
        figs["score_error.png"] = score_error_profile(profile.times, profile.eps2, profile.stderr,
                                                      f"eps_score(t)^2 of the model in {args.model}")
        print(f"  score error: time average of eps_score(t)^2 = {profile.time_average:.4g} "
              f"+- {profile.time_average_stderr:.2g} (standardized coordinates)")
    for name, d in m.get("samples", {}).items():
        if isinstance(d, dict):
            spread = f" +- {d['noise_floor_spread']:.2g}" if "noise_floor_spread" in d else ""
            print(f"  {name:24s} {d['value']:10.4g}  (noise floor {d['noise_floor']:.3g}{spread})")
            if "weights_measured" in d:
                print(f"    mode weights measured {[round(w, 4) for w in d['weights_measured']]}  "
                      f"exact {[round(w, 4) for w in d['weights_exact']]}")
        else:
            print(f"  {name:24s} {d:10.4g}")
    for k, v in m.get("digits", {}).items():
        print(f"  {k:48s} {[round(u, 3) for u in v] if isinstance(v, list) else round(v, 4)}")
    _io.write_json(out / "config.json", {k: m[k] for k in ("model", "sampler", "grid", "steps", "T", "delta", "n", "seed")})
    _io.write_json(out / "metrics.json", m)
    _io.write_npy(out / "samples.npy", x.cpu().numpy())
    for name, fig in figs.items():
        _io.write_figure(out / name, fig)
    print(f"  wrote {out}/config.json, metrics.json, samples.npy, {', '.join(figs)}")


def cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from .experiments.learned import DataSpec
    from .learn import TrainConfig, train
    from .learn.train import init_distributed

    init_distributed()  # under torchrun

    spec = DataSpec(args.data, n=args.n, columns=tuple(args.columns) if args.columns else None, seed=args.seed,
                    delimiter="\t" if args.delimiter == "tab" else args.delimiter)
    data = spec.load()
    config = TrainConfig(net=args.net or ("unet8" if data.image_shape else "mlp"),
                         hidden=args.hidden or (32 if data.image_shape else 128), depth=args.depth,
                         parametrization=args.parametrization, weighting=args.weighting,
                         time_sampling=args.time_sampling, T=args.T, delta=args.delta, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, seed=args.seed, standardize=data.standardize,
                         eval_every=args.eval_every, checkpoint_every=args.eval_every, process=args.process)
    out = Path(args.out)
    import torch

    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    if args.resume:
        if args.force:
            raise ValueError("--resume continues the run in --out and --force would discard it; pass one of them")
        found = _checkpoint_step(out)
        if found is None:
            raise ValueError(f"--resume: no checkpoint in {out}")
        if rank == 0:
            print(f"resuming from the checkpoint at step {found} in {out}")
    elif rank == 0:
        _io.prepare_dir(out, force=args.force)
        for old in [out / "checkpoint.safetensors", *out.glob("plan-nfe*.json")]:  # --force: another model now
            old.unlink(missing_ok=True)
        _io.write_json(out / "config.json", {"train": asdict(config), "data": spec.as_dict()})
        _io.write_json(out / "data.json", spec.as_dict())
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        args.no_progress = args.no_progress or rank != 0
    if rank == 0:
        print(f"training on {data.name}: {data.x.shape[0]} rows, d={data.x.shape[1]}; {config.net}, {config.steps} steps, "
          f"batch {config.batch_size}; checkpoints in {out}")
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, desc="train", unit="step", file=sys.stderr)

    def callback(info: Any) -> None:
        if bar is not None:
            bar.n = info.step
            bar.set_postfix(loss=f"{info.loss:.4g}", refresh=False)
            bar.refresh()
        if info.eval_loss is not None:
            msg = f"  step {info.step}: eval loss {info.eval_loss:.5g}"
            (bar.write if bar is not None else print)(msg)

    try:
        res = train(data.x, config, out=out, resume=args.resume, callback=callback)
    except (KeyboardInterrupt, OSError, FloatingPointError) as e:
        if bar is not None:
            bar.close()
        done = _checkpoint_step(out)
        if isinstance(e, FloatingPointError):
            print(f"sgmlab train: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        kept = (f"the checkpoint at step {done} in {out} is intact; continue with the same command and --resume"
                if done is not None else f"no checkpoint was complete in {out}")
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else f"could not write to {out} ({e})"
        print(f"sgmlab train: {why}; {kept}", file=sys.stderr)
        raise SystemExit(130 if isinstance(e, KeyboardInterrupt) else 1) from None
    finally:
        if bar is not None:
            bar.close()
    if rank == 0:
        _io.write_json(out / "config.json", {"train": asdict(config), "data": spec.as_dict(),
                                             "steps_done": config.steps})  # the truth after --resume too
        print(f"  done: final eval loss {res.history[-1]['eval_loss']:.5g}; sample with "
              f"`sgmlab sample --model {out}`")


def _checkpoint_process(folder: Path) -> str:
    """The process a trained model was trained with (its metadata only; loading checks the rest)."""
    import json

    from .learn.train import read_metadata

    return json.loads(read_metadata(folder)["config"])["process"]


def _checkpoint_step(folder: Path) -> int | None:
    """The step of the checkpoint in ``folder``, or None when there is none."""
    from .learn.train import read_metadata

    if not (Path(folder) / "checkpoint.safetensors").is_file():
        return None
    return int(read_metadata(folder)["step"])


def cmd_compare_cld(args: argparse.Namespace) -> None:
    from .experiments.compare_cld import CompareCLDConfig, compare_cld, compare_figures

    config = CompareCLDConfig(dims=tuple(args.dims), nfes=tuple(args.nfes), cond=args.cond, T=args.T,
                              delta=args.delta, n=args.n, seed=args.seed)
    out = _io.prepare_dir(args.out or _default_out("compare-cld", "gaussian"), force=args.force)
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    rows = compare_cld(config, progress=say)
    print("DDPM (exponential integrator) against CLD (exponential integrator, splitting) at equal score evaluations")
    for metric, title in (("kl_to_q", "KL(output x-law || q), exact"), ("path_kl", "path KL (Girsanov)")):
        print(f"  gaussian targets, {title}; rows d, columns nfe = {list(config.nfes)}")
        for method in ("ddpm", "cld", "cld_sscs"):
            for d in config.dims:
                vals = [r["value"] for r in rows if r["metric"] == metric and r["method"] == method and r["d"] == d
                        and r["target"] == "gaussian"]
                if vals:
                    print(f"    {method:9s} d={d:<4d} " + " ".join(f"{v:10.3g}" for v in vals))
    print(f"  mixture2d, binned TV (noise floor in brackets); columns nfe = {list(config.nfes)}")
    for method in ("ddpm", "cld", "cld_sscs"):
        vals = [(r["value"], r["noise_floor"]) for r in rows if r["target"] == "mixture2d"
                and r["metric"] == "tv_histogram" and r["method"] == method]
        print(f"    {method:9s} " + " ".join(f"{v:7.3f} ({f:.3f})" for v, f in vals))
    def ratio(metric: str) -> float:
        pairs = [(r["value"], q["value"]) for r in rows for q in rows if r["target"] == q["target"] == "gaussian"
                 and r["metric"] == q["metric"] == metric and r["method"] == "cld" and q["method"] == "ddpm"
                 and (r["d"], r["nfe"]) == (q["d"], q["nfe"]) and q["value"] > 0]
        return float(sorted(a / b for a, b in pairs)[len(pairs) // 2]) if pairs else math.nan

    print(f"  What the paper's claim is about: the path KL its analysis bounds. There CLD's is {ratio('path_kl'):.3g} "
          "times DDPM's (median over the table), growing as fast in d: the analysis gives CLD no better dimension "
          f"dependence. The exact output KL is another quantity: there CLD's is {ratio('kl_to_q'):.3g} times DDPM's "
          "on these Gaussians, which the claim does not address (docs/theory.md, claim 5).")
    figs = compare_figures(rows, config)
    _io.write_json(out / "config.json", config.as_dict())
    _io.write_csv(out / "results.csv", rows)
    for name, fig in figs.items():
        _io.write_figure(out / name, fig)
    print(f"  wrote {out}/config.json, results.csv, {', '.join(figs)}")


def cmd_claims(args: argparse.Namespace) -> None:
    from .experiments.claims import ClaimsConfig, report, run_claims

    config = ClaimsConfig(quick=args.quick, seed=args.seed)
    out = _io.prepare_dir(args.out or _default_out("claims", "paper"), force=args.force)
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    results = run_claims(config, progress=say)
    for r in results:
        print(f"claim {r.number}: {r.title}")
        for m in r.measured:
            print(f"  - {m}")
        print(f"  Verdict: {r.verdict}")
    for r in results:
        _io.write_csv(out / f"claim{r.number}.csv", r.rows)
        _io.write_figure(out / f"claim{r.number}.png", r.figure)
    _io.write_json(out / "claims.json", {"config": config.as_dict(), "claims": [r.as_dict() for r in results]})
    _io.write_text(out / "report.md", report(results, config))
    print(f"  wrote {out}/report.md, claims.json, claim1-5.csv, claim1-5.png")


def cmd_bench(args: argparse.Namespace) -> None:
    from .experiments.bench import TARGETS, BenchConfig, bench_figures, run_bench, summary

    if args.suite != "targets":
        return _bench_family(args)
    if args.gaussians is not None or args.mixtures is not None:
        raise ValueError("--gaussians and --mixtures size a random family: use them with --suite heldout or train")
    peers = not args.no_peers
    if args.peers and not peers:
        raise ValueError("--peers names diffusers peers to run; it cannot go with --no-peers")
    if peers:
        try:
            import diffusers  # noqa: F401
        except ImportError:
            raise ValueError("diffusers is not installed: `pip install sgmlab[bench]`, or pass --no-peers") from None
    sizes = [v for v in args.n or [] if isinstance(v, tuple)]
    common = [v for v in args.n or [] if not isinstance(v, tuple)]
    if len(common) > 1:
        raise ValueError(f"--n takes one common sample size and any number of TARGET=N; got {common}")
    config = BenchConfig(targets=tuple(args.targets or TARGETS), budgets=tuple(args.budgets), n=common[0] if common else None,
                         peers=peers, seed=args.seed, n_by_target=tuple(sizes),
                         peer_names=tuple(args.peers) if args.peers else None)
    out = _bench_out(args)
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    try:
        rows = run_bench(config, progress=say, checkpoint=out / "partial")
    except KeyboardInterrupt:
        kept = len(list((out / "partial").glob("*.pt")))
        print(f"sgmlab bench: interrupted; {kept} finished methods are kept in {out / 'partial'}; continue with the "
              "same command and --resume", file=sys.stderr)
        raise SystemExit(130) from None
    table = summary(rows)
    print(f"  {'target':12s} {'nfe':>4s} {'metric':16s} {'sgmlab':>10s} {'paper':>10s} {'best diffusers':>26s} "
          f"{'floor':>8s} {'min z':>6s} win")
    for r in table:
        peer = f"{r['best_peer_value']:.3g} ({r['best_peer'].split(':')[-1]})" if r["best_peer"] else "-"
        print(f"  {r['target']:12s} {r['nfe']:4d} {r['metric']:16s} {r['sgmlab']:10.3g} {r['paper']:10.3g} "
              f"{peer:>26s} {r['noise_floor']:8.2g} {r['min_z']:6.3g} {r['sgmlab_wins']}")
    atoms = [r for r in table if r["tv_wins"]]
    if atoms:
        print("\n  TV to the data, outputs within a rounding tolerance of a data point counted as it (bounds at p = 0.01)")
        print(f"  {'target':12s} {'nfe':>4s} {'sgmlab':>17s} {'peers >=':>9s} win")
        for r in atoms:
            print(f"  {r['target']:12s} {r['nfe']:4d} [{r['sgmlab_tv_lower']:.3g}, {r['sgmlab_tv_upper']:.3g}]".ljust(37)
                  + f" {r['peers_tv_lower']:9.3g} {r['tv_wins']}")
    _write_bench(out, config, rows, table, bench_figures(rows))


def _write_bench(out: Path, config: Any, rows: list[dict[str, Any]], table: list[dict[str, Any]],
                 figs: dict[str, Any]) -> None:
    _io.write_csv(out / "results.csv", rows)
    _io.write_csv(out / "summary.csv", table)
    _io.write_json(out / "config.json", config.as_dict())
    for name, fig in figs.items():
        _io.write_figure(out / name, fig)
    print(f"  wrote {out}/config.json, results.csv, summary.csv, {', '.join(figs)}")


def _bench_family(args: argparse.Namespace) -> None:
    """``sgmlab bench --suite heldout|train``: a random family of targets (sgmlab.experiments.heldout)."""
    from .experiments.heldout import PEERS as DETERMINISTIC
    from .experiments.heldout import HeldoutConfig, heldout_figures, heldout_summary, run_heldout

    if args.no_peers:
        raise ValueError("--suite measures against diffusers' schedulers; it cannot go with --no-peers")
    if args.resume:
        raise ValueError("--resume is for --suite targets; a family run is minutes long")
    if args.targets is not None:
        raise ValueError("--targets names the bench's fixed targets; --suite draws its own (--gaussians, --mixtures)")
    try:
        import diffusers  # noqa: F401
    except ImportError:
        raise ValueError("diffusers is not installed: `pip install sgmlab[bench]`") from None
    sizes = args.n or []
    if any(isinstance(v, tuple) for v in sizes) or len(sizes) > 1:
        raise ValueError(f"--n with --suite is one sample size for the mixtures; got {sizes}")
    bad = [p for p in args.peers or [] if p not in DETERMINISTIC]
    if bad:
        raise ValueError(f"--suite compares with diffusers' deterministic schedulers {list(DETERMINISTIC)}; got {bad}")
    config = HeldoutConfig(family=args.suite, seed=args.seed,
                           gaussians=16 if args.gaussians is None else args.gaussians,
                           mixtures=4 if args.mixtures is None else args.mixtures,
                           budgets=tuple(args.budgets), n=sizes[0] if sizes else 20_000,
                           peers=tuple(args.peers) if args.peers else DETERMINISTIC)
    out = _io.prepare_dir(args.out or _default_out("bench", args.suite), force=args.force)
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    rows = run_heldout(config, progress=say)
    table = heldout_summary(rows)
    print(f"{args.suite} family, seed {args.seed}: {config.gaussians} Gaussians (exact KL), {config.mixtures} mixtures "
          f"(exact-law MMD^2, n = {config.n}); ratio = error / best of diffusers' {', '.join(config.peers)}")
    print(f"  {'kind':9s} {'nfe':>4s} {'plan':7s} {'wins':>7s} {'losses':>6s} {'median ratio':>13s} "
          f"{'worst ratio':>12s} {'tuning s':>9s}")
    for r in table:
        plan = {"sgmlab": "default"}.get(r["method"], r["method"])
        tune_s = f"{r['median_tune_seconds']:9.2g}" if plan == "tuned" else f"{'':9s}"
        print(f"  {r['kind']:9s} {r['nfe']:4d} {plan:7s} {r['wins']:3d}/{r['cells']:<3d} {r['losses']:6d} "
              f"{r['median_ratio']:13.3g} {r['worst_ratio']:12.3g} {tune_s}")
    if config.mixtures:
        print("  mixtures: a win is a coupled z > 2.33 against every peer; ratios at the noise floor are 1 (a tie)")
    _write_bench(out, config, rows, table, heldout_figures(rows))


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
    out = _io.prepare_dir(args.out or _default_out("bench", "suite"), force=args.force)
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
    import torch

    from .plotting import plan_figure
    from .tuning import TUNABLE, tune

    if (args.model is None) == (args.target is None):
        raise ValueError("give --target NAME (an exact score) or --model DIR (a trained model), one of them")
    say = (lambda m: print(f"  ... {m}", file=sys.stderr)) if not args.no_progress else None
    if args.model is not None:
        from .experiments.learned import plan_path, tune_model

        if args.dim is not None:
            raise ValueError("--dim is for --target; a model's dimension is its own")
        _check_model_dir(args.model)
        path = plan_path(args.model, args.nfe)
        if path.exists() and not args.force:
            raise ValueError(f"{path} exists; pass --force to tune again and replace it")
        tp = tune_model(args.model, args.nfe, sampler=args.sampler, n_pilot=args.n_pilot, max_trials=args.trials,
                        level=args.level, seed=args.seed, progress=say)
        print(f"plan for {args.nfe} score evaluations of the model in {args.model}")
        print(tp.describe())
        tp.save(path)
        print(f"  wrote {path}; `sgmlab sample --model {args.model} --steps {args.nfe}` uses it")
        return
    from .scores import exact
    from .targets import builtin

    target = builtin(args.target, args.dim)
    out = _io.prepare_dir(args.out or _default_out("tune", args.target), force=args.force)
    tp = tune(exact(target), target.dim, args.nfe, sampler=TUNABLE[args.sampler], n_pilot=args.n_pilot,
              max_trials=args.trials, level=args.level, target=target,
              generator=torch.Generator().manual_seed(args.seed), progress=say)
    print(f"plan for {args.nfe} score evaluations on {args.target} (d={target.dim}), exact score")
    print(tp.describe())
    fig = plan_figure(tp, f"{args.target}, {args.nfe} evaluations")
    tp.save(out / "plan.json")
    _io.write_figure(out / "plan.png", fig)
    print(f"  wrote {out}/plan.json, plan.png")


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


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help="results folder (default results/<command>-<time>)")
    p.add_argument("--force", action="store_true", help="overwrite an existing results folder")
    p.add_argument("--no-progress", action="store_true", help="no progress messages")


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=sorted(BUILTIN), default="mixture2d", help="built-in target (default mixture2d)")
    p.add_argument("--dim", type=_positive_int, default=None, help="dimension, for targets that take one")


def _common(p: argparse.ArgumentParser, steps: int, n: int) -> None:
    p.add_argument("--steps", type=_positive_int, default=steps, help=f"number of steps N = score evaluations (default {steps})")
    _common_io(p, n)


def _common_io(p: argparse.ArgumentParser, n: int) -> None:
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
    p.add_argument("--data", default=None,
                   help="with --model: the training data file to measure the samples against (a model folder never "
                        "makes sgmlab read a file outside it on its own; built-in data sets need no --data)")
    _common(p, steps=100, n=10_000)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("train", help="train a score network by denoising score matching",
                       description="Train a score network on data by denoising score matching under the OU "
                                   "process. Data: a built-in target (exact samples), 'digits' or 'wine' "
                                   "(scikit-learn's bundled sets), or a .npy/.csv file. Checkpoints "
                                   "(safetensors, written atomically) go to --out; --resume continues exactly.")
    p.add_argument("--data", required=True, help="built-in target name, 'digits', 'wine', or a .npy/.csv path")
    p.add_argument("--out", type=Path, required=True, help="folder for config, checkpoint and history")
    p.add_argument("--columns", nargs="+", default=None, help="CSV columns to use, by header name (default all)")
    p.add_argument("--delimiter", choices=[",", ";", "tab"], default=None,
                   help="CSV delimiter (default: detected among , ; and tab; with ; or tab, decimal commas are read)")
    p.add_argument("--n", type=_positive_int, default=20_000, help="samples drawn from a built-in target (default 20000)")
    p.add_argument("--net", choices=["mlp", "unet8"], default=None, help="network (default mlp; unet8 for images)")
    p.add_argument("--hidden", type=_positive_int, default=None, help="MLP width or U-Net channels (default 128 / 32)")
    p.add_argument("--depth", type=_positive_int, default=3, help="MLP residual blocks (default 3)")
    p.add_argument("--parametrization", choices=["noise", "score", "data"], default="noise",
                   help="what the network predicts (default noise)")
    p.add_argument("--weighting", choices=["a3", "likelihood"], default="a3",
                   help="a3: the loss estimates the time average of eps_score(t)^2 (default); likelihood: beta(t)")
    p.add_argument("--time-sampling", choices=["uniform", "log-uniform"], default="log-uniform",
                   help="distribution of training times on [delta, T] (default log-uniform)")
    p.add_argument("--process", choices=["ou", "vp-linear", "vp-cosine", "cld"], default="ou",
                   help="ou or vp-*: denoising score matching (times in that process's clock); "
                        "cld: hybrid score matching of the CLD velocity score")
    p.add_argument("--T", type=_positive_float, default=5.0, help="largest training time (default 5)")
    p.add_argument("--delta", type=_positive_float, default=1e-3, help="smallest training time (default 1e-3)")
    p.add_argument("--steps", type=_positive_int, default=4000, help="optimizer steps (default 4000)")
    p.add_argument("--batch-size", type=_positive_int, default=512, help="global batch size (default 512)")
    p.add_argument("--lr", type=_positive_float, default=2e-3, help="Adam learning rate (default 2e-3)")
    p.add_argument("--eval-every", type=_positive_int, default=500, help="evaluate and checkpoint every so many steps")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches, times and noise (default 0)")
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
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo estimates (default 0)")
    p.add_argument("--out", type=Path, default=None, help="also write plan.json into this new folder")
    p.add_argument("--force", action="store_true", help="overwrite the files of an existing folder")
    p.add_argument("--no-progress", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("bound", help="theorem terms, certified bound and measured error, against step size",
                       description="For the paper's sampler on a built-in target, print side by side Theorem 2's "
                                   "terms, the certified bound and the measured error for each number of steps, and "
                                   "write a log-log figure of error against step size with the three curves.")
    _target_args(p)
    p.add_argument("--grid", choices=list(GRIDS), default="uniform", help="time grid (default uniform)")
    p.add_argument("--steps", type=_positive_int, nargs="+", default=[10, 20, 50, 100, 200, 500],
                   help="numbers of steps to sweep (default 10 20 50 100 200 500)")
    p.add_argument("--T", type=_positive_float, default=5.0, help="time horizon (default 5)")
    p.add_argument("--delta", type=_positive_float, default=1e-3, help="early-stopping time (default 1e-3)")
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
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _output_args(p)
    p.set_defaults(func=cmd_compare_cld)

    p = sub.add_parser("claims", help="the paper's five claims, measured against exact answers: report.md",
                       description="Run the five claims of Chen et al. (2023) in the abstract's order on instances "
                                   "with a known answer (L2 score accuracy suffices; no functional inequality; "
                                   "polynomial dependence on h, T, eps_score and d; N = L^2 d / eps^2 steps; CLD does "
                                   "not help the analysis) and write report.md with a verdict per claim, claims.json, "
                                   "a CSV and a figure per claim. About a minute on 2 CPU cores (--quick: 15 s).")
    p.add_argument("--quick", action="store_true", help="smaller sizes (for tests; the verdicts hold at both)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    _output_args(p)
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("bench", help="ground-truth benchmark of samplers (sgmlab, the paper's, diffusers')",
                       description="Targets with exact scores x samplers x budgets of score evaluations. Error: exact "
                                   "KL where the output law is Gaussian and known, otherwise the unbiased squared MMD "
                                   "against the target's characteristic function, compared between methods started "
                                   "from the same prior draws (verdict at p = 0.01 per peer); wall time and time in the score. diffusers' schedulers need "
                                   "`pip install sgmlab[bench]`.")
    p.add_argument("--suite", choices=["targets", "heldout", "train"], default="targets",
                   help="targets: the fixed targets below (default); heldout: a random family no default was "
                        "chosen on, drawn from --seed (Gaussians by exact KL, mixtures by the exact-law MMD), "
                        "with the fixed default, the tuned plan (sg.tune) and diffusers' deterministic "
                        "schedulers; train: the same for the family the defaults were chosen on")
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
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue a stopped run in --out with the same arguments: the methods it finished "
                        "(kept in --out/partial) are read back, the rest run")
    _output_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tune", help="fit a sampling plan to a score (exact or trained) and certify it in W2",
                       description="Choose every time of a deterministic sampler's grid (start, delta, where the "
                                   "steps go, the final denoising step) for a budget of score evaluations, by the "
                                   "distance of its outputs to a many-step reference solution of the same ODE from "
                                   "the same prior draws; print the plan, its W2 certificate (on fresh draws) and "
                                   "the tuning cost. --target: a built-in target's exact score (the certificate "
                                   "then bounds W2 to the target); writes plan.json and plan.png to --out. --model: "
                                   "a trained model; the plan is saved in its folder, and `sgmlab sample --model` "
                                   "uses it for that budget.")
    p.add_argument("--target", choices=sorted(BUILTIN), default=None, help="built-in target (exact score)")
    p.add_argument("--dim", type=_positive_int, default=None, help="dimension, for targets that take one")
    p.add_argument("--model", type=Path, default=None, help="folder of a model trained with `sgmlab train`")
    p.add_argument("--nfe", type=_positive_int, required=True, help="budget of score evaluations per sample")
    p.add_argument("--sampler", choices=["dpmpp_3m", "dpmpp_2m", "unipc_3", "unipc_2"], default="dpmpp_3m",
                   help="the deterministic sampler to fit the grid for (default dpmpp_3m)")
    p.add_argument("--n-pilot", type=_positive_int, default=512,
                   help="prior draws to tune on; as many fresh ones make the certificate (default 512)")
    p.add_argument("--trials", type=_positive_int, default=240, help="grids the optimiser tries (default 240)")
    p.add_argument("--level", type=float, choices=[0.9, 0.95, 0.99], default=0.95,
                   help="confidence of the certificate (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pilot draws (default 0)")
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
    except (ValueError, TypeError) as e:
        _io.remove_empty_created()  # a failed run leaves no empty folder behind
        print(f"sgmlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BaseException:
        _io.remove_empty_created()
        raise
    _io.CREATED.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
