"""A tuned plan for a real diffusers network: sg.tune on ``PlanScheduler.score_of(unet, shape)``,
``PlanScheduler.from_plan`` with a pipeline's whole scheduler config, and ``sgmlab tune --diffusers``
on a pipeline saved with ``save_pretrained``, run end to end in ``DDPMPipeline`` in float32 and
float16 (random weights: these check the plumbing, not the quality)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import sgmlab as sg
from sgmlab.cli import main

diffusers = pytest.importorskip("diffusers")
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel  # noqa: E402

from sgmlab.interop.scheduler import PlanScheduler  # noqa: E402


def _unet(seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4)


def test_tune_a_real_unet_and_run_the_plan_in_its_pipeline():
    unet = _unet()
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    sched = PlanScheduler.from_config(ddpm.config)
    # the network's output carries autograd unless the score turns it off; the samplers write in place
    tp = sg.tune(sched.score_of(unet, (1, 8, 8)), 64, 6, t_range=sched.ou_range, n_pilot=16, max_trials=8,
                 reference_steps=16, generator=torch.Generator().manual_seed(0))
    assert tp.evaluations == 6
    # the pipeline's whole config, with keys of other schedulers (timestep_spacing, steps_offset, ...)
    plan_sched = PlanScheduler.from_plan(tp, **ddpm.config)
    assert plan_sched.config.beta_schedule == "squaredcos_cap_v2"
    # as between diffusers' own schedulers: keys the user left at DDPM's defaults take this scheduler's
    assert plan_sched.config.clip_sample == sched.config.clip_sample
    assert plan_sched.config.plan_grid == tp.grid.tolist()
    again = PlanScheduler.from_plan(tp, **plan_sched.config)  # a config that holds a plan already: ours wins
    assert again.config.plan_grid == plan_sched.config.plan_grid
    twice = PlanScheduler.from_plan(tp, **sched.config)  # from a PlanScheduler's own config (defaults listed)
    assert twice.config.plan_grid == tp.grid.tolist()
    pipe = DDPMPipeline(unet=unet, scheduler=plan_sched)
    img = pipe(batch_size=2, num_inference_steps=6, output_type="np",
               generator=torch.Generator().manual_seed(1)).images
    assert img.shape == (2, 8, 8, 1) and np.isfinite(img).all()
    with pytest.raises(ValueError, match="num_inference_steps=6"):
        pipe(batch_size=1, num_inference_steps=5, output_type="np")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sgmlab_tune_diffusers_writes_a_scheduler_the_pipeline_loads(tmp_path, capsys, dtype):
    folder = tmp_path / "pipe"
    DDPMPipeline(unet=_unet().to(dtype), scheduler=DDPMScheduler(beta_schedule="squaredcos_cap_v2")).save_pretrained(
        str(folder))
    out = tmp_path / "tuned"
    code = main(["tune", "--diffusers", str(folder), "--nfe", "5", "--n-pilot", "16", "--trials", "8",
                 "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0 and "PlanScheduler.from_pretrained" in text and "MMD^2(plan, reference)" in text
    plan = sg.TunedPlan.load(out / "plan.json")
    saved = json.loads((out / "plan.json").read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    # what it was tuned for: the pipeline's weights by checksum, through its scheduler's limits
    assert "'clip_sample': True" in saved["tuned_for"]["score"]
    assert [len(h) for h in saved["tuned_for"]["pipeline"]["weights"].values()] == [64]
    sched = PlanScheduler.from_pretrained(str(out), subfolder="scheduler")
    assert sched.config.plan_grid == plan.grid.tolist()
    pipe = DDPMPipeline.from_pretrained(str(folder), torch_dtype=dtype)
    pipe.scheduler = sched
    img = pipe(batch_size=2, num_inference_steps=5, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert img.shape == (2, 8, 8, 1) and np.isfinite(img).all()


@pytest.mark.parametrize("argv, match", [
    (["tune", "--nfe", "5", "--diffusers", "/nonexistent"], "no model_index.json"),
    (["tune", "--nfe", "5", "--diffusers", "x", "--target", "ring"], "one of them"),
    (["tune", "--nfe", "5", "--diffusers", "x", "--dim", "3"], "--dim is for --target"),
])
def test_tune_diffusers_bad_input(argv, match, tmp_path, capsys):
    code = main(argv + ["--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "o" / "plan.json").exists()


def test_a_model_plan_refuses_out_instead_of_ignoring_it(tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--data", "mixture2d", "--n", "500", "--steps", "10", "--hidden", "8",
                 "--eval-every", "10", "--out", str(model), "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["tune", "--model", str(model), "--nfe", "4", "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and "--out is for --target and --diffusers" in capsys.readouterr().err
    assert not (model / "plan-nfe4.json").exists()


# -- the quality check: a small UNet trained here on a law with a known shape ------------------------
# Data: 8x8 images x = +-3 u + 0.1 N(0, I) (weights 0.7 / 0.3) for a smooth unit pattern u, inside
# [-1, 1] as pipelines assume. A deterministic plan can at best reproduce the law of the network's
# probability-flow ODE (its reference); the check is that the tuned plan, run in DDPMPipeline, does.

def _pattern() -> torch.Tensor:
    xx = torch.arange(8.0).expand(8, 8)
    u = torch.cos(math.pi * (xx + 0.5) / 8)
    return (u / u.norm()).reshape(64)


def _law_stats(x: torch.Tensor) -> tuple[float, float]:
    """The share of samples in the +u mode, and the RMS per pixel off the pattern's line (0.1 in the data)."""
    x = x.reshape(x.shape[0], 64).double()
    u = _pattern().double()
    p = x @ u
    return float((p > 0).double().mean()), float((x - p[:, None] * u).pow(2).mean().sqrt())


