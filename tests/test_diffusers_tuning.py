"""A tuned plan for a real diffusers network: sg.tune on ``PlanScheduler.score_of(unet, shape)``,
``PlanScheduler.from_plan`` with a pipeline's whole scheduler config, and ``sgmlab tune --diffusers``
on a pipeline saved with ``save_pretrained``, run end to end in ``DDPMPipeline`` in float32 and
float16 (random weights: these check the plumbing, not the quality)."""

from __future__ import annotations

import json

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
    json.loads((out / "plan.json").read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
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
