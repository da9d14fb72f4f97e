"""sgmlab's diffusers schedulers: diffusers' own SchedulerCommonTest (vendored), every config key
honoured exactly or refused, the output and generator conventions, the plan scheduler against the
library samplers step for step, and both in a real DDPMPipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg

pytest.importorskip("diffusers")

import diffusers as D  # noqa: E402
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel  # noqa: E402
from diffusers.configuration_utils import ConfigMixin, register_to_config  # noqa: E402
from diffusers.models.modeling_utils import ModelMixin  # noqa: E402

from sgmlab.interop.peers import run_scheduler  # noqa: E402
from sgmlab.interop.scheduler import BETA_SCHEDULES, ExponentialIntegratorScheduler, PlanScheduler  # noqa: E402
from vendor import diffusers_scheduler_common as common  # noqa: E402

SCHEDULERS = (ExponentialIntegratorScheduler, PlanScheduler)
OU = sg.processes.OU()


# -- diffusers' own common scheduler tests -----------------------------------------------------------
class _Common(common.SchedulerCommonTest):
    __test__ = False  # collected through the two classes below
    forward_default_kwargs = (("num_inference_steps", 25),)

    def setUp(self):  # diffusers' tests run with torch's default float32; this suite's conftest sets float64
        self._dtype = torch.get_default_dtype()
        torch.set_default_dtype(torch.float32)

    def tearDown(self):
        torch.set_default_dtype(self._dtype)

    def get_scheduler_config(self, **kwargs):
        return {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                **kwargs}

    def test_trained_betas(self):
        """As diffusers' test, with num_train_timesteps equal to the number of betas: diffusers' version
        passes 2 betas with num_train_timesteps=1000, a contradiction these schedulers refuse."""
        for cls in self.scheduler_classes:
            with pytest.raises(ValueError, match="trained_betas has 2 values but num_train_timesteps is 1000"):
                cls(**self.get_scheduler_config(), trained_betas=np.array([0.1, 0.3]))
        self.get_scheduler_config = lambda **kw: {"num_train_timesteps": 2}
        super().test_trained_betas()


class TestExponentialIntegratorCommon(_Common):
    __test__ = True
    scheduler_classes = (ExponentialIntegratorScheduler,)


class TestPlanSchedulerCommon(_Common):
    __test__ = True
    scheduler_classes = (PlanScheduler,)


# -- honest configuration ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("schedule", [{"beta_schedule": "linear"}, {"beta_schedule": "scaled_linear",
                                      "beta_start": 0.00085, "beta_end": 0.012},
                                      {"beta_schedule": "squaredcos_cap_v2"}, {"beta_schedule": "sigmoid"},
                                      {"beta_schedule": "laplace"}, {"trained_betas": list(np.linspace(1e-3, 0.05, 50)),
                                                                     "num_train_timesteps": 50}])
def test_every_beta_schedule_is_diffusers_own(cls, schedule):
    """The schedule a model was trained with, through DDPMScheduler's config (as a user swaps a
    scheduler in): alphas_cumprod equal to diffusers', OU time -log(abar)/2 exactly at integers."""
    ddpm = DDPMScheduler(**schedule)
    ours = cls.from_config(ddpm.config)
    assert torch.equal(ours.alphas_cumprod, ddpm.alphas_cumprod)
    ks = np.arange(len(ours))
    abar = ddpm.alphas_cumprod.double().numpy()
    assert np.allclose(ours.ou_time(ks), -0.5 * np.log(abar), rtol=1e-13, atol=0)
    assert np.allclose(ours.timestep_for(ours.ou_time(ks + 0.37)[:-1]), ks[:-1] + 0.37, atol=1e-9)
    assert len(ours) == len(ks)


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("kwargs, match", [
    ({"beta_schedule": "cosine"}, "beta_schedule='cosine' is not supported"),
    ({"prediction_type": "flow_prediction"}, "prediction_type='flow_prediction' is not supported"),
    ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr=True"),
    ({"timestep_type": "continuous"}, "timestep_type='continuous' is not supported"),
    ({"variance_type": "fixed_huge"}, "variance_type='fixed_huge' is not supported"),
    ({"trained_betas": [0.1, 0.2]}, "trained_betas has 2 values but num_train_timesteps is 1000"),
    ({"trained_betas": [0.1, 1.0], "num_train_timesteps": 2}, r"beta\[1\] = 1.0"),
    ({"trained_betas": [0.0, 0.1], "num_train_timesteps": 2}, r"beta\[0\] = 0.0"),
    ({"beta_end": float("nan")}, "beta_end must be a number in"),
    ({"beta_start": -1e-4}, "beta_start must be a number in"),
    ({"num_train_timesteps": 1}, "num_train_timesteps must be an integer >= 2"),
    ({"num_train_timesteps": 10.5}, "num_train_timesteps must be an integer >= 2"),
    ({"clip_sample": "yes"}, "clip_sample must be True or False"),
    ({"clip_sample_range": 0.0}, "clip_sample_range must be a number in"),
    ({"dynamic_thresholding_ratio": 1.5}, "dynamic_thresholding_ratio must be a number in"),
    ({"sample_max_value": 0.5}, "sample_max_value must be a finite number >= 1"),
])
def test_config_refused_naming_the_key(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)
    with pytest.raises((ValueError, TypeError), match=match):  # the same through a pipeline's config
        ddpm = {k: v for k, v in DDPMScheduler().config.items() if k != "_use_default_values"}
        cls.from_config({**ddpm, "clip_sample": False, **kwargs})