def _same_law(x: torch.Tensor, ref: torch.Tensor) -> bool:
    """Mode shares equal within 3.5 two-sample standard errors (p ~ 5e-4), within-mode scale within 25%."""
    (w, r), (w0, r0) = _law_stats(x), _law_stats(ref)
    se = math.sqrt(w0 * (1 - w0) * (1 / x.shape[0] + 1 / ref.shape[0]))
    return abs(w - w0) <= 3.5 * se and abs(math.log(r / r0)) <= math.log(1.25)


@pytest.fixture(scope="module")
def trained_pipeline(tmp_path_factory):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    unet, ddpm = _unet().float(), DDPMScheduler(beta_schedule="squaredcos_cap_v2")  # clip_sample=True, as saved
    opt = torch.optim.Adam(unet.parameters(), lr=2e-3)
    u = _pattern().float().reshape(8, 8)
    for _ in range(300):
        sign = torch.where(torch.rand(64, generator=g) < 0.7, 1.0, -1.0).float()
        x = (3 * sign[:, None, None] * u + 0.1 * torch.randn(64, 8, 8, generator=g, dtype=torch.float32))[:, None]
        t = torch.randint(0, 1000, (64,), generator=g)
        e = torch.randn(x.shape, generator=g, dtype=torch.float32)
        loss = (unet(ddpm.add_noise(x, e, t), t).sample - e).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder = tmp_path_factory.mktemp("trained") / "pipe"
    DDPMPipeline(unet=unet.eval(), scheduler=ddpm).save_pretrained(str(folder))
    return folder


def test_a_tuned_plan_runs_a_trained_unet_at_its_own_law(trained_pipeline):
    """The documented steps (the command's are tested above, with random weights)."""
    from sgmlab.interop.scheduler import load_pipeline

    unet, sched, shape = load_pipeline(trained_pipeline)
    lo, hi = sched.ou_range
    tp = sg.tune(sched.score_of(unet, shape), 64, 10, t_range=sched.ou_range, n_pilot=64, max_trials=16,
                 reference_steps=64, generator=torch.Generator().manual_seed(0))
    pipe = DDPMPipeline.from_pretrained(str(trained_pipeline))
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = PlanScheduler.from_plan(tp, **pipe.scheduler.config)
    img = pipe(batch_size=300, num_inference_steps=10, output_type="pt",
               generator=torch.Generator().manual_seed(1)).images  # (x / 2 + 1/2) clamped to [0, 1]
    x = img.double() * 2 - 1
    # the network's probability-flow law, through the pipeline's clipping as its steps: 64 steps
    with torch.no_grad():
        ref = sg.sample(sched.score_of(unet, shape), 300, 64, nfe=64, sampler=sg.samplers.dpm_solver_pp_3m,
                        grid=sg.grids.log_snr(hi, lo, 64), generator=torch.Generator().manual_seed(2))
        raw = sg.sample(sched.score_of(unet, shape, limit=False), 300, 64, nfe=10,
                        sampler=sg.samplers.dpm_solver_pp_3m, grid=sg.grids.log_snr(hi, lo, 10),
                        generator=torch.Generator().manual_seed(2))
    # the tuner's reference converged (RMS change when its steps are halved, against outputs of RMS 3)
    assert tp.reference.halving_rms < 0.1, tp.reference
    w, r = _law_stats(ref)
    assert 0.5 < w < 0.85 and r < 0.3, (w, r)  # the network learned the law's shape (data: 0.7, 0.1)
    assert _same_law(x, ref), (_law_stats(x), (w, r))
    # the check fails where it should: the unclipped score blows up from the top of the schedule,
    # where the data prediction divides the network's error by alpha = 5e-5
    assert not _same_law(raw, ref), _law_stats(raw)
