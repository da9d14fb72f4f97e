"""What a GPU does for sgmlab's sampling, bench and training: write gpu.md and gpu.png.

    python benchmarks/gpu.py --out benchmarks      (a machine with CUDA; about 4 minutes on one H200)

Every GPU number is set beside the same work on the same machine's CPU in the same run, as a ratio:
sampling throughput of ``sg.sample``'s default plan against n (float64 and float32 state), peak GPU
memory against n (the chunked sampler's working set), time outside the score, the bench's hardest
cell (digits, 100 evaluations) per million samples, and training steps per second for both recipes.
Correctness on the GPU (float64 agreement with the CPU, resume, the CLI) is tests/test_cuda.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
import traceback
from pathlib import Path

import torch

import sgmlab as sg
import sgmlab.targets.base as target_base
from sgmlab.experiments.sampling import TimedScore, synchronize

NFE = 10  # the overhead case: 8-component mixture, d = 10
RESULTS: dict = {}
NOTES = "## What this says"


def best_of(fn, repeats: int = 2) -> float:
    """Fastest wall time of ``repeats`` runs of ``fn`` (the first run on a GPU also warms it up)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        synchronize(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def throughput(log) -> None:
    """Samples per second of sg.sample (default plan, NFE evaluations) against n."""
    q = sg.targets.builtin("mixture", 10)
    rows = []
    for n in (10_000, 100_000, 1_000_000, 10_000_000):
        row = {"n": n}
        for name, dev, dtype, batch in (("gpu64", "cuda", torch.float64, None), ("gpu32", "cuda", torch.float32, None),
                                        ("gpu32_big_chunks", "cuda", torch.float32, 2**25 // 10),
                                        ("cpu64", "cpu", torch.float64, None)):
            if dev == "cpu" and n > 1_000_000:
                continue
            score = sg.scores.exact(q.to(dev))
            gen = torch.Generator(dev)
            torch.cuda.reset_peak_memory_stats()
            secs = best_of(lambda: sg.sample(score, n, 10, nfe=NFE, generator=gen.manual_seed(0), dtype=dtype,
                                             device=dev, batch_size=batch))
            row[name] = n / secs
            if dev == "cuda":
                out_bytes = n * 10 * (8 if dtype == torch.float64 else 4)
                row[name + "_work_mib"] = (torch.cuda.max_memory_allocated() - out_bytes) / 2**20
            log(f"throughput n={n:.0e} {name}: {n / secs:.3g} samples/s")
        rows.append(row)
    RESULTS["throughput"] = rows


def overhead(log) -> None:
    """Time outside the score over time in the score, on the GPU, n = 1e6 (the state's passes)."""
    q = sg.targets.builtin("mixture", 10).to("cuda")
    out = {}
    for name, sampler in (("default", None), ("exponential_integrator", sg.samplers.exponential_integrator),
                          ("euler_maruyama", sg.samplers.euler_maruyama)):
        for dtype in (torch.float64, torch.float32):
            best = None
            for _ in range(2):
                timed = TimedScore(sg.scores.exact(q))
                t0 = time.perf_counter()
                synchronize(sg.sample(timed, 1_000_000, 10, nfe=NFE, sampler=sampler, dtype=dtype, device="cuda",
                                      generator=torch.Generator("cuda").manual_seed(0)))
                wall = time.perf_counter() - t0
                ratio = (wall - timed.seconds) / timed.seconds
                best = ratio if best is None else min(best, ratio)
            out[f"{name} {str(dtype)[6:]}"] = best
            log(f"overhead {name} {dtype}: {best:.1%}")
    RESULTS["overhead"] = out


def digits_cell(log) -> None:
    """The exact digits score on the GPU by chunk size (sgmlab.targets.base.CUDA_CHUNK_ELEMENTS),
    then the bench's digits cell at 100 evaluations on the GPU and on the CPU."""
    from sgmlab.experiments import bench

    out = {}
    q = sg.catalogue.digits_target().to("cuda")
    x = torch.randn(200_000, q.dim, dtype=torch.float64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    score = sg.scores.exact(q)
    chosen, chunks = target_base.CUDA_CHUNK_ELEMENTS, {}
    for elements in (2**21, 2**23, 2**25, 2**27):
        target_base.CUDA_CHUNK_ELEMENTS = elements
        chunks[elements] = best_of(lambda: score(x, 0.05), 3) / 2
    target_base.CUDA_CHUNK_ELEMENTS = chosen
    out["score_seconds_per_1e5_by_chunk"] = {str(k): v for k, v in chunks.items()}
    log(f"digits score, 1e5 rows, by chunk elements: {out['score_seconds_per_1e5_by_chunk']}")
    RESULTS["digits"] = out
    for dev, n in (("cuda", 200_000), ("cpu", 20_000)):
        t0 = time.perf_counter()
        rows = bench.run_bench(bench.BenchConfig(targets=("digits",), budgets=(100,), peers=False,
                                                 n_by_target=(("digits", n),), device=dev))
        total = time.perf_counter() - t0
        out[dev] = {"n": n, "seconds_total": total,
                    "methods": {r.method: {"value": r.value, "se": r.se, "sampling_seconds": r.wall_seconds,
                                           "score_seconds": r.score_seconds} for r in rows}}
        log(f"digits cell on {dev}, n={n}: {total:.1f} s in all; "
            + ", ".join(f"{r.method} {r.wall_seconds:.1f} s" for r in rows))


def resume(log) -> None:
    """Two uninterrupted GPU trainings, and one interrupted at step 25 and resumed from step 20:
    the largest weight difference to the first (0: bitwise); for the U-Net also with cuDNN free
    to pick nondeterministic kernels (``sgmlab.learn.train.DETERMINISTIC_CONVOLUTIONS = False``)."""
    import tempfile

    import sgmlab.learn.train as T

    out = {}
    for net, deterministic in (("mlp", True), ("unet", True), ("unet", False)):
        if net == "mlp":
            data = sg.targets.mixture2d().sample(2000, generator=torch.Generator().manual_seed(0))
            config = sg.learn.recipe(steps=40, hidden=32, depth=1, eval_every=10, checkpoint_every=10)
        else:
            data = sg.learn.load_data("digits").x[:500]
            config = sg.learn.recipe((8, 8), batch_size=64, steps=40, eval_every=10, checkpoint_every=10)
        T.DETERMINISTIC_CONVOLUTIONS = deterministic
        stamps = []
        with tempfile.TemporaryDirectory() as tmp:
            runs = [sg.learn.train(data, config, out=Path(tmp) / f"s{i}", device="cuda",
                                   callback=lambda info: stamps.append(time.perf_counter())) for i in range(2)]

            def crash(info):
                if info.step == 25:
                    raise KeyboardInterrupt

            try:
                sg.learn.train(data, config, out=Path(tmp) / "r", callback=crash, device="cuda")
            except KeyboardInterrupt:
                pass
            runs.append(sg.learn.train(data, config, out=Path(tmp) / "r", resume=True, device="cuda"))
        T.DETERMINISTIC_CONVOLUTIONS = True
        diff = [max(float((a - b).abs().max()) for a, b in zip(runs[0].model.parameters(), r.model.parameters()))
                for r in runs[1:]]
        name = net if net == "mlp" else f"unet, cuDNN {'deterministic (default)' if deterministic else 'free'}"
        out[name] = {"straight_again": diff[0], "resumed": diff[1],
                     "steps_per_s": 30 / (stamps[39] - stamps[9])}
        log(f"resume on the GPU, {name}: {out[name]}")
    RESULTS["resume"] = out


def training(log) -> None:
    """Steps per second of both recipes (steps 10 to the end, so start-up is not counted)."""
    digits = sg.learn.load_data("digits")
    mix = sg.targets.builtin("mixture", 16).sample(20_000, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, data, config in (
            ("images (digits, U-Net)", digits.x, sg.learn.recipe(digits.image_shape, standardize=digits.standardize)),
            ("vectors (mixture16, MLP)", mix, sg.learn.recipe())):
        for dev, batch, steps in (("cuda", 128, 150), ("cuda", 1024, 150), ("cpu", 128, 40)):
            stamps = []
            cfg = dataclasses.replace(config, steps=steps, batch_size=batch, eval_every=steps, checkpoint_every=steps)
            sg.learn.train(data, cfg, device=dev, callback=lambda info: stamps.append(time.perf_counter()))
            rate = (len(stamps) - 10) / (stamps[-1] - stamps[9])
            out[f"{name}, {dev}, batch {batch}"] = rate
            log(f"training {name} {dev} batch {batch}: {rate:.1f} steps/s")
    RESULTS["training"] = out


def nccl(log) -> None:
    """The process group sgmlab opens under torchrun on GPUs (gloo for CPU tensors, NCCL for CUDA
    ones), with one process (one GPU allows no more): a CUDA all-reduce and gather (NCCL), an
    object broadcast (gloo), and DistributedDataParallel's gradient equal to the plain one."""
    import copy

    from sgmlab.distributed import on_rank_zero
    from sgmlab.learn.train import _build_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    torch.distributed.init_process_group("cpu:gloo,cuda:nccl", rank=0, world_size=1)
    try:
        t = torch.arange(4.0, device="cuda")
        torch.distributed.all_reduce(t)
        parts = [torch.empty_like(t)]
        torch.distributed.gather(t, parts, dst=0)
        box = on_rank_zero(lambda: {"from": "rank 0"})
        _, model = _build_model(sg.learn.recipe(hidden=32, depth=1), 4)
        model = model.to("cuda")
        ddp = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(model), device_ids=[torch.device("cuda", 0)])
        x = torch.randn(64, 4, device="cuda")
        tt = torch.rand(64, device="cuda", dtype=torch.float64) + 0.01
        model(x, tt).square().sum().backward()
        ddp(x, tt).square().sum().backward()
        same = all(torch.allclose(a.grad, b.grad, rtol=0, atol=0)
                   for a, b in zip(model.parameters(), ddp.module.parameters()))
        RESULTS["nccl"] = {"all_reduce": t.tolist(), "gather": parts[0].tolist(), "object_broadcast": box,
                           "ddp_gradient_equals_plain": same, "nccl_version": ".".join(map(str, torch.cuda.nccl.version()))}
        log(f"nccl: {RESULTS['nccl']}")
    finally:
        torch.distributed.destroy_process_group()


def figure(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    rows = RESULTS.get("throughput", [])
    for key, label in (("gpu64", "GPU, float64"), ("gpu32", "GPU, float32"),
                       ("gpu32_big_chunks", "GPU, float32, chunks of 2^25"), ("cpu64", "CPU (all cores), float64")):
        pts = [(r["n"], r[key]) for r in rows if key in r]
        if pts:
            ax[0].loglog(*zip(*pts), "o-", label=label)
    ax[0].set(xlabel="n (samples)", ylabel="samples per second",
              title=f"sg.sample, default plan, {NFE} evaluations,\n8-component mixture in d = 10")
    ax[0].legend(fontsize=8)
    tr = RESULTS.get("training", {})
    if tr:
        names = list(tr)
        ax[1].barh(range(len(names)), [tr[k] for k in names])
        ax[1].set_yticks(range(len(names)), names, fontsize=7)
        ax[1].set(xlabel="training steps per second", title="sgmlab train's recipes")
    fig.tight_layout()
    fig.savefig(out / "gpu.png", dpi=110)


def write(out: Path, errors: dict) -> None:
    R = RESULTS
    L = ["# sgmlab on a GPU", "",
         f"Regenerate: `python benchmarks/gpu.py --out benchmarks` on a machine with CUDA. This run: "
         f"{R['env']['gpu']}, torch {R['env']['torch']}, CPU columns with {R['env']['cpu_threads']} threads of the "
         "same machine, in the same run. Correctness on the GPU is `tests/test_cuda.py` (skipped without CUDA).", "",
         "![throughput and training](gpu.png)", ""]
    if "throughput" in R:
        L += [f"## Sampling throughput (`sg.sample`, default plan, {NFE} evaluations, 8-component mixture, d = 10)", "",
              "Samples per second (best of 2); GPU working memory = peak allocated minus the output, MiB.", "",
              "| n | GPU float64 | GPU float32 | GPU float32, chunks of 2^25 numbers | CPU float64 | GPU/CPU (float64) "
              "| GPU working MiB (float64) |", "|---|---|---|---|---|---|---|"]
        for r in R["throughput"]:
            cpu = r.get("cpu64")
            vs = (f"{cpu:.3g} | {r['gpu64'] / cpu:.1f}x") if cpu else "- | -"
            L.append(f"| {r['n']:.0e} | {r['gpu64']:.3g} | {r['gpu32']:.3g} | {r['gpu32_big_chunks']:.3g} | {vs} | "
                     f"{r['gpu64_work_mib']:.0f} |")
        L.append("")
    if "overhead" in R:
        L += ["## Time outside the score on the GPU (n = 1e6, d = 10)", "",
              "| sampler, state | (wall - score) / score |", "|---|---|"]
        L += [f"| {k} | {v:.1%} |" for k, v in R["overhead"].items()] + [""]
    if "digits" in R:
        D = R["digits"]
        L += ["## The bench's digits cell (100 evaluations, exact MMD against the data set)", "",
              "Exact digits score on the GPU, seconds per 1e5 rows, by the chunk size of its evaluation "
              "(`sgmlab.targets.base.CUDA_CHUNK_ELEMENTS`): " + ", ".join(
                  f"2^{int(k).bit_length() - 1}: {v:.3g}" for k, v in D["score_seconds_per_1e5_by_chunk"].items()), ""]
        if "cpu" in D:
            L += ["| device | n | method | sampling seconds | per 1e6 samples | MMD^2 +- SE |", "|---|---|---|---|---|---|"]
            for dev in ("cuda", "cpu"):
                for m, v in D[dev]["methods"].items():
                    L.append(f"| {dev} | {D[dev]['n']:.0e} | {m} | {v['sampling_seconds']:.1f} | "
                             f"{v['sampling_seconds'] * 1e6 / D[dev]['n']:.3g} | {v['value']:.3g} +- {v['se']:.2g} |")
            L.append("")
    if "resume" in R:
        L += ["## Resume on the GPU", "", "Largest weight difference to an uninterrupted run (0: bitwise), 40 steps:",
              "", "| network | a second uninterrupted run | interrupted at 25, resumed from 20 | steps/s |",
              "|---|---|---|---|"]
        L += [f"| {k} | {v['straight_again']:.3g} | {v['resumed']:.3g} | {v.get('steps_per_s', float('nan')):.0f} |"
              for k, v in R["resume"].items()] + [""]
    if "training" in R:
        L += ["## Training steps per second (steps 10 to the end)", "", "| recipe, device, batch | steps/s |", "|---|---|"]
        L += [f"| {k} | {v:.1f} |" for k, v in R["training"].items()] + [""]
    if "nccl" in R:
        L += ["## NCCL", "", f"One process in the group sgmlab opens under torchrun on GPUs: {R['nccl']}.", ""]
    for k, e in errors.items():
        L += [f"## {k}: failed", "", "```", e[-1500:], "```", ""]
    old = (out / "gpu.md").read_text() if (out / "gpu.md").exists() else ""
    notes = old[old.index(NOTES):] if NOTES in old else ""  # hand-written, kept on regeneration
    (out / "gpu.md").write_text("\n".join(L) + ("\n" + notes if notes else ""))
    (out / "gpu.json").write_text(json.dumps(RESULTS, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--only", nargs="+", default=None)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device")
    RESULTS["env"] = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "cpu_threads": torch.get_num_threads()}

    def log(m):
        print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)

    errors = {}
    for fn in (nccl, resume, throughput, overhead, digits_cell, training):
        if args.only and fn.__name__ not in args.only:
            continue
        try:
            fn(log)
        except Exception:
            errors[fn.__name__] = traceback.format_exc()
            log(f"{fn.__name__} failed:\n{errors[fn.__name__]}")
        args.out.mkdir(parents=True, exist_ok=True)
        write(args.out, errors)
    figure(args.out)


if __name__ == "__main__":
    main()