def test_plan_config_refused():
    with pytest.raises(ValueError, match="plan_sampler='euler' is not supported"):
        PlanScheduler(plan_sampler="euler")
    with pytest.raises(ValueError, match="needs its plan_sampler"):
        PlanScheduler(plan_grid=[4.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="outside the model's training range"):
        PlanScheduler(plan_sampler="dpm_solver_pp_3m", plan_grid=[12.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="decreasing"):
        PlanScheduler(plan_sampler="dpm_solver_pp_3m", plan_grid=[1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="decreasing"):
        PlanScheduler(plan_sampler="dpm_solver_pp_3m", plan_grid=[1.0, float("nan"), 0.0])
    lof = sg.defaults.SamplePlan(sg.samplers.DPMSolverPP(3, lower_order_final=True), torch.tensor([3.0, 1.0, 0.0]), 2)
    with pytest.raises(ValueError, match="a PlanScheduler runs"):
        PlanScheduler.from_plan(lof)
    with pytest.raises(TypeError, match="plan must be a SamplePlan"):
        PlanScheduler.from_plan(42)


def _gaussian_predictions(q, x, tau):
    """The exact epsilon, v and x0 predictions of a Gaussian target at OU time tau."""
    a, s = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau))
    score = sg.scores.exact(q)(x, tau)
    eps = -s * score
    x0 = (x + s * s * score) / a
    return {"epsilon": eps, "v_prediction": a * eps - s * x0, "sample": x0}, score


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_prediction_types_convert_exactly(cls, gen):
    q = sg.targets.anisotropic_gaussian(4, cond=10.0)
    x = torch.randn(50, 4, generator=gen)
    for tau in (1e-3, 0.3, 2.0):
        preds, score = _gaussian_predictions(q, x, tau)
        for kind, out in preds.items():
            sched = cls(prediction_type=kind)
            assert torch.allclose(sched.score(out, x, tau), score, rtol=1e-9, atol=1e-9 / tau), (kind, tau)
            assert torch.allclose(sched.data_prediction(out, x, tau), preds["sample"], rtol=1e-9, atol=1e-9), kind


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_plan_scheduler_same_output_for_every_prediction_type(kind, gen):
    q = sg.targets.anisotropic_gaussian(3, cond=5.0)
    x0 = torch.randn(20, 3, generator=gen, dtype=torch.float64)
    outs = {}
    sched = PlanScheduler(prediction_type=kind)
    sched.set_timesteps(8)
    x = x0.clone()
    for t in sched.timesteps:
        tau = sched.ou_time(float(t))
        x = sched.step(_gaussian_predictions(q, x, tau)[0][kind], t, x).prev_sample
    outs[kind] = x
    plan = sched.plan
    assert torch.allclose(x, plan.sampler(sg.scores.exact(q), x0, plan.grid), atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["epsilon", "v_prediction", "sample"]), t=st.floats(0.0, 999.0),
       seed=st.integers(0, 2**31 - 1), schedule=st.sampled_from(BETA_SCHEDULES))
def test_score_and_data_prediction_agree_everywhere(kind, t, seed, schedule):
    """For any output, state and time: score = (alpha x0_hat - x) / sigma^2 (Tweedie), and
    timestep_for inverts ou_time."""
    sched = PlanScheduler(prediction_type=kind, beta_schedule=schedule)
    tau = sched.ou_time(t)
    assert abs(sched.timestep_for(tau) - t) <= 1e-6 * max(1.0, t)
    g = torch.Generator().manual_seed(seed)
    x, out = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    a, s = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau))
    x0 = sched.data_prediction(out, x, tau)
    assert torch.allclose(sched.score(out, x, tau), (a * x0 - x) / s**2, rtol=1e-7, atol=1e-7 / s**2)


