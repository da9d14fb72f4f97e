"""Metrics: closed forms against independent formulas and Monte Carlo; sample metrics against
known answers and their noise floors; bad input."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import sgmlab as sg

from helpers import random_gaussian, z_threshold

M = sg.metrics


def gauss1(m, v):
    return sg.targets.Gaussian([m], [[v]])


def test_gaussian_kl_closed_forms(gen):
    # 1-D: log(s2/s1) + (s1^2 + (m1-m2)^2)/(2 s2^2) - 1/2
    p, q = gauss1(0.3, 0.5), gauss1(-1.0, 2.0)
    ref = 0.5 * math.log(2.0 / 0.5) + (0.5 + 1.3**2) / (2 * 2.0) - 0.5
    assert M.gaussian_kl(p, q) == pytest.approx(ref, rel=1e-13)
    p = random_gaussian(4, gen)
    assert M.gaussian_kl(p, p) == pytest.approx(0.0, abs=1e-13)
    # Monte Carlo E_p[log p - log q]
    q = random_gaussian(4, gen)
    x = p.sample(200_000, generator=gen)
    f = p.log_prob(x) - q.log_prob(x)
    z = (f.mean() - M.gaussian_kl(p, q)) / (f.std() / math.sqrt(x.shape[0]))
    assert abs(float(z)) < z_threshold(1e-3, 1)


def test_gaussian_w2_closed_forms(gen):
    assert M.gaussian_w2(gauss1(1.0, 4.0), gauss1(-1.0, 1.0)) == pytest.approx(math.sqrt(4 + 1), rel=1e-12)
    # commuting covariances: W2^2 = |dm|^2 + |sqrt(l1) - sqrt(l2)|^2
    U = torch.linalg.qr(torch.randn(3, 3, generator=gen))[0]
    l1, l2 = torch.tensor([0.5, 1.0, 3.0]), torch.tensor([2.0, 0.1, 3.0])
    p = sg.targets.Gaussian(torch.ones(3), (U * l1) @ U.T)
    q = sg.targets.Gaussian(torch.zeros(3), (U * l2) @ U.T)
    ref = math.sqrt(3 + float(((l1.sqrt() - l2.sqrt()) ** 2).sum()))
    assert M.gaussian_w2(p, q) == pytest.approx(ref, rel=1e-10)
    assert M.gaussian_w2(p, p) == pytest.approx(0.0, abs=1e-7)


def test_tv_bounds_bracket_exact_and_monte_carlo_tv(gen):
    # equal variances in 1-D: TV = 2 Phi(|dm| / 2s) - 1 exactly
    for dm in (0.1, 1.0, 3.0):
        p, q = gauss1(0.0, 1.0), gauss1(dm, 1.0)
        tv = 2 * stats.norm.cdf(dm / 2) - 1
        lo, hi = M.gaussian_tv_bounds(p, q)
        assert lo <= tv <= hi
        est = M.gaussian_tv_mc(p, q, 100_000, generator=gen)
        assert abs(est.value - tv) < z_threshold(1e-3, 3) * est.stderr
    p, q = random_gaussian(3, gen), random_gaussian(3, gen)
    lo, hi = M.gaussian_tv_bounds(p, q)
    est = M.gaussian_tv_mc(p, q, 100_000, generator=gen)
    k = z_threshold(1e-3, 2)
    assert lo - k * est.stderr <= est.value <= hi + k * est.stderr


def test_sample_metrics_on_exact_samples_sit_at_their_floor_and_detect_shifts(gen):
    q = sg.targets.mixture2d()
    x = q.sample(4000, generator=gen)
    shift = torch.tensor([1.5, 0.0])
    for fn in (M.sliced_w2, M.mmd, M.w2, M.tv_histogram):
        exact = fn(x, q, generator=gen)
        shifted = fn(x + shift, q, generator=gen)
        assert exact.value < 3 * exact.noise_floor + 1e-3, (fn.__name__, exact)
        assert shifted.value > 2 * shifted.noise_floor, (fn.__name__, shifted)


def test_w2_of_a_translation_is_its_length(gen):
    x = torch.randn(300, 3, generator=gen)
    v = torch.tensor([0.3, -0.4, 1.2])
    assert M.w2_samples(x, x + v) == pytest.approx(float(v.norm()), rel=1e-9)
    # sliced: E (theta . v)^2 = |v|^2 / d over uniform directions; 4096 directions, MC error ~2%
    assert M.sliced_w2_samples(x, x + v, 4096, generator=gen) == pytest.approx(float(v.norm()) / math.sqrt(3), rel=0.06)


def test_tv_histogram_matches_exact_tv_in_1d(gen):
    """Samples of N(dm, 1) against N(0, 1): the binned TV is within sampling noise of
    2 Phi(dm/2) - 1 (binning loses almost nothing for 200 bins on smooth densities)."""
    q = gauss1(0.0, 1.0)
    dm = 0.5
    x = torch.randn(200_000, 1, generator=gen) + dm
    res = M.tv_histogram(x, q, generator=gen)
    assert res.value == pytest.approx(2 * stats.norm.cdf(dm / 2) - 1, abs=res.noise_floor + 0.01)


def test_mode_tv_measures_mode_weights(gen):
    q = sg.targets.mixture2d()
    wrong = sg.targets.GaussianMixture([0.3, 0.3, 0.4], q.means, q.covs)
    n = 20_000
    res = M.mode_tv(wrong.sample(n, generator=gen), q, generator=gen)
    # the modes are separated, so the assignment is exact and TV = 0.5 * sum |w' - w| = 0.2 up to multinomial error
    se = math.sqrt(0.25 / n) * 3
    assert res.value == pytest.approx(0.2, abs=z_threshold(1e-3, 1) * se)
    assert res.noise_floor < 0.02 and res.details["weights_exact"] == q.weights.tolist()


def test_metric_bad_input(gen):
    q = sg.targets.mixture2d()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        M.sliced_w2(torch.zeros(10, 3), q)
    with pytest.raises(ValueError, match="NaN"):
        M.mmd(torch.full((10, 2), float("nan")), q)
    with pytest.raises(ValueError, match="at least 2 samples"):
        M.w2(torch.zeros(1, 2), q)
    with pytest.raises(ValueError, match="1 or 2 dimensions"):
        M.tv_histogram(torch.zeros(10, 3), sg.targets.builtin("gaussian", 3))
    with pytest.raises(TypeError, match="needs a GaussianMixture"):
        M.mode_tv(torch.zeros(10, 1), gauss1(0, 1))
    with pytest.raises(ValueError, match="dimensions differ"):
        M.gaussian_kl(gauss1(0, 1), sg.targets.Gaussian([0.0, 0.0], torch.eye(2)))
    with pytest.raises(ValueError, match="bandwidth must be > 0.0"):
        M.mmd(torch.zeros(10, 2), q, bandwidth=-1.0)


# -- MMD against the exact law ---------------------------------------------------------------

def test_exact_mmd_equals_the_brute_force_u_statistic(gen):
    """(1/(n(n-1))) sum_{i != j} k(x_i, x_j) - (2/n) sum_i E_q k(x_i, Y) + E_q E_q k(Y, Y') with
    k(x, y) = mean_j cos(w_j.(x - y)), computed pair by pair."""
    q = sg.targets.mixture2d()
    meter = M.ExactMMD(q, features=16, groups=4)
    x = q.noised(1.0, 0.3).sample(40, generator=gen)
    w, phi = meter.w, meter.phi
    diff = x[:, None, :] - x[None, :, :]
    k = torch.cos(diff @ w.T).mean(-1)
    kxx = (k.sum() - k.diagonal().sum()) / (40 * 39)
    kxq = (torch.exp(1j * (x @ w.T)) * phi.conj()).real.mean()
    ref = float(kxx - 2 * kxq + phi.abs().square().mean())
    assert meter(x).value == pytest.approx(ref, rel=1e-10, abs=1e-14)


def test_exact_mmd_is_unbiased_and_its_error_is_calibrated(gen):
    """Gaussian samples against another Gaussian: the exact MMD^2 is (1/D) sum |phi_p - phi_q|^2 in
    closed form. Over repeats, the mean estimate matches it (z-test) and the jackknife standard
    error is on the large side of the spread, by less than 1.6x."""
    q = sg.targets.Gaussian([0.0, 0.0], [[1.0, 0.3], [0.3, 0.5]])
    p = sg.targets.Gaussian([0.15, 0.0], [[1.1, 0.3], [0.3, 0.5]])
    meter = M.ExactMMD(q, features=64, groups=16)
    exact = float((p.characteristic_function(meter.w) - meter.phi).abs().square().mean())
    for law, truth in ((p, exact), (q, 0.0)):
        est = [meter(law.sample(500, generator=gen)) for _ in range(300)]
        v = torch.tensor([e.value for e in est])
        se_mean = float(v.std()) / math.sqrt(len(est))
        assert abs(float(v.mean()) - truth) < z_threshold(1e-3, 2) * se_mean
        ratio = sum(e.se for e in est) / len(est) / float(v.std())
        assert 0.9 < ratio < 1.6, ratio


def test_exact_mmd_coupled_difference(gen):
    """A sample set against itself differs by exactly 0. Two close errors (samples 5% and 5.1% too
    wide, from the same draws): the coupled error is far below either error alone, and the known
    order is resolved although the two values are within each other's errors."""
    q = sg.targets.mixture2d()
    meter = M.ExactMMD(q, features=256)
    x = q.sample(20_000, generator=gen)
    a, b = meter(1.05 * x), meter(1.051 * x)
    assert meter.difference(a, a) == (0.0, 0.0)
    diff, se = meter.difference(b, a)
    assert se < 0.2 * min(a.se, b.se)
    assert z_threshold(1e-3, 1) * se < diff < a.se + b.se
    d2, se2 = M.mmd_exact_difference(1.051 * x, 1.05 * x, q, features=256)
    assert (d2, se2) == pytest.approx((diff, se), rel=1e-12)


def test_mmd_exact_metric_and_floor(gen):
    q = sg.targets.mixture2d()
    m = M.mmd_exact(q.noised(1.0, 0.5).sample(20_000, generator=gen), q, features=256, generator=gen)
    assert m.name == "mmd2_exact" and m.n == 20_000
    assert m.value > m.noise_floor > 0 and m.value > z_threshold(1e-3, 1) * m.details["se"]
    exact = M.mmd_exact(q.sample(20_000, generator=gen), q, features=256, generator=gen)
    assert abs(exact.value) < z_threshold(1e-3, 1) * exact.details["se"]


def test_exact_mmd_bad_input(gen):
    q = sg.targets.mixture2d()
    with pytest.raises(TypeError, match="sgmlab target"):
        M.ExactMMD("mixture2d")
    with pytest.raises(ValueError, match="features"):
        M.ExactMMD(q, features=0)
    with pytest.raises(ValueError, match="bandwidths"):
        M.ExactMMD(q, bandwidths=(0.5, -1.0))
    with pytest.raises(ValueError, match="bandwidths"):
        M.ExactMMD(q, bandwidths=())
    meter = M.ExactMMD(q, features=8)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        meter(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="NaN"):
        meter(torch.full((10, 2), math.nan))
    with pytest.raises(ValueError, match="at least 2"):
        meter(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="paired rows"):
        M.mmd_exact_difference(torch.zeros(10, 2), torch.zeros(12, 2), q)
    with pytest.raises(ValueError, match="paired rows"):
        meter.difference(meter(torch.zeros(10, 2)), meter(torch.zeros(300, 2)))
    with pytest.raises(NotImplementedError, match="characteristic function"):
        class Bare(sg.targets.Gaussian):
            characteristic_function = sg.targets.Target.characteristic_function
        M.ExactMMD(Bare([0.0], [[1.0]]))


def test_exact_mmd_needs_two_rows_per_jackknife_group():
    meter = M.ExactMMD(sg.targets.mixture2d(), features=8)
    with pytest.raises(ValueError, match="at least 4 samples"):
        meter(torch.zeros(3, 2))
    assert math.isfinite(meter(torch.randn(4, 2)).se)
