"""Sampling under torchrun: shards seeded by rank, gathered on rank 0, equal to one process running
the same shards; a refused folder stops every rank."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sgmlab.distributed import shard_sizes


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 5000), parts=st.integers(1, 8), align=st.integers(1, 70))
def test_shards_cover_the_rows_and_keep_whole_blocks(n, parts, align):
    sizes = shard_sizes(n, parts, align=align)
    assert len(sizes) == parts and sum(sizes) == n and min(sizes) >= 0
    if align > 1:  # every shard boundary is a block boundary (align=1: no blocks, shares as equal as can be)
        blocks = [b.shape[0] for b in torch.empty(n, 0).tensor_split(align)]
        assert set(np.cumsum([0, *sizes]).tolist()) <= set(np.cumsum([0, *blocks]).tolist())
    else:
        assert max(sizes) - min(sizes) <= 1


def _torchrun(*args, cwd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", "-m", "sgmlab.cli", "--", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


def _single(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sgmlab.cli", *args], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_two_gloo_processes_equal_one_process_running_the_same_shards(tmp_path):
    common = ["--steps", "10", "--no-progress", "--sampler", "euler_maruyama"]
    two = _torchrun("sample", "--n", "101", "--out", str(tmp_path / "two"), *common, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote") == 1  # rank 0 alone reports and writes
    for seed, n in ((0, 51), (1, 50)):  # rank r: seed + r, its share of the rows
        one = _single("sample", "--n", str(n), "--seed", str(seed), "--out", str(tmp_path / f"one{seed}"), *common,
                      cwd=tmp_path)
        assert one.returncode == 0, one.stderr[-2000:]
    merged = np.load(tmp_path / "two" / "samples.npy")
    assert np.array_equal(merged, np.concatenate([np.load(tmp_path / f"one{s}" / "samples.npy") for s in (0, 1)]))
    # a model too: trained once, sampled by two processes
    model = tmp_path / "model"
    trained = _single("train", "--data", "mixture2d", "--n", "500", "--steps", "20", "--hidden", "16",
                      "--eval-every", "20", "--out", str(model), "--no-progress", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    two = _torchrun("sample", "--model", str(model), "--n", "40", "--out", str(tmp_path / "m2"), *common, cwd=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    parts = []
    for seed in (0, 1):
        one = _single("sample", "--model", str(model), "--n", "20", "--seed", str(seed),
                      "--out", str(tmp_path / f"m1{seed}"), *common, cwd=tmp_path)
        assert one.returncode == 0, one.stderr[-2000:]
        parts.append(np.load(tmp_path / f"m1{seed}" / "samples.npy"))
    assert np.array_equal(np.load(tmp_path / "m2" / "samples.npy"), np.concatenate(parts))


def test_training_across_two_processes_resumes_exactly(tmp_path):
    """Two gloo processes: 15 steps, then --resume to 30, end bitwise where 30 uninterrupted steps do
    (a constant learning rate, so that the longer run's schedule is the same from the start)."""
    from safetensors.torch import load_file

    common = ["--data", "mixture2d", "--n", "500", "--hidden", "16", "--depth", "1", "--batch-size", "32",
              "--eval-every", "15", "--lr-schedule", "constant", "--no-progress"]
    for args in (["--steps", "30", "--out", "whole"], ["--steps", "15", "--out", "parts"],
                 ["--steps", "30", "--out", "parts", "--resume"]):
        res = _torchrun("train", *common, *args, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
    whole, parts = (load_file(tmp_path / f / "checkpoint.safetensors") for f in ("whole", "parts"))
    assert whole.keys() == parts.keys() and any(k.startswith("ema.") for k in whole)
    for k in whole:
        assert torch.equal(whole[k], parts[k]), k


def test_a_refused_folder_stops_every_rank(tmp_path):
    (tmp_path / "taken").write_text("a file")
    res = _torchrun("sample", "--n", "10", "--steps", "5", "--out", str(tmp_path / "taken"), "--no-progress",
                    cwd=tmp_path)
    # both ranks stop with the one-line message (torchrun then reports the failed children itself)
    assert res.returncode != 0 and res.stderr.count("exists and is not a folder") == 2, res.stderr[-2000:]
    assert "sgmlab/" not in res.stderr  # no traceback through sgmlab's code


def test_the_bench_across_two_processes_merges_the_exact_mmd_exactly(tmp_path):
    """Each rank samples whole jackknife groups from seed + rank and rank 0 merges the group sums:
    the MMD estimates (value, standard error) equal one process's over the same shards stacked, and
    the exact-law rows are those of one process."""
    import csv

    import sgmlab as sg
    from sgmlab.distributed import shard_blocks
    from sgmlab.experiments.bench import TARGETS, _methods
    from sgmlab.metrics.samples import mmd_group_sizes

    res = _torchrun("bench", "--targets", "gaussian10", "mixture2d", "--budgets", "6", "--n", "2000", "--no-peers",
                    "--out", str(tmp_path / "b"), "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "b" / "results.csv").open()))
    q = TARGETS["mixture2d"]()
    meter = sg.metrics.ExactMMD(q)
    blocks = shard_blocks(mmd_group_sizes(2000, meter.groups), 2)
    for mname, (sampler, grid, _) in _methods(6, False).items():
        shards = []
        for rank, b in enumerate(blocks):
            g = torch.Generator().manual_seed(rank)
            shards.append(sampler(sg.scores.exact(q), sg.processes.OU().prior_sample(sum(b), 2, generator=g), grid,
                                  generator=g))
        est = meter(torch.cat(shards))
        row = next(r for r in rows if r["target"] == "mixture2d" and r["method"] == mname)
        assert (float(row["value"]), float(row["se"])) == (est.value, est.se), mname
    single = _single("bench", "--targets", "gaussian10", "--budgets", "6", "--no-peers", "--out", str(tmp_path / "s"),
                     "--no-progress", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    one = {r["method"]: r["value"] for r in csv.DictReader((tmp_path / "s" / "results.csv").open())}
    assert one == {r["method"]: r["value"] for r in rows if r["target"] == "gaussian10"}


def test_devices_are_resolved_per_process_and_too_many_processes_for_the_gpus_are_refused(monkeypatch):
    """``--device cuda`` is each process's own GPU (LOCAL_RANK); more processes on a node than it has
    GPUs is refused with what to do, before anything runs (CUDA faked: the rule, not the GPU)."""
    import pytest

    from sgmlab import distributed
    from sgmlab.defaults import CHUNK_NUMBERS, CUDA_CHUNK_NUMBERS, chunk_rows
    from sgmlab.learn.train import default_device

    assert distributed.device(None) == torch.device("cpu") == distributed.device("cpu")
    assert chunk_rows(10) == chunk_rows(10, device="cpu") == CHUNK_NUMBERS // 10
    assert chunk_rows(10, device="cuda") == CUDA_CHUNK_NUMBERS // 10 and chunk_rows(10, 7, "cuda") == 7
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert default_device() == torch.device("cuda", 1) == distributed.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(ValueError, match=r"node with 2 GPU\(s\).*--nproc_per_node=2.*CUDA_VISIBLE_DEVICES="):
        distributed.device("cuda")


@pytest.mark.parametrize("env, match", [
    ({"WORLD_SIZE": "abc"}, "WORLD_SIZE='abc' is not an integer"),
    ({"WORLD_SIZE": "2", "RANK": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}, "RANK=3 is outside"),
    ({"WORLD_SIZE": "2"}, "WORLD_SIZE=2 is set but RANK, MASTER_ADDR, MASTER_PORT is not"),
    ({"RANK": "1"}, "RANK=1 is outside"),
    ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "x"}, "MASTER_PORT='x'"),
    # a stale WORLD_SIZE with a master that never comes: the first meeting times out, naming the variables
    ({"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "SGMLAB_RENDEZVOUS_SECONDS": "1"},
     "did not meet within 1 s"),
])
def test_torchrun_variables_are_checked_before_anything_waits(env, match, monkeypatch, tmp_path, capsys):
    from sgmlab.cli import main

    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "o"
    assert main(["sample", "--target", "gaussian", "--steps", "4", "--n", "10", "--out", str(out), "--no-progress"]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()
