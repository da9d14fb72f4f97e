"""Learning the score: the DSM loss's minimum, training that reduces the measured score error,
checkpoints (bitwise round trip, exact resume, crash safety), DDP equals single-process, data
loading and bad input."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg
from sgmlab.learn import (TrainConfig, dsm_constant, dsm_loss, load_data, load_model, read_checkpoint, sample_times,
                          score_error, standardized_target, time_weights, train)
from sgmlab.learn import parametrization as param

from helpers import random_gaussian, z_threshold

OU = sg.processes.OU()
SMALL = dict(hidden=32, depth=2, batch_size=128, eval_every=10, checkpoint_every=10)


class Exact(torch.nn.Module):
    """The exact score of a Gaussian target as a module with the ScoreModel signature (one time per row)."""

    def __init__(self, q):
        super().__init__()
        self.lam, self.U = torch.linalg.eigh(q.cov)
        self.m = q.mean

    def forward(self, x, t):
        tau = OU.ou_time(t)[:, None]
        lam_t = torch.exp(-2 * tau) * self.lam + (-torch.expm1(-2 * tau))
        y = (x - torch.exp(-tau) * self.m) @ self.U
        return -(y / lam_t) @ self.U.T


@pytest.mark.parametrize("sampling", ["uniform", "log-uniform", "log-normal"])
def test_dsm_loss_at_the_exact_score_is_its_constant(sampling, gen):
    """E w(t)|s* + z/sigma|^2 = avg_t [d/sigma_t^2 - tr(Sigma_t^{-1})]: the exact score attains the
    known minimum, so it minimises the loss."""
    q = random_gaussian(2, gen)
    T, delta, n = 2.0, 0.05, 4000
    x0 = q.sample(n, generator=gen)
    t = sample_times(n, T, delta, sampling, gen)
    z = torch.randn(n, 2, generator=gen)
    w = time_weights(t, T, delta, sampling, "a3", OU)
    loss = dsm_loss(Exact(q), x0, t, z, w, OU)
    const = dsm_constant(q, OU, T, delta)
    assert abs(float(loss.mean()) - const) < z_threshold(1e-3, 2) * float(loss.std()) / math.sqrt(n)


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-3, 5.0), st.sampled_from(["uniform", "log-uniform", "log-normal"]),
       st.sampled_from(["ou", "vp-linear"]))
def test_the_noise_weightings_are_the_a3_weights_times_their_factor(t, sampling, process):
    """"eps": sigma_t^2 times the A3 weight, so the loss is |eps_hat - z|^2 (DDPM's); "min-snr":
    that times min(SNR, 5) / SNR with SNR = a_t^2 / sigma_t^2 (Hang et al. 2023); "edm" under
    log-normal times: sigma_t^2 / a_t^2, so the loss is |v_hat - v|^2 (Karras et al. 2022)."""
    from sgmlab.learn.train import vp_family

    proc = vp_family(process)
    T = 5.0 if process == "ou" else 1.0
    tt = torch.tensor([min(t, T)], dtype=torch.float64)
    a3, eps, msnr = (time_weights(tt, T, 1e-3, sampling, w, proc) for w in ("a3", "eps", "min-snr"))
    tau = float(proc.ou_time(tt))
    s2 = -math.expm1(-2 * tau)
    snr = math.exp(-2 * tau) / s2
    assert float(eps) == pytest.approx(float(a3) * s2, rel=1e-12)
    assert float(msnr) == pytest.approx(float(a3) * s2 * min(snr, 5.0) / snr, rel=1e-12)
    if sampling == "log-normal":  # EDM's loss: the importance weight cancels the density, leaving sigma^2 / a^2
        edm = time_weights(tt, T, 1e-3, sampling, "edm", proc)
        assert float(edm) == pytest.approx(s2 * math.exp(2 * tau), rel=1e-10)


def test_the_log_normal_time_density_integrates_to_one():
    """time_weights' density for log-normal times is a density on [delta, T] (quadrature to 1e-8),
    and the sampled times follow it (Kolmogorov-Smirnov at p = 1e-3)."""
    from scipy import integrate, stats

    T, delta = 5.0, 1e-3
    one = lambda t: 1.0 / (float(time_weights(torch.tensor([t]), T, delta, "log-normal", "a3", OU)) * (T - delta))  # noqa: E731
    total, _ = integrate.quad(one, delta, T, points=[0.01, 0.1, 0.5, 1.0], limit=200)
    assert abs(total - 1) < 1e-8
    t = sample_times(20_000, T, delta, "log-normal", torch.Generator().manual_seed(0))
    cdf = lambda v: integrate.quad(one, delta, min(max(v, delta), T), limit=200)[0]  # noqa: E731
    grid = np.quantile(t.numpy(), np.linspace(0.01, 0.99, 40))
    emp = np.array([(t.numpy() <= g).mean() for g in grid])
    assert np.abs(emp - np.array([cdf(g) for g in grid])).max() < stats.kstwo.ppf(1 - 1e-3, 20_000)


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(param.PARAMETRIZATIONS), t=st.floats(1e-3, 5.0), seed=st.integers(0, 1000))
def test_parametrizations_round_trip(kind, t, seed):
    g = torch.Generator().manual_seed(seed)
    x, s = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    a, sigma = torch.tensor(math.exp(-t)), torch.tensor(math.sqrt(-math.expm1(-2 * t)))
    back = param.to_score(kind, param.from_score(kind, s, x, a, sigma), x, a, sigma)
    assert torch.allclose(back, s, atol=1e-9 * (1 + 1 / float(sigma) ** 2))


def test_training_brings_the_measured_score_error_down(gen):
    """Threshold: time-averaged eps_score^2 below 0.01 (standardized coordinates) after 1500 steps
    on a 2-D Gaussian; the untrained network is above 0.5."""
    q = sg.targets.Gaussian([1.0, -2.0], [[1.0, 0.6], [0.6, 0.8]])
    data = q.sample(20_000, generator=gen)
    grid = sg.grids.uniform(5.0, 1e-2, 20)
    before = train(data, TrainConfig(steps=1, lr=1e-9, hidden=64, eval_every=1))
    res = train(data, TrainConfig(steps=1500, hidden=64, eval_every=500, T=5.0, delta=1e-2))
    target = standardized_target(q, res.standardizer)
    e0 = score_error(before.model.score_fn(), target, grid, generator=gen).time_average
    e1 = score_error(res.model.score_fn(), target, grid, generator=gen)
    assert e0 > 0.5 and e1.time_average < 0.01, (e0, e1.time_average)
    assert [h["step"] for h in res.history] == [500, 1000, 1500]


def test_checkpoint_round_trip_is_bitwise(tmp_path, gen):
    data = sg.targets.mixture2d().sample(500, generator=gen)
    res = train(data, TrainConfig(steps=20, **SMALL), out=tmp_path)
    loaded = load_model(tmp_path)
    for (k, a), (_, b) in zip(res.model.net.state_dict().items(), loaded.model.net.state_dict().items()):
        assert torch.equal(a, b), k
    assert torch.equal(loaded.standardizer.mean, res.standardizer.mean) and loaded.config == res.config
    tensors, meta = read_checkpoint(tmp_path)
    assert meta["step"] == "20" and "rng" in tensors


@pytest.mark.parametrize("kind", ["mlp", "vector", "image"])
def test_resume_equals_an_uninterrupted_run_and_a_crash_loses_nothing(kind, tmp_path, gen):
    """The MLP, the vector recipe (stable target), and the image recipe (U-Net with attention,
    VP-linear, noise MSE, the stable target, cosine schedule, clipping): a run crashed after its
    checkpoint at step 20 and resumed equals the uninterrupted run bitwise."""
    if kind == "mlp":
        data, config = sg.targets.mixture2d().sample(500, generator=gen), TrainConfig(steps=40, **SMALL)
    elif kind == "vector":  # the vector recipe: its stable target draws reference rows from the generator
        data = sg.targets.mixture2d().sample(500, generator=gen)
        config = sg.learn.recipe(hidden=16, batch_size=32, reference=96, steps=40, eval_every=10, checkpoint_every=10)
    else:
        data = torch.rand(60, 16, generator=gen, dtype=torch.float64)
        config = sg.learn.recipe((4, 4), hidden=8, batch_size=32, steps=40, eval_every=10, checkpoint_every=10)
    straight = train(data, config, out=tmp_path / "a")

    def crash(info):
        if info.step == 25:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        train(data, config, out=tmp_path / "b", callback=crash)
    _, meta = read_checkpoint(tmp_path / "b")
    assert meta["step"] == "20"  # the last checkpoint before the crash is intact
    assert not [p for p in (tmp_path / "b").iterdir() if p.name.endswith(".tmp")]
    resumed = train(data, config, out=tmp_path / "b", resume=True)
    for (k, a), b in zip(straight.model.net.state_dict().items(), resumed.model.net.state_dict().values()):
        assert torch.equal(a, b), k
    assert straight.history == resumed.history and load_model(tmp_path / "b").config == config


def test_ctrl_c_checkpoints_the_step_it_arrived_in_and_resume_is_exact(tmp_path, gen):
    """A SIGINT during step 7 (checkpoints every 10) is held until the step is complete; that step is
    then checkpointed and KeyboardInterrupt raised, and resuming gives the uninterrupted run bitwise.
    The handler is gone afterwards."""
    import signal

    data = sg.targets.mixture2d().sample(500, generator=gen)
    config = TrainConfig(steps=30, **SMALL)
    straight = train(data, config, out=tmp_path / "a")
    before = signal.getsignal(signal.SIGINT)

    def ctrl_c(info):
        if info.step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt, match="interrupted after step 7"):
        train(data, config, out=tmp_path / "b", callback=ctrl_c)
    assert signal.getsignal(signal.SIGINT) is before
    assert read_checkpoint(tmp_path / "b")[1]["step"] == "7"  # not the periodic one at 0: there is none before 10
    resumed = train(data, config, out=tmp_path / "b", resume=True)
    for a, b in zip(straight.model.net.state_dict().values(), resumed.model.net.state_dict().values()):
        assert torch.equal(a, b)
    assert straight.history == resumed.history


@pytest.mark.parametrize("kind", ["mlp", "image"])
def test_ddp_with_two_processes_equals_single_process_training(kind, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", str(Path(__file__).parent / "ddp_worker.py"), str(out), kind]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out)
    sys.path.insert(0, str(Path(__file__).parent))
    from ddp_worker import setup

    single = train(*setup(kind))
    if kind == "mlp":
        for k, v in single.model.net.state_dict().items():
            assert torch.allclose(ddp[k], v, rtol=1e-4, atol=1e-6), k
    # the functions agree; a U-Net's weights need not (a bias right before a one-channel group norm has a
    # gradient of pure rounding, which Adam scales to full steps: 1 or 2 threads already differ there)
    probe = copy.deepcopy(single.model)
    probe.net.load_state_dict(ddp)
    x = torch.randn(64, single.standardizer.mean.shape[0], generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0.01, 0.9, 64, dtype=torch.float64)
    with torch.no_grad():
        a, b = single.model.net(x.float(), t.float()), probe.net(x.float(), t.float())
    assert float((a - b).abs().max()) < 1e-4 * float(a.abs().max())


def test_data_sources(tmp_path):
    digits = load_data("digits")
    assert digits.x.shape == (1797, 64) and digits.image_shape == (8, 8) and digits.standardize == "global"
    assert load_data("wine").x.shape == (178, 13)
    assert load_data("ring", n=100).target is not None
    np.save(tmp_path / "a.npy", np.arange(12.0).reshape(6, 2))
    assert load_data(str(tmp_path / "a.npy")).x.shape == (6, 2)
    (tmp_path / "a.csv").write_text("u,v,w\n1,2,3\n4,5,6\n")
    assert load_data(str(tmp_path / "a.csv"), columns=["w", "u"]).x.tolist() == [[3.0, 1.0], [6.0, 4.0]]


def test_standardization_is_undone_on_sampling(tmp_path, gen):
    data = torch.randn(3000, 2, generator=gen) * torch.tensor([50.0, 0.01]) + torch.tensor([1000.0, -3.0])
    res = train(data, TrainConfig(steps=300, **{**SMALL, "eval_every": 300}))
    x = sg.samplers.exponential_integrator(res.model.score_fn(), OU.prior_sample(4000, 2, generator=gen),
                                           sg.grids.uniform(5.0, 1e-3, 50), generator=gen)
    x = res.standardizer.inverse(x)
    assert abs(float(x[:, 0].mean()) - 1000) < 10 and abs(float(x[:, 1].mean()) + 3) < 0.01


def test_learn_bad_input(tmp_path, gen):
    with pytest.raises(ValueError, match="data contains NaN"):
        train(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), TrainConfig(steps=1))
    with pytest.raises(ValueError, match="data is empty"):
        train(torch.zeros(0, 2), TrainConfig(steps=1))
    with pytest.raises(ValueError, match="data must have 2 dimension"):
        train(torch.zeros(5), TrainConfig(steps=1))
    with pytest.raises(ValueError, match=r"net must be one of \('mlp', 'unet8', 'unet'\)"):
        TrainConfig(net="transformer")
    with pytest.raises(ValueError, match="UNet8 works on 8x8 images"):
        train(torch.randn(10, 3), TrainConfig(net="unet8", steps=1))
    with pytest.raises(ValueError, match="needs image_shape for d = 3"):
        train(torch.randn(10, 3), TrainConfig(net="unet", steps=1))
    with pytest.raises(ValueError, match=r"image shape \(2, 2\) does not hold d = 3 pixels"):
        train(torch.randn(10, 3), TrainConfig(net="unet", image_shape=(2, 2), steps=1))
    for bad in ((0, 3), (2,), (2.5, 2), "ab"):
        with pytest.raises(ValueError, match="image_shape must be two positive integers"):
            TrainConfig(net="unet", image_shape=bad)
    with pytest.raises(ValueError, match="weighting must be one of"):
        TrainConfig(weighting="snr")
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="adam_beta1"):
            TrainConfig(adam_beta1=bad)
    (tmp_path / "a.csv").write_text("u,v\n1,2\n3,\n")
    with pytest.raises(ValueError, match="missing value at row 3, column 'v'"):
        load_data(str(tmp_path / "a.csv"))
    with pytest.raises(ValueError, match=r"unknown column\(s\) \['z'\]"):
        load_data(str(tmp_path / "a.csv"), columns=["z"])
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ValueError, match="the file is empty"):
        load_data(str(tmp_path / "e.csv"))
    with pytest.raises(ValueError, match="unknown data 'nope'"):
        load_data("nope")
    # corrupted and truncated checkpoints
    data = sg.targets.mixture2d().sample(300, generator=gen)
    train(data, TrainConfig(steps=10, **SMALL), out=tmp_path / "m")
    ck = tmp_path / "m" / "checkpoint.safetensors"
    raw = ck.read_bytes()
    ck.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        load_model(tmp_path / "m")
    ck.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="corrupted or truncated"):
        load_model(tmp_path / "m")
    with pytest.raises(ValueError, match="no checkpoint"):
        load_model(tmp_path / "nothing")
    # resuming with other data or another config is refused
    train(data, TrainConfig(steps=10, **SMALL), out=tmp_path / "r")
    with pytest.raises(ValueError, match="data differs"):
        train(data + 1, TrainConfig(steps=20, **SMALL), out=tmp_path / "r", resume=True)


@pytest.mark.parametrize("process", ["vp-linear", "vp-cosine"])
def test_vp_training_and_sampling(process, tmp_path, gen):
    """The same DSM under a VP process (times in its own clock): a short run reduces the eval loss,
    and the model samples through `sample_model` with that process."""
    from sgmlab.experiments.learned import sample_model

    data = sg.targets.mixture2d().sample(3000, generator=gen)
    T = 0.99 if process == "vp-cosine" else 1.0
    res = train(data, TrainConfig(steps=200, T=T, process=process, **{**SMALL, "eval_every": 100}), out=tmp_path)
    assert res.history[-1]["eval_loss"] < res.history[0]["eval_loss"] * 1.5
    x, m, _ = sample_model(tmp_path, steps=10, n=200)
    assert x.shape == (200, 2) and torch.isfinite(x).all() and m["T"] == T
    with pytest.raises(ValueError, match="beyond the range"):
        TrainConfig(process=process, T=5.0)


@pytest.mark.parametrize("process", ["ou", "vp-linear"])
def test_a_trained_model_samples_in_data_units(process, gen):
    from sgmlab.learn import TrainConfig, train

    data = 3.0 + 2.0 * sg.targets.mixture2d().sample(2000, generator=gen)
    res = train(data, TrainConfig(steps=60, hidden=32, depth=2, process=process, T=0.99 if process != "ou" else 5.0))
    x = res.sample(500, nfe=10, generator=torch.Generator().manual_seed(5))
    assert x.shape == (500, 2) and torch.isfinite(x).all() and x.dtype == torch.float32  # the network's precision
    # the recipe by hand: sg.sample on the model's score with the trained default inside the trained range
    vp = process != "ou"
    proc = sg.processes.VP(sg.processes.LinearBeta()) if vp else sg.processes.OU()
    lo, hi = float(proc.ou_time(res.config.delta)), float(proc.ou_time(res.config.T))
    plan = sg.default_plan(10, t_range=(lo, hi), trained=True)  # standardize='feature', the default
    if vp:
        plan = plan._replace(grid=torch.cat([proc.time_from_ou(plan.grid[:-1]).double(), plan.grid[-1:]]))
    z = sg.sample(res.model.score_fn(), 500, 2, nfe=10, plan=plan, process=proc,
                  generator=torch.Generator().manual_seed(5), dtype=torch.float32)
    assert torch.equal(x, res.standardizer.inverse(z))
    z64 = sg.sample(res.model.score_fn(), 500, 2, nfe=10, plan=plan, process=proc,
                    generator=torch.Generator().manual_seed(5))
    assert z64.dtype == torch.float64
    assert float(x.mean()) > 1.0  # data units (the data's mean is about 3), not standardized ones


def test_image_files_are_image_data(tmp_path):
    """A .npy of (N, H, W) or (N, 1, H, W) images, or a table with --image-shape, is standardized
    globally (a nearly constant pixel is not blown up) and gets the U-Net of its shape (8x8 or not)
    and the image recipe; a table stays per column with the MLP; a shape that does not fit is refused."""
    from sgmlab.experiments.learned import DataSpec, run_training
    from sgmlab.learn import load_data

    g = np.random.default_rng(0)
    imgs = g.uniform(0, 16, size=(40, 8, 8))
    imgs[:, 0, 0] = 3.0 + 0.02 * g.standard_normal(40)  # a pixel with std 0.02
    np.save(tmp_path / "imgs.npy", imgs)
    np.save(tmp_path / "imgs4.npy", imgs[:, None])
    np.save(tmp_path / "flat.npy", imgs.reshape(40, 64))
    for name, shape in (("imgs.npy", None), ("imgs4.npy", None), ("flat.npy", (8, 8))):
        d = load_data(str(tmp_path / name), image_shape=shape)
        assert d.image_shape == (8, 8) and d.standardize == "global" and d.x.shape == (40, 64)
    assert load_data(str(tmp_path / "flat.npy")).standardize == "feature"  # a table, unless told
    with pytest.raises(ValueError, match="not images of 7x9"):
        load_data(str(tmp_path / "flat.npy"), image_shape=(7, 9))
    with pytest.raises(ValueError, match="holds images of 8x8"):
        load_data(str(tmp_path / "imgs.npy"), image_shape=(4, 16))
    res = run_training(DataSpec(str(tmp_path / "imgs.npy")), dict(steps=2, eval_every=2, checkpoint_every=2),
                       tmp_path / "run", say=lambda m: None)
    cfg = res.result.config
    assert (cfg.net, cfg.image_shape, cfg.standardize, cfg.process, cfg.weighting) == (
        "unet", (8, 8), "global", "vp-linear", "eps")
    z = res.result.standardizer.forward(torch.as_tensor(imgs.reshape(40, 64)))
    assert float(z.abs().max()) < 10  # per-pixel scaling would give |z| up to about 300 at the quiet pixel
    np.save(tmp_path / "odd.npy", g.uniform(0, 1, size=(30, 5, 7)))
    res = run_training(DataSpec(str(tmp_path / "odd.npy")), dict(steps=2, eval_every=2), tmp_path / "odd",
                       say=lambda m: None)
    assert (res.result.config.net, res.result.config.image_shape) == ("unet", (5, 7))
    assert res.result.sample(3, nfe=4).shape == (3, 35)
    res = run_training(DataSpec(str(tmp_path / "flat.npy")), dict(steps=2, eval_every=2), tmp_path / "table",
                       say=lambda m: None)
    assert (res.result.config.net, res.result.config.standardize, res.result.config.weighting) == (
        "mlp", "feature", "a3")


def test_models_from_before_the_log_embedding_load_and_resume_as_trained(tmp_path, gen):
    """New models use the log-spaced time embedding (benchmarks/recipe_ablation.md); a checkpoint whose
    config predates the field is read as "v1", its frequencies come from its own weights, and
    `sgmlab train --resume` (which offers no --embedding) continues it with the embedding it has."""
    import json

    from sgmlab.experiments.learned import DataSpec, run_training
    from sgmlab.learn.networks import FourierEmbedding
    from sgmlab.learn.train import saved_config

    assert TrainConfig().embedding == "log"
    newer = ("embedding", "image_shape", "adam_beta1")  # fields added since the first checkpoints
    meta = {"config": json.dumps({k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k not in newer})}
    old = saved_config(meta)
    assert (old.embedding, old.image_shape, old.adam_beta1) == ("v1", None, 0.9)
    choices = dict(steps=4, eval_every=2, checkpoint_every=2, hidden=16, depth=1)
    run_training(DataSpec("mixture2d", n=200), {**choices, "embedding": "v1"}, tmp_path / "old", say=lambda m: None)
    res = run_training(DataSpec("mixture2d", n=200), {**choices, "steps": 6}, tmp_path / "old", resume=True,
                       say=lambda m: None)
    assert res.result.config.embedding == "v1"
    assert torch.equal(load_model(tmp_path / "old").model.net.embed.freqs, FourierEmbedding(16, "v1").freqs)


def test_the_default_recipe_follows_the_data():
    """sgmlab train's recipe: images get the U-Net recipe, tables the MLP on the paper's objective;
    a choice overrides it, another process drops the recipe's times and weighting, another network
    takes its own sizes."""
    from sgmlab.learn.train import recipe

    img = recipe((8, 8))
    assert (img.net, img.hidden, img.depth, img.process, img.T, img.weighting, img.image_shape) == (
        "unet", 32, 1, "vp-linear", 1.0, "eps", (8, 8))
    assert (img.lr, img.adam_beta1, img.batch_size, img.steps) == (4e-3, 0.95, 128, 8000)
    vec = recipe()
    assert (vec.net, vec.weighting, vec.process, vec.time_sampling, vec.batch_size, vec.lr_schedule, vec.clip) == (
        "mlp", "a3", "ou", "log-uniform", 256, "cosine", 1.0)
    assert (vec.reference, vec.warmup, vec.adam_beta1, img.reference, img.warmup) == (1024, 500, 0.95, 1024, None)
    cld = recipe((8, 8), process="cld", net="mlp")
    assert (cld.weighting, cld.T, cld.hidden, cld.depth) == ("a3", 5.0, 128, 3)
    assert recipe(process="cld").reference == 0 and recipe(process="vp-linear").reference == 1024
    assert recipe((8, 8), net="unet8").hidden == 32 and recipe((8, 8), lr=1e-3).lr == 1e-3
    assert recipe(process="vp-cosine").T == 0.999 and recipe(process="vp-linear", T=0.5).T == 0.5
    # the vector recipe's 500 warm-up steps are at most a tenth of a short run; a warm-up asked for is kept
    assert recipe().warmup == 500 and recipe(steps=1000).warmup == 100 and recipe(steps=9).warmup == 0
    assert recipe(steps=1000, warmup=700).warmup == 700 and recipe((8, 8), steps=1000).warmup is None


def test_the_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    from sgmlab.learn.train import cosine_factor

    steps = 1000
    f = [cosine_factor(k, steps) for k in range(steps)]
    assert f[:50] == [(k + 1) / 50 for k in range(50)]  # 5% warm-up
    assert f[50] == 1.0 and all(a >= b for a, b in zip(f[50:], f[51:])) and f[-1] < 1e-4
    assert cosine_factor(0, 10) == 1.0  # a warm-up of one step
    g = [cosine_factor(k, steps, warmup=200) for k in range(steps)]
    assert g[:200] == [(k + 1) / 200 for k in range(200)] and g[200] == 1.0 and g[-1] < 1e-4
    assert cosine_factor(0, 10, warmup=0) == 1.0 and cosine_factor(9, 10, warmup=50) == 1.0  # capped at the steps


@settings(max_examples=25, deadline=None)
@given(t=st.floats(1e-3, 5.0), n=st.integers(2, 6), d=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_the_stable_target_is_the_noise_posterior_mean_of_the_reference(t, n, d, seed):
    """With the reference rows as the data law (an empirical law, whose noised scores are exact),
    the stable target is E[z | x_t] = -sigma_t * score of q_t at x_t, for each row's own x0 among
    them; with x0 its only reference row it is z itself, bitwise."""
    from sgmlab.learn.loss import stable_target

    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(n, d, generator=g, dtype=torch.float64)
    x0, z = ref[torch.randint(n, (7,), generator=g)], torch.randn(7, d, generator=g, dtype=torch.float64)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))
    col = lambda v: torch.full((7, 1), v, dtype=torch.float64)  # noqa: E731
    got = stable_target(x0, z, col(a), col(s), ref)
    exact = -s * OU.marginal(sg.targets.Empirical(ref), t).score(a * x0 + s * z)
    assert torch.allclose(got, exact, rtol=1e-9, atol=1e-9 * (1 + float(exact.abs().max())))
    for i in range(7):
        assert torch.equal(stable_target(x0[i:i + 1], z[i:i + 1], col(a)[:1], col(s)[:1], x0[i:i + 1]), z[i:i + 1])


def test_the_stable_target_keeps_the_gradient_and_lowers_its_variance():
    """At a high noise level, with the data itself as the reference, the stable target gives the
    plain target's gradient in mean (their difference has conditional mean 0 given x_t) and a far
    smaller per-sample spread near the optimum. The gradient of the loss with respect to a shift of the score is the
    residual s(x_t) + target / sigma, measured here per coordinate."""
    from sgmlab.learn.loss import stable_target

    g = torch.Generator().manual_seed(0)
    n, t = 4096, 1.5
    q = sg.targets.builtin("mixture", 4)
    data = q.sample(n, generator=g)
    a, s = math.exp(-t), math.sqrt(-math.expm1(-2 * t))
    z = torch.randn(n, 4, generator=g, dtype=torch.float64)
    xt = a * data + s * z
    score = OU.marginal(q, t).score(xt)  # near the optimum, where the noise of the gradient is all there is
    plain = score + z / s
    stable = score + stable_target(data, z, torch.full((n, 1), a, dtype=torch.float64),
                                   torch.full((n, 1), s, dtype=torch.float64), data) / s
    diff = plain - stable
    assert ((diff.mean(0)).abs() < z_threshold(1e-3, 4) * diff.std(0) / math.sqrt(n)).all()
    assert (stable.var(0) < 0.01 * plain.var(0)).all()  # about 1e-4 here


@pytest.mark.parametrize("bad, error", [
    (dict(reference=-1), ValueError), (dict(reference=1.5), TypeError), (dict(reference=True), TypeError),
    (dict(warmup=-5), ValueError), (dict(warmup=2.0), TypeError),
    (dict(process="cld", reference=64), ValueError),
])
def test_stable_target_and_warmup_settings_are_checked(bad, error):
    with pytest.raises(error, match="reference|warmup"):
        TrainConfig(**bad)


@settings(max_examples=30, deadline=None)
@given(t=st.floats(1e-3, 5.0), n=st.integers(2, 8), d=st.integers(1, 4), scale=st.floats(0.0, 50.0),
       seed=st.integers(0, 2**31))
def test_the_box_brings_every_score_nearer_the_empirical_laws(t, n, d, scale, seed):
    """The data's own empirical law has its denoiser inside the data's box, so projecting a score's
    denoised estimate onto the box moves each coordinate of the score nearer the exact one (never
    away), leaves the exact score as it is, and puts the denoised estimate inside the box."""
    from sgmlab.learn import box_score, data_box

    g = torch.Generator().manual_seed(seed)
    data = torch.randn(n, d, generator=g, dtype=torch.float64)
    qt = OU.marginal(sg.targets.Empirical(data), t)
    x = qt.sample(64, generator=g)
    exact = qt.score(x)
    bad = exact + scale * torch.randn(x.shape, generator=g, dtype=torch.float64)
    boxed = box_score(lambda y, s: bad if y is x else exact, OU, *data_box(data), max_snr=math.inf)
    got = boxed(x, t)
    tol = 1e-9 * (1 + float(exact.abs().max()))
    assert ((got - exact).abs() <= (bad - exact).abs() + tol).all()
    a, var = math.exp(-t), -math.expm1(-2 * t)
    lo, hi = data_box(data)
    d_hat = (x + var * got) / a
    assert (d_hat >= lo - 1e-9).all() and (d_hat <= hi + 1e-9).all()
    y = x.clone()  # another object: the score callable answers the exact score for it
    assert torch.allclose(boxed(y, t), exact, rtol=1e-9, atol=tol)


def test_the_box_acts_only_at_high_noise_and_is_bitwise_inside():
    """At a signal-to-noise ratio above max_snr (4 by default) the score is returned untouched,
    and wherever the denoised estimate lies in the box the score is the same tensor's values,
    bitwise; one range for all columns with "global" (images)."""
    from sgmlab.learn import box_score, data_box
    from sgmlab.learn.model import BOX_MAX_SNR

    data = torch.tensor([[0.0, -1.0], [2.0, 3.0]], dtype=torch.float64)
    assert [b.tolist() for b in data_box(data)] == [[0.0, -1.0], [2.0, 3.0]]
    assert [b.tolist() for b in data_box(data, "global")] == [[-1.0, -1.0], [3.0, 3.0]]
    with pytest.raises(ValueError, match="kind must be"):
        data_box(data, "pixel")
    far = torch.full((3, 2), 40.0, dtype=torch.float64)
    boxed = box_score(lambda x, t: torch.zeros_like(x), OU, *data_box(data))
    t_edge = 0.5 * math.log1p(1 / BOX_MAX_SNR)  # exp(-2t) / (1 - exp(-2t)) = max_snr
    assert torch.equal(boxed(far, 0.9 * t_edge), torch.zeros_like(far))  # more signal than 4:1: off
    a, var = math.exp(-1.1 * t_edge), -math.expm1(-2.2 * t_edge)
    assert torch.allclose((far + var * boxed(far, 1.1 * t_edge)) / a, torch.tensor([[2.0, 3.0]] * 3, dtype=torch.float64))
    inside = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    s = torch.tensor([[0.125, -0.25]], dtype=torch.float64)
    assert torch.equal(box_score(lambda x, t: s, OU, *data_box(data))(inside, 0.5), s)  # estimate (0.96, 0.56)


@pytest.mark.parametrize("lo, hi, max_snr, match", [
    ([1.0, 0.0], [0.0, 1.0], 4.0, "lo <= hi"), ([0.0], [1.0, 2.0], 4.0, "one length"),
    ([float("nan")], [1.0], 4.0, "NaN"), ([[0.0]], [[1.0]], 4.0, "vectors"), ([0.0], [1.0], -1.0, "max_snr"),
    ([0.0], [1.0], float("nan"), "max_snr"),
])
def test_box_bad_input(lo, hi, max_snr, match):
    from sgmlab.learn import box_score

    with pytest.raises(ValueError, match=match):
        box_score(lambda x, t: x, OU, torch.tensor(lo), torch.tensor(hi), max_snr=max_snr)


def test_a_runaway_model_stays_in_the_box_and_models_keep_their_box(tmp_path, gen):
    """A score whose denoised estimate runs away at high noise (as an MLP extrapolating outside its
    data does) sends samples far into the tails; with the box they stay at the data's scale. A
    trained model holds the box of its standardized training data, saves and loads it; a folder
    from before the box loads without one and samples as it did."""
    from sgmlab.learn import box_score, data_box
    from sgmlab.learn.train import CHECKPOINT, save_checkpoint

    data = torch.rand(300, 2, generator=gen, dtype=torch.float64) * 2 - 1
    q = sg.targets.Empirical(data)

    def runaway(x, t):  # pushed outwards at high noise; far from the data, denoised as itself (score 0)
        s = OU.marginal(q, t).score(x)
        return s + 3 * x if t > 0.3 else torch.where(x.abs().amax(1, keepdim=True) > 5, 0.0, s)

    for score, bound in ((runaway, None), (box_score(runaway, OU, *data_box(data)), 1.2)):
        x = sg.sample(score, 2000, 2, nfe=20, generator=torch.Generator().manual_seed(0))
        if bound is None:
            assert x.abs().max() > 20
        else:
            assert x.abs().max() < bound
    res = sg.learn.train(data * 5 + 3, TrainConfig(**{**SMALL, "steps": 4}), out=tmp_path / "m")
    lo, hi = data_box(res.standardizer.forward(data * 5 + 3))
    assert torch.allclose(res.model.box[0], lo) and torch.allclose(res.model.box[1], hi)
    loaded = load_model(tmp_path / "m")
    assert torch.equal(loaded.model.box[0], res.model.box[0]) and torch.equal(loaded.model.box[1], res.model.box[1])
    tensors, meta = read_checkpoint(tmp_path / "m")
    old = {k: v for k, v in tensors.items() if not k.startswith("box.")}
    save_checkpoint(tmp_path / "m" / CHECKPOINT, old, {k: v for k, v in meta.items() if k != "sha256"})
    before = load_model(tmp_path / "m")
    assert before.model.box is None
    g = torch.Generator().manual_seed(1)
    loaded.model.box = None
    assert torch.equal(before.sample(50, generator=g), loaded.sample(50, generator=torch.Generator().manual_seed(1)))


def test_the_theorem_runs_on_a_trained_network_from_the_command_line(tmp_path, capsys):
    """`sgmlab bound --model`: the learned bound (score error measured on each q_t, split from the
    exact score's path KL) beside the samples' error, and clear refusals."""
    import json

    from sgmlab.cli import main

    m = tmp_path / "m"
    assert main(["train", "--data", "mixture2d", "--steps", "30", "--hidden", "16", "--depth", "1", "--n", "2000",
                 "--no-progress", "--out", str(m)]) == 0
    assert main(["bound", "--model", str(m), "--steps", "4", "8", "--grid", "exponential", "--n", "500",
                 "--n-paths", "50", "--no-progress", "--out", str(tmp_path / "b")]) == 0
    assert "Theorem 2 on the model" in capsys.readouterr().out
    rows = json.loads((tmp_path / "b" / "bounds.json").read_text())["rows"]
    assert [r["steps"] for r in rows] == [4, 8]
    for r in rows:
        assert 0 < r["score_error"] <= r["score_error_upper"]  # an undertrained network is off
        assert r["path_kl_upper"] >= r["score_error_upper"] and r["path_kl_upper"] >= r["exact_path_kl"]
        assert 0 < r["tv_bound"] <= 1 and r["kl_bound"] >= r["path_kl_upper"]
        assert {"tv_histogram", "mmd2_small_scales"} <= set(r["measured"])
    assert main(["bound", "--model", str(m), "--target", "ring", "--eps-score", "0.1", "--out", str(tmp_path / "x")]) == 2
    assert "--target, --eps-score describe an exact-score bound" in capsys.readouterr().err
    tensor_model = tmp_path / "t"  # trained on a tensor: no known law to measure the score against
    train(sg.targets.mixture2d().sample(256, generator=torch.Generator().manual_seed(0)),
          TrainConfig(steps=4, **SMALL), out=tensor_model)
    assert main(["bound", "--model", str(tensor_model), "--steps", "4", "--out", str(tmp_path / "y")]) == 2
    assert "needs the law of the model's data" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # refused before any folder is made