def test_clipping_and_thresholding_are_diffusers_own(gen):
    x0 = 3 * torch.randn(6, 3, 4, 4, generator=gen, dtype=torch.float32)
    for kw in ({"thresholding": True, "sample_max_value": 2.5}, {"clip_sample": True, "clip_sample_range": 1.5}):
        ddpm = DDPMScheduler(**kw)
        theirs = ddpm._threshold_sample(x0.clone()) if kw.get("thresholding") else x0.clamp(-1.5, 1.5)
        for cls in SCHEDULERS:
            ours = cls(**kw).data_prediction(x0, torch.zeros_like(x0), 0.5)  # sample prediction: x0 itself
            ours_sample = cls(**kw, prediction_type="sample").data_prediction(x0, torch.zeros_like(x0), 0.5)
            assert torch.allclose(ours_sample, theirs, atol=1e-6)
            assert ours.shape == x0.shape


def test_learned_variance_keeps_the_first_half(gen):
    x = torch.randn(2, 3, 4, 4, generator=gen)
    eps = torch.randn(2, 3, 4, 4, generator=gen)
    both = torch.cat([eps, torch.randn(2, 3, 4, 4, generator=gen)], dim=1)
    for cls in SCHEDULERS:
        a, b = cls(variance_type="learned_range"), cls()
        a.set_timesteps(10)
        b.set_timesteps(10)
        t = a.timesteps[0]
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert torch.equal(a.step(both, t, x, generator=g1).prev_sample, b.step(eps, t, x, generator=g2).prev_sample)
        with pytest.raises(ValueError, match="expected the sample's"):
            b.step(both, t, x)


# -- the scheduler API diffusers users rely on ----------------------------------------------------------
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_add_noise_equals_ddpm(cls, gen):
    ddpm, ours = DDPMScheduler(beta_schedule="squaredcos_cap_v2"), cls(beta_schedule="squaredcos_cap_v2")
    x, eps = torch.randn(5, 3, 4, 4, generator=gen, dtype=torch.float32), torch.randn(5, 3, 4, 4, generator=gen,
                                                                                     dtype=torch.float32)
    t = torch.tensor([0, 10, 500, 998, 999])
    assert torch.equal(ours.add_noise(x, eps, t), ddpm.add_noise(x, eps, t))
    tf = torch.tensor([0.5, 10.25, 500.0, 998.9, 999.0], dtype=torch.float64)
    tau = torch.from_numpy(ours.ou_time(tf.numpy()))
    want = torch.exp(-tau).view(-1, 1, 1, 1) * x.double() + torch.sqrt(-torch.expm1(-2 * tau)).view(-1, 1, 1, 1) * eps
    assert torch.allclose(ours.add_noise(x.double(), eps.double(), tf), want, atol=1e-12)
    with pytest.raises(ValueError, match="training range"):
        ours.add_noise(x, eps, torch.tensor([1000] * 5))
    with pytest.raises(ValueError, match="one per sample"):
        ours.add_noise(x, eps, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="noise has shape"):
        ours.add_noise(x, eps[:2], t)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_output_type_and_len(cls, gen):
    sched = cls()
    sched.set_timesteps(10)
    x = torch.randn(2, 1, 4, 4, generator=gen)
    out = sched.step(0.1 * x, sched.timesteps[0], x, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, D.schedulers.scheduling_utils.SchedulerOutput)
    assert out[0] is out.prev_sample and out.to_tuple()[0] is out.prev_sample
    assert len(sched) == 1000 and sched.num_inference_steps == 10 and len(sched.timesteps) == 10


def test_a_list_of_generators_gives_each_sample_its_own_noise(gen):
    """As pipelines pass them: sample i of a batch equals sample 0 of a batch of one drawn with generator i."""
    sched = ExponentialIntegratorScheduler()
    sched.set_timesteps(10)
    x = torch.randn(3, 1, 4, 4, generator=gen)
    t = sched.timesteps[2]
    batch = sched.step(0.1 * x, t, x, generator=[torch.Generator().manual_seed(s) for s in (5, 6, 7)]).prev_sample
    for i, s in enumerate((5, 6, 7)):
        one = sched.step(0.1 * x[i:i + 1], t, x[i:i + 1], generator=torch.Generator().manual_seed(s)).prev_sample
        assert torch.equal(batch[i:i + 1], one)
    with pytest.raises(ValueError, match="got 2 generators for a batch of 3"):
        sched.step(0.1 * x, t, x, generator=[torch.Generator(), torch.Generator()])


