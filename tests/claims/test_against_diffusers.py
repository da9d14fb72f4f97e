"""Claims against another library: sgmlab's default plan against diffusers' schedulers. They are
comparisons, not unit tests (a better diffusers release may make one false), so they run as their
own step (``make claims``, CI) under the ``claims`` marker, apart from ``make test``."""

from __future__ import annotations

import csv

import pytest
import torch

import sgmlab as sg

pytestmark = pytest.mark.claims
pytest.importorskip("diffusers")
OU = sg.processes.OU()


@pytest.mark.parametrize("nfe", [10, 20, 50, 100])
def test_sample_default_keeps_small_scales(nfe):
    """The case the previous table (chosen on the bench's own targets) lost 400x at 50 evaluations:
    a 2-d Gaussian with variances 1 and 0.01, where a denoising step from delta = 1e-3 shrinks the
    small direction. Exact KL of the default against the best of diffusers' deterministic
    schedulers (DDIM, DPM-Solver++ 2M/3M, DEIS, UniPC), which it must beat."""
    from sgmlab.interop.peers import DiffusersPeer

    U = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    q = sg.targets.Gaussian([0.3, -0.2], U @ torch.diag(torch.tensor([1.0, 0.01], dtype=torch.float64)) @ U.T)
    law = sg.samplers.deterministic_output_law
    plan = sg.default_plan(nfe)
    ours = sg.metrics.gaussian_kl(law(plan.sampler, q, plan.grid), q)
    best = min(sg.metrics.gaussian_kl(law(DiffusersPeer(p, nfe), q, None), q)
               for p in ("ddim", "dpmpp_2m", "dpmpp_3m", "deis", "unipc"))
    assert ours < best


@pytest.mark.xfail(strict=True, reason="the table of 0.2.0 loses the ring at 20 to DPM-Solver++ 3M (coupled z -5.2), "
                   "as it loses held-out multimodal mixtures at 6, 8, 15 and 20 (benchmarks/multimodal.md): the "
                   "training mixtures, floored at n = 2000, stop informing the choice from about 12 evaluations")
@pytest.mark.parametrize("nfe", [20])
def test_default_beats_diffusers_on_a_held_out_target(nfe):
    """The ring was not used to choose the defaults. Coupled z against DPM-Solver++ 2M/3M, UniPC and
    DEIS at n = 20000 and this seed: at least 3.8 (DEIS) at 20 evaluations, against the threshold 3.1
    (one-sided p = 1e-3). At 10 the default loses the ring to all four (z -12 to -20): the table is
    chosen for the smallest worst case over a random family (``benchmarks/defaults.md``), and at 10
    evaluations no grid tried served both small-scale Gaussians and well separated modes."""
    from sgmlab.experiments.bench import _methods

    q = sg.targets.ring()
    score = sg.scores.exact(q)
    meter = sg.metrics.ExactMMD(q)
    methods = _methods(nfe, peers=True)
    est = {}
    for name in ("sgmlab", "diffusers:dpmpp_2m", "diffusers:dpmpp_3m", "diffusers:unipc", "diffusers:deis"):
        sampler, grid, _ = methods[name]
        g = torch.Generator().manual_seed(0)
        est[name] = meter(sampler(score, OU.prior_sample(20_000, 2, generator=g), grid, generator=g))
    for name, e in est.items():
        if name != "sgmlab":
            diff, se = meter.difference(e, est["sgmlab"])
            assert diff > 3.1 * se, (name, diff, se)



def test_bench_digits_counts_blends(tmp_path, capsys):
    """On the data-set target the bench adds TV bounds. At 10 evaluations diffusers' DPM-Solver++
    ends with a data prediction at t = 0.055, where the posterior over training images is not yet
    one-hot: about 14% of its outputs blend training images (measured at n = 5e4). sgmlab's default
    ends with the denoising step from delta = 1.6e-4, where the posterior is one-hot."""
    from sgmlab.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--targets", "digits", "--budgets", "10", "--n", "50", "digits=400", "--out", str(out),
                 "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "TV to the data" in stdout
    rows = list(csv.DictReader((out / "results.csv").open()))
    get = {r["method"]: r for r in rows}
    assert {r["metric"] for r in rows} == {"mmd2_exact"} and len(rows) == 11
    # 0.008 of 400 (about 3): below 0.04 with p < 1e-4 (binomial); 0.14 of 400: standard error 0.017
    assert float(get["sgmlab"]["off_support"]) < 0.04
    assert 0.08 < float(get["diffusers:dpmpp_3m"]["off_support"]) < 0.24
    assert float(get["diffusers:dpmpp_3m"]["tv_lower"]) > 0.05
    summ = next(csv.DictReader((out / "summary.csv").open()))
    assert summ["tv_wins"] in ("yes", "tie") and float(summ["sgmlab_tv_upper"]) <= 1
