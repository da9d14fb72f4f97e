"""The public API under torch's default dtype, float32, as users have it (``conftest.py`` makes the
other modules run in float64): targets built from Python numbers hold float64, samplers take
float32 or float64 states, metrics take float32 samples, training takes float32 data, and the
numbers agree with the float64 runs to float32 rounding."""

from __future__ import annotations

import math

import pytest
import torch

import sgmlab as sg


@pytest.fixture(autouse=True)
def float32_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(previous)


def test_targets_from_python_numbers_hold_float64_and_float32_tensors_stay():
    q = sg.targets.GaussianMixture([0.7, 0.3], [[-2.0, 0.0], [2.0, 1.0]], [0.3, 0.5])
    assert q.means.dtype == torch.float64 and sg.processes.OU().marginal(q, 0.5).means.dtype == torch.float64
    g = sg.targets.Gaussian(torch.zeros(2), torch.eye(2))  # float32 tensors stay float32 (documented)
    assert g.cov.dtype == torch.float32
    s = sg.scores.exact(g)(torch.ones(4, 2), 0.5)
    assert s.dtype == torch.float32 and torch.allclose(s, -torch.ones(4, 2))  # N(0, I) is stationary


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_in_either_dtype_agrees_to_float32_rounding(dtype):
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    x = sg.sample(score, 2000, 2, nfe=10, dtype=dtype, generator=torch.Generator().manual_seed(0))
    ref = sg.sample(score, 2000, 2, nfe=10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert x.dtype == dtype and bool(torch.isfinite(x).all())
    # the same prior draws, float32 arithmetic: equal to its rounding but where a draw near the boundary
    # between two modes ends in the other (a few in a thousand)
    off = (x.double() - ref).norm(dim=1) > 1e-4 * ref.norm(dim=1).max()
    assert float(off.double().mean()) <= (0.01 if dtype == torch.float32 else 0.0)
    m = sg.metrics.mode_tv(x, q, generator=torch.Generator().manual_seed(1))
    assert math.isfinite(m.value) and m.value < 0.1


def test_laws_bounds_and_metrics_under_the_float32_default():
    p = sg.targets.anisotropic_gaussian(d=3)
    grid = sg.grids.uniform(T=4.0, delta=1e-2, steps=20)
    assert grid.dtype == torch.float64
    law = sg.samplers.exact_output_law(sg.samplers.exponential_integrator, p, grid)
    kl = sg.metrics.gaussian_kl(law, sg.processes.OU().marginal(p, 1e-2))
    b = sg.theory.certified_bound(p, sg.scores.exact(p), grid)
    assert 0 < kl and math.isfinite(b.tv_bound) and b.kind.startswith("rigorous")
    x = p.sample(5000, generator=torch.Generator().manual_seed(0)).float()
    est = sg.metrics.ExactMMD(p)(x)
    assert abs(est.value) < 5 * est.se + 1e-6


def test_tune_and_train_under_the_float32_default():
    q = sg.targets.Gaussian([0.0, 1.0], [[1.0, 0.0], [0.0, 0.01]])
    tp = sg.tune(sg.scores.exact(q), 2, 6, target=q, n_pilot=16, max_trials=6,
                 generator=torch.Generator().manual_seed(0))
    assert tp.grid.dtype == torch.float64 and tp.evaluations == 6
    data = sg.targets.mixture2d().sample(500, generator=torch.Generator().manual_seed(0)).float()
    res = sg.learn.train(data, sg.learn.TrainConfig(steps=20, batch_size=64))
    x = res.sample(200, nfe=6, generator=torch.Generator().manual_seed(1))
    assert x.shape == (200, 2) and bool(torch.isfinite(x).all())
