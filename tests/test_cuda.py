"""The CUDA path, where a GPU is present (skipped without one): exact scores, samplers, the CLI's
``--device``, training and resume on a GPU agree with the CPU in float64 to rounding; float32 on
the GPU is float32 on the CPU; torchrun with more processes than GPUs is refused clearly.
``benchmarks/gpu.py`` measures the speed."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import sgmlab as sg
from sgmlab.catalogue import digits_target

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
TIMES = (1e-3, 0.1, 1.0, 5.0)


def _cli(*args, cwd, torchrun: int = 0):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if torchrun:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        head = ["-m", "torch.distributed.run", f"--nproc_per_node={torchrun}", "--master_addr=127.0.0.1",
                f"--master_port={port}", "-m", "sgmlab.cli", "--"]
    else:
        head = ["-m", "sgmlab.cli"]
    return subprocess.run([sys.executable, *head, *args], env=env, capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.mark.parametrize("name", ["mixture16", "digits"])
def test_exact_scores_on_the_gpu_equal_the_cpu_in_float64(name):
    q = sg.targets.builtin("mixture", 16) if name == "mixture16" else digits_target()
    qc = q.to("cuda")
    x = sg.processes.OU().prior_sample(2048, q.dim, generator=torch.Generator().manual_seed(0))
    for t in TIMES:
        cpu, gpu = sg.scores.exact(q)(x, t), sg.scores.exact(qc)(x.cuda(), t)
        assert gpu.device.type == "cuda" and gpu.dtype == torch.float64
        # float64 rounding of a log-sum-exp over the components, relative to the score's size
        assert float((gpu.cpu() - cpu).abs().max()) <= 1e-10 * (1 + float(cpu.abs().max())), t


def test_the_default_plan_on_the_gpu_equals_the_cpu_from_the_same_draws():
    q = sg.targets.builtin("mixture", 16)
    x0 = sg.processes.OU().prior_sample(4096, 16, generator=torch.Generator().manual_seed(1))
    for nfe in (10, 50):
        plan = sg.default_plan(nfe)
        cpu = plan.sampler(sg.scores.exact(q), x0.clone(), plan.grid)
        gpu = plan.sampler(sg.scores.exact(q.to("cuda")), x0.cuda(), plan.grid)
        assert float((gpu.cpu() - cpu).abs().max()) <= 1e-9, nfe
        # float32 on the GPU: as far from float64 as float32 on the CPU is (rounding, not a bug)
        c32 = plan.sampler(sg.scores.exact(q), x0.float(), plan.grid).double()
        g32 = plan.sampler(sg.scores.exact(q.to("cuda")), x0.float().cuda(), plan.grid).double().cpu()
        assert float((g32 - cpu).pow(2).sum(1).mean().sqrt()) <= 3 * float((c32 - cpu).pow(2).sum(1).mean().sqrt()) + 1e-6


def test_sg_sample_on_the_gpu_is_reproducible_and_chunks_deterministic_samplers_exactly():
    score = sg.scores.exact(sg.targets.builtin("mixture", 16).to("cuda"))

    def run(batch_size=None, **kw):
        return sg.sample(score, 3000, 16, nfe=20, generator=torch.Generator("cuda").manual_seed(0), device="cuda",
                         batch_size=batch_size, **kw)

    a = run()
    assert a.device.type == "cuda" and torch.equal(a, run())
    assert torch.equal(a, run(batch_size=700))  # deterministic: chunked equals one pass
    sde = dict(sampler=sg.samplers.exponential_integrator)
    assert torch.equal(run(**sde), run(**sde))  # stochastic: reproducible from the generator
    assert bool(torch.isfinite(run(**sde)).all())


def test_cli_sample_and_bench_run_on_the_gpu(tmp_path):
    res = _cli("sample", "--target", "mixture", "--sampler", "default", "--steps", "20", "--n", "5000", "--device",
               "cuda", "--out", str(tmp_path / "s"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    x = np.load(tmp_path / "s" / "samples.npy")
    assert x.shape == (5000, 16) and np.isfinite(x).all()
    res = _cli("bench", "--targets", "mixture2d", "gaussian10", "--budgets", "10", "--n", "4000", "--no-peers",
               "--device", "cuda", "--out", str(tmp_path / "b"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.mark.parametrize("net", ["mlp", "unet"])
def test_training_and_exact_resume_on_the_gpu(tmp_path, net):
    """Two GPU runs are bitwise equal, and a run interrupted at step 25 and resumed from its step-20
    checkpoint ends bitwise where an uninterrupted one does, on the GPU as on the CPU."""
    if net == "mlp":
        data = sg.targets.mixture2d().sample(2000, generator=torch.Generator().manual_seed(0))
        config = sg.learn.recipe(steps=40, hidden=32, depth=1, eval_every=10, checkpoint_every=10)
    else:  # the digits U-Net: with cuDNN free to choose its kernels, this differs by 2e-4 (benchmarks/gpu.md)
        data = sg.learn.load_data("digits").x[:500]
        config = sg.learn.recipe((8, 8), batch_size=64, steps=40, eval_every=10, checkpoint_every=10)
    whole = sg.learn.train(data, config, out=tmp_path / "a", device="cuda")
    again = sg.learn.train(data, config, device="cuda")
    assert all(torch.equal(a, b) for a, b in zip(whole.model.parameters(), again.model.parameters()))

    def crash(info):
        if info.step == 25:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        sg.learn.train(data, config, out=tmp_path / "b", callback=crash, device="cuda")
    resumed = sg.learn.train(data, config, out=tmp_path / "b", resume=True, device="cuda")
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert a.device.type == "cuda" and torch.equal(a, b)
    # the trained model sampled on the GPU and on the CPU from the same draws: float32 rounding apart
    on_cpu = copy.deepcopy(whole.model).to("cpu")
    x0 = sg.processes.OU().prior_sample(500, data.shape[1], generator=torch.Generator().manual_seed(2),
                                        dtype=torch.float32)
    plan = sg.default_plan(20)
    cpu = plan.sampler(on_cpu.score_fn(), x0.clone(), plan.grid)
    gpu = plan.sampler(whole.model.score_fn(), x0.cuda(), plan.grid)
    assert gpu.device.type == "cuda"
    assert float((gpu.cpu() - cpu).abs().max()) <= 1e-3 * (1 + float(cpu.abs().max()))


def test_cli_model_sampling_on_the_gpu(tmp_path):
    res = _cli("train", "--data", "mixture2d", "--n", "1000", "--steps", "30", "--hidden", "16", "--eval-every", "30",
               "--out", str(tmp_path / "m"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    outs = {}
    for dev in ("cpu", "cuda"):
        res = _cli("sample", "--model", str(tmp_path / "m"), "--steps", "20", "--n", "500", "--device", dev,
                   "--out", str(tmp_path / dev), "--no-progress", cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        outs[dev] = np.load(tmp_path / dev / "samples.npy")
    assert outs["cuda"].shape == outs["cpu"].shape and np.isfinite(outs["cuda"]).all()


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="needs a node with one GPU")
def test_torchrun_with_more_processes_than_gpus_is_refused_clearly(tmp_path):
    res = _cli("sample", "--n", "100", "--steps", "5", "--device", "cuda", "--out", str(tmp_path / "x"),
               "--no-progress", cwd=tmp_path, torchrun=2)
    assert res.returncode != 0 and "--nproc_per_node=1" in res.stderr and "CUDA_VISIBLE_DEVICES" in res.stderr, \
        res.stderr[-3000:]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpu_processes_equal_one_gpu_process_running_the_same_shards(tmp_path):
    common = ["--steps", "10", "--no-progress", "--sampler", "euler_maruyama"]
    two = _cli("sample", "--n", "101", "--device", "cuda", "--out", str(tmp_path / "two"), *common, cwd=tmp_path,
               torchrun=2)
    assert two.returncode == 0, two.stderr[-3000:]
    parts = []
    for seed, (n, dev) in enumerate(((51, "cuda:0"), (50, "cuda:1"))):
        one = _cli("sample", "--n", str(n), "--seed", str(seed), "--device", dev, "--out", str(tmp_path / f"o{seed}"),
                   *common, cwd=tmp_path)
        assert one.returncode == 0, one.stderr[-3000:]
        parts.append(np.load(tmp_path / f"o{seed}" / "samples.npy"))
    assert np.array_equal(np.load(tmp_path / "two" / "samples.npy"), np.concatenate(parts))