def test_ei_scheduler_matches_the_sampler_step_for_step(gen):
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    sched = ExponentialIntegratorScheduler()
    sched.set_timesteps(25)
    x0 = OU.prior_sample(300, 2, generator=gen)
    states = []
    sg.samplers.exponential_integrator(score, x0, sched.ou_grid(), generator=torch.Generator().manual_seed(3),
                                       callback=lambda info: states.append(info.x.clone()))
    x, g = x0.clone(), torch.Generator().manual_seed(3)
    for k, t in enumerate(sched.timesteps):
        tau = sched.ou_time(int(t))
        x = sched.step(-math.sqrt(-math.expm1(-2 * tau)) * score(x, tau), t, x, generator=g).prev_sample
        assert torch.allclose(x, states[k], atol=1e-10), k
    assert len(states) == 25


@pytest.mark.parametrize("name", ["default", "dpm_solver_pp_2m", "dpm_solver_pp_1", "unipc_2", "unipc_3"])
@pytest.mark.parametrize("nfe", [3, 10, 20])
def test_plan_scheduler_matches_the_library_step_for_step(name, nfe, gen):
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    sched = PlanScheduler(plan_sampler=name)
    sched.set_timesteps(nfe)
    plan = sched.plan
    want = sg.default_plan(nfe, t_range=sched.ou_range)
    assert torch.equal(plan.grid, want.grid) and plan.evaluations == nfe == len(sched.timesteps)
    assert plan.sampler == (want.sampler if name == "default" else getattr(sg.samplers, name))
    x0 = OU.prior_sample(200, 2, generator=gen)
    states = []
    plan.sampler(score, x0, plan.grid, callback=lambda info: states.append(info.x.clone()))
    x = x0.clone()
    for k, t in enumerate(sched.timesteps):
        tau = sched.ou_time(float(t))
        x = sched.step(-math.sqrt(-math.expm1(-2 * tau)) * score(x, tau), t, x).prev_sample
        assert torch.allclose(x, states[k], atol=1e-11, rtol=1e-11), k


def test_step_off_the_schedule(gen):
    """Any timestep of the training range: the EI step goes to the next scheduled time below it;
    the plan scheduler's does too, starting a new (first-order: DDIM) history."""
    x = torch.randn(4, 2, generator=gen)
    eps = torch.randn(4, 2, generator=gen)
    ei = ExponentialIntegratorScheduler()
    ei.set_timesteps(10)
    t = 333.5
    nxt = max(v for v in [*ei.timesteps.tolist(), 0] if v < t)
    h = ei.ou_time(t) - ei.ou_time(nxt)
    s = -eps / math.sqrt(-math.expm1(-2 * ei.ou_time(t)))
    g = torch.Generator().manual_seed(1)
    noise = sg.samplers.base.standard_normal_(torch.empty_like(x), torch.Generator().manual_seed(1))
    want = math.exp(h) * x + 2 * math.expm1(h) * s + math.sqrt(math.expm1(2 * h)) * noise
    assert torch.allclose(ei.step(eps, t, x, generator=g).prev_sample, want, atol=1e-12)
    with pytest.raises(ValueError, match="where the schedule ends"):
        ei.step(eps, 0, x)
    with pytest.raises(ValueError, match="outside the training range"):
        ei.step(eps, 1000, x)

    ps = PlanScheduler()
    ps.set_timesteps(10)
    ps.step(eps, ps.timesteps[0], x)  # a history exists now
    tau = ps.ou_time(t)
    tn = max(v for v in ps.plan.grid.tolist() if v < tau)
    a, sg_, an, sn = math.exp(-tau), math.sqrt(-math.expm1(-2 * tau)), math.exp(-tn), math.sqrt(-math.expm1(-2 * tn))
    ddim = an * (x - sg_ * eps) / a + sn * eps
    assert torch.allclose(ps.step(eps, t, x).prev_sample, ddim, atol=1e-12)


