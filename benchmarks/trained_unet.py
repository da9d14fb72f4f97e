"""A diffusers UNet trained on a law of known shape, sampled by sgmlab's plans and by diffusers'
schedulers in DDPMPipeline's loop. Write benchmarks/trained_unet.md.

    .venv/bin/python benchmarks/trained_unet.py            # about 10 minutes on 2 cores
    .venv/bin/python benchmarks/trained_unet.py --smoke    # seconds

Data: 8x8 images x = +-3 u + 0.1 N(0, I) with weights 0.7 / 0.3 (u a smooth unit pattern), inside
[-1, 1]; a UNet2DModel is trained on the squared-cosine schedule (``DDPMScheduler(beta_schedule=
"squaredcos_cap_v2")``, which clips x0 to [-1, 1]) for each length. Measured per sampler: the
share of the +u mode (0.7 in the data) and the RMS per pixel off the pattern's line (0.1 in the
data), on n samples; DDPM with 1000 steps is the network's own stochastic law. The question: what
the data prediction's clipping does for a deterministic plan started at the top of the schedule
(OU time 9.9, where alpha = 5e-5 divides the network's error), and where plans stand against
diffusers' schedulers on a trained network.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).parent


def pattern() -> torch.Tensor:
    xx = torch.arange(8.0).expand(8, 8)
    u = torch.cos(math.pi * (xx + 0.5) / 8)
    return (u / u.norm()).reshape(64)


def law_stats(x: torch.Tensor) -> tuple[float, float]:
    x = x.reshape(x.shape[0], 64).double()
    u = pattern().double()
    p = x @ u
    return float((p > 0).double().mean()), float((x - p[:, None] * u).pow(2).mean().sqrt())


def train(steps: int, folder: Path) -> float:
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    t0 = time.time()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8)
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    u = pattern().reshape(8, 8)
    for _ in range(steps):
        sign = torch.where(torch.rand(128, generator=g) < 0.7, 1.0, -1.0)
        x = (3 * sign[:, None, None] * u + 0.1 * torch.randn(128, 8, 8, generator=g))[:, None]
        t = torch.randint(0, 1000, (128,), generator=g)
        e = torch.randn(x.shape, generator=g)
        loss = (unet(ddpm.add_noise(x, e, t), t).sample - e).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    DDPMPipeline(unet=unet.eval(), scheduler=ddpm).save_pretrained(str(folder))
    return time.time() - t0


def measure(folder: Path, nfes: tuple[int, ...], n: int, tune_kw: dict) -> list[tuple]:
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    import sgmlab as sg
    from sgmlab.interop.scheduler import PlanScheduler, load_pipeline

    unet, sched, shape = load_pipeline(folder)
    from diffusers import DDPMScheduler

    ddpm = DDPMScheduler.from_pretrained(str(folder), subfolder="scheduler")
    config = dict(ddpm.config)

    def run(scheduler, k: int) -> tuple[float, float]:
        """DDPMPipeline's loop (UniPC's step takes no generator, so the pipeline cannot run it)."""
        import inspect

        g = torch.Generator().manual_seed(1)
        scheduler.set_timesteps(k)
        x = torch.randn(n, *shape, generator=g)
        extra = {"generator": g} if "generator" in inspect.signature(scheduler.step).parameters else {}
        with torch.no_grad():
            for t in scheduler.timesteps:
                x = scheduler.step(unet(x, t).sample, t, x, **extra).prev_sample
        return law_stats(x.clamp(-1, 1))

    rows = [("DDPM, 1000 steps (the network's stochastic law)", 1000, *run(ddpm, 1000))]
    for k in nfes:
        for limit in (True, False):
            t0 = time.time()
            tp = sg.tune(sched.score_of(unet, shape, limit=limit), math.prod(shape), k, t_range=sched.ou_range,
                         generator=torch.Generator().manual_seed(0), **tune_kw)
            plan = PlanScheduler.from_plan(tp, **config)
            what = "clipped, as the pipeline steps (default)" if limit else "the raw score (limit=False)"
            rows.append((f"sgmlab tune ({tp.source}: starts at {float(tp.grid[0]):.3g}), tuned on {what}", k,
                         *run(plan, k)))
            rows[-1] += (tp.reference.halving_rms, time.time() - t0)
        rows.append(("sgmlab default (PlanScheduler, no tuning)", k, *run(PlanScheduler.from_config(config), k)))
        for spacing in ("leading", "trailing"):
            for name, cls, kw in (("DDIM", DDIMScheduler, {}), ("DPM-Solver++ 3M", DPMSolverMultistepScheduler,
                                                                 {"solver_order": 3}),
                                  ("UniPC", UniPCMultistepScheduler, {})):
                rows.append((f"diffusers {name}, {spacing} spacing", k,
                             *run(cls.from_config(config, timestep_spacing=spacing, **kw), k)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[400, 3000])
    ap.add_argument("--nfes", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--models", type=Path, default=Path("/tmp/sgmlab-trained-unet"))
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "trained_unet.md")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    tune_kw = dict(n_pilot=256, max_trials=120)
    if a.smoke:
        a.lengths, a.nfes, a.n, tune_kw = [30], [6], 50, dict(n_pilot=16, max_trials=4, reference_steps=16)
        a.out = a.models / "smoke.md"
    a.models.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lines = ["# A trained diffusers UNet: sgmlab's plans and diffusers' schedulers in its pipeline", "",
             "Regenerate: `.venv/bin/python benchmarks/trained_unet.py"
             + (" --smoke" if a.smoke else "") + "` (module docstring for the setup).", "",
             "Data: 8x8 images, +-3 u + 0.1 N(0, I), mode weights 0.7 / 0.3. Columns: the share of the +u mode "
             "(data 0.7) and the RMS per pixel off the pattern's line (data 0.1), on "
             f"{a.n} samples (standard error of the share about {math.sqrt(0.21 / a.n):.3f}). "
             "`halving` is the tuner's reference error (RMS change when its steps are halved; outputs have RMS 3).", "",
             "Reading: nearer the network's stochastic law (the first row of each table) is better; a deterministic "
             "plan can at best reproduce the law of the network's probability-flow ODE. Tuned on the raw score, the "
             "tuner's reference starts at the top of the schedule, where the data prediction divides the network's "
             "error by alpha = 5e-5: its halving error flags it, and on the network trained 400 steps the plan is "
             "off. diffusers' DPM-Solver++ and UniPC with trailing spacing start there too and do not clip. A "
             "spread under the data's (RMS off the line below 0.1) is an error too: the law is narrower than the "
             "data's.", ""]
    for length in a.lengths:
        folder = a.models / f"unet-{length}"
        seconds = train(length, folder) if not (folder / "model_index.json").exists() else float("nan")
        lines += [f"## Trained {length} steps (batch 128; {seconds:.0f} s to train)" if seconds == seconds
                  else f"## Trained {length} steps (batch 128; reused)", "",
                  "| sampler | evaluations | +u share | RMS off the line | tuner's reference halving | tuning s |",
                  "|---|---|---|---|---|---|"]
        for r in measure(folder, tuple(a.nfes), a.n, tune_kw):
            extra = f" {r[4]:.3g} | {r[5]:.0f} |" if len(r) > 4 else " | |"
            lines.append(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} |{extra}")
        lines.append("")
    lines.append(f"Run time: {time.time() - t0:.0f} s.")
    a.out.write_text("\n".join(lines) + "\n")
    print(a.out.read_text())


if __name__ == "__main__":
    main()