def test_a_timestep_cast_to_float32_is_still_the_scheduled_one(gen):
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    x0 = OU.prior_sample(50, 2, generator=gen)
    outs = []
    for cast in (torch.float64, torch.float32):
        sched = PlanScheduler()
        sched.set_timesteps(10)
        x = x0.clone()
        for t in sched.timesteps:
            tau = sched.ou_time(float(t))
            x = sched.step(-math.sqrt(-math.expm1(-2 * tau)) * score(x, tau), t.to(cast), x).prev_sample
        outs.append(x)
    assert torch.allclose(outs[0], outs[1], atol=1e-12)


def test_bad_steps_and_timesteps(gen):
    x = torch.randn(2, 2, generator=gen)
    for cls in SCHEDULERS:
        sched = cls()
        with pytest.raises(ValueError, match="call set_timesteps"):
            sched.step(x, 500, x)
        with pytest.raises(ValueError, match="num_inference_steps must be an integer"):
            sched.set_timesteps(0)
        with pytest.raises(ValueError, match="num_inference_steps must be an integer"):
            sched.set_timesteps(2.5)
        with pytest.raises(ValueError, match="not both"):
            sched.set_timesteps(5, timesteps=[900, 500, 100])
        sched.set_timesteps(timesteps=[900, 500.5, 100])
        assert len(sched.timesteps) == 3
        with pytest.raises(ValueError, match="one timestep for the whole batch"):
            sched.step(x, torch.tensor([500, 400]), x)
        with pytest.raises(TypeError, match="timestep must be a number"):
            sched.step(x, "500", x)
        with pytest.raises(TypeError, match="model_output must be a tensor"):
            sched.step(x.numpy(), 500, x)
        with pytest.raises(TypeError, match="sample must be a floating tensor"):
            sched.step(x, 500, x.long())
        nan = x.clone()
        nan[0, 1] = float("nan")
        with pytest.raises(FloatingPointError, match="the model's output has 1 NaN or infinite values"):
            sched.step(nan, 500, x)
        with pytest.raises(FloatingPointError, match="sample has 4 NaN or infinite values"):
            sched.step(x, 500, torch.full_like(x, float("inf")))
    with pytest.raises(ValueError, match="timesteps must decrease strictly"):
        ExponentialIntegratorScheduler().set_timesteps(timesteps=[500, 900])
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 999\]"):
        PlanScheduler().set_timesteps(timesteps=[1500, 100])


# -- plans as schedulers -----------------------------------------------------------------------------
def test_a_tuned_plan_as_a_scheduler(tmp_path, gen):
    """A plan tuned by sg.tune for the model's range, saved, loaded into a scheduler, saved with the
    pipeline's config and loaded again: the same plan, run step for step."""
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    probe = PlanScheduler()
    tuned = sg.tune(score, 2, 6, n_pilot=64, max_trials=12, generator=gen, t_range=probe.ou_range,
                    reference_steps=64)
    path = tuned.save(tmp_path / "plan.json")
    sched = PlanScheduler.from_plan(path, beta_schedule="linear")
    sched.save_pretrained(tmp_path / "sched")
    again = PlanScheduler.from_pretrained(tmp_path / "sched")
    again.set_timesteps(6)
    assert torch.equal(again.plan.grid, tuned.grid) and again.plan.sampler == tuned.sampler
    with pytest.raises(ValueError, match="call the pipeline with num_inference_steps=6"):
        again.set_timesteps(50)
    again.set_timesteps(None)
    x0 = OU.prior_sample(100, 2, generator=gen)
    assert torch.allclose(run_scheduler(again, score, x0), tuned.sampler(score, x0, tuned.grid), atol=1e-11)
    # a plan beyond the model's range is refused, naming the way out
    wide = sg.tune(score, 2, 4, n_pilot=32, max_trials=6, generator=gen, reference_steps=32)
    if wide.grid[0] > probe.ou_range[1]:
        with pytest.raises(ValueError, match="t_range=scheduler.ou_range"):
            PlanScheduler.from_plan(wide)


def test_score_of_a_model_is_its_score(gen):
    q = sg.targets.anisotropic_gaussian(4, cond=3.0)
    for kind in ("epsilon", "v_prediction", "sample"):
        sched = PlanScheduler(prediction_type=kind)
        model = _exact_unet(q, sched)
        s = sched.score_of(model, (1, 2, 2))
        x = torch.randn(10, 4, generator=gen)
        for tau in (0.01, 1.0, 4.0):
            assert torch.allclose(s(x, tau), sg.scores.exact(q)(x, tau), rtol=1e-8, atol=1e-8 / tau)
        with pytest.raises(ValueError, match="outside the model's training range"):
            s(x, 8.0)


# -- in a real pipeline ------------------------------------------------------------------------------
class ExactUNet(ModelMixin, ConfigMixin):
    """A stand-in for a UNet2DModel whose output is the exact prediction of a Gaussian target's noised
    law (images of shape (channels, size, size) flattened to the target's dimension)."""

    @register_to_config
    def __init__(self, in_channels: int = 1, sample_size: int = 2):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def set(self, q, sched):
        self.q, self.sched = q, sched
        return self

    def forward(self, sample, timestep):
        t = float(torch.as_tensor(timestep).flatten()[0])
        tau = self.sched.ou_time(t)
        x = sample.reshape(sample.shape[0], -1).double()
        preds, _ = _gaussian_predictions(self.q, x, tau)
        out = preds[self.sched.config.prediction_type].reshape(sample.shape).to(sample.dtype)
        return type("Out", (), {"sample": out})()


def _exact_unet(q, sched):
    return ExactUNet(in_channels=1, sample_size=2).set(q, sched).to(torch.float64)


def _unet():
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4).to(torch.float32)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_in_a_ddpm_pipeline(cls, tmp_path):
    """Every sgmlab scheduler in diffusers' DDPMPipeline with a small UNet2DModel: float32 and float16,
    batches, lists of generators, save_pretrained / from_pretrained."""
    pipe = DDPMPipeline(unet=_unet(), scheduler=cls())
    pipe.set_progress_bar_config(disable=True)
    a = pipe(batch_size=2, num_inference_steps=5, output_type="np",
             generator=[torch.Generator().manual_seed(s) for s in (0, 1)]).images
    b = pipe(batch_size=1, num_inference_steps=5, output_type="np", generator=torch.Generator().manual_seed(1)).images
    assert a.shape == (2, 8, 8, 1) and np.isfinite(a).all()
    assert np.allclose(a[1], b[0], atol=1e-4)  # sample 1 of the batch: generator 1's draws (float32 UNet, batched)
    pipe.save_pretrained(tmp_path / "pipe")
    again = DDPMPipeline.from_pretrained(tmp_path / "pipe", torch_dtype=torch.float32)
    again.set_progress_bar_config(disable=True)
    def public(c):
        return {k: v for k, v in c.items() if k != "_use_default_values"}

    assert type(again.scheduler) is cls and public(again.scheduler.config) == public(pipe.scheduler.config)
    c = again(batch_size=2, num_inference_steps=5, output_type="np",
              generator=[torch.Generator().manual_seed(s) for s in (0, 1)]).images
    assert np.allclose(a, c, atol=1e-6)
    half = DDPMPipeline(unet=_unet().to(torch.float16), scheduler=cls())
    half.set_progress_bar_config(disable=True)
    h = half(batch_size=2, num_inference_steps=5, output_type="pt", generator=torch.Generator().manual_seed(0)).images
    assert h.dtype == torch.float16 and torch.isfinite(h).all()


def test_swapping_into_a_pipeline_keeps_its_training_config():
    """from_config of a pipeline's DDPM scheduler: the schedule and prediction type carried over exactly."""
    ddpm = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False)
    pipe = DDPMPipeline(unet=_unet(), scheduler=ddpm)
    pipe.scheduler = PlanScheduler.from_config(pipe.scheduler.config)
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    assert torch.equal(pipe.scheduler.alphas_cumprod, ddpm.alphas_cumprod)
    with pytest.raises(ValueError, match="rescale_betas_zero_snr"):
        PlanScheduler.from_config(DDPMScheduler(rescale_betas_zero_snr=True).config)


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction"])
def test_the_plan_in_diffusers_loop_reproduces_the_library(kind):
    """Driven by an exact score in DDPMPipeline (float64), the plan scheduler's output is the library
    sampler's on the plan from the pipeline's own initial noise."""
    q = sg.targets.Gaussian(torch.full((4,), 0.1), 0.04 * torch.eye(4))  # inside [-1, 1]: the pipeline's clamp is idle
    sched = PlanScheduler(prediction_type=kind)
    pipe = DDPMPipeline(unet=_exact_unet(q, sched), scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(batch_size=64, num_inference_steps=12, output_type="pt", generator=torch.Generator().manual_seed(0))
    images = out.images.reshape(64, 4)
    from diffusers.utils.torch_utils import randn_tensor

    x0 = randn_tensor((64, 1, 2, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64).reshape(64, 4)
    plan = sched.plan
    want = plan.sampler(sg.scores.exact(q), x0, plan.grid)
    assert torch.allclose((images.double() - 0.5) * 2, want, atol=1e-12)
