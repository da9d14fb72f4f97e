"""Targets: closed-form log-densities and scores, noised laws, sampling, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import sgmlab as sg
from sgmlab.targets import base as targets_base

from helpers import assert_moments_match, random_gaussian, random_mixture, z_threshold

PROCESSES = {
    "ou": sg.processes.OU(),
    "vp-linear": sg.processes.VP(sg.processes.LinearBeta()),
    "vp-cosine": sg.processes.VP(sg.processes.CosineBeta()),
}


def autograd_score(target: sg.targets.Target, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(target.log_prob(x).sum(), x)
    return grad


@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 8), k=st.integers(1, 5), t=st.floats(1e-4, 10.0),
       kind=st.sampled_from(["gaussian", "full", "diag", "spherical", "empirical"]),
       process=st.sampled_from(["ou", "vp-linear"]), seed=st.integers(0, 2**31))
def test_marginal_score_equals_autograd_of_marginal_log_prob(d, k, t, kind, process, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        q = random_gaussian(d, g)
    elif kind == "empirical":
        q = sg.targets.Empirical(torch.randn(k + 1, d, generator=g))
    else:
        q = random_mixture(d, k, g, kind)
    proc = PROCESSES[process]
    t = min(t, proc.t_max)
    qt = proc.marginal(q, t)
    x = qt.sample(7, generator=g) + 0.5 * torch.randn(7, d, generator=g)
    expected = autograd_score(qt, x)
    # float64: the closed form and autograd differ by rounding only; scale by the score's size
    scale = 1 + expected.abs().max()
    assert torch.allclose(qt.score(x), expected, rtol=0, atol=1e-9 * scale)
    # scores of exact samples: batch equals per-sample
    per = torch.cat([qt.score(x[i:i + 1]) for i in range(x.shape[0])])
    assert torch.allclose(per, qt.score(x), rtol=1e-12, atol=1e-12 * scale)


def test_log_prob_matches_scipy(gen):
    q = random_gaussian(4, gen)
    x = torch.randn(10, 4, generator=gen)
    ref = stats.multivariate_normal(q.mean.numpy(), q.cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(q.log_prob(x).numpy(), ref, rtol=1e-12)
    for kind in ["full", "diag", "spherical"]:
        m = random_mixture(3, 4, gen, kind)
        covs = m.cov_matrices()
        comps = np.stack([stats.multivariate_normal(m.means[i].numpy(), covs[i].numpy()).logpdf(x[:, :3].numpy())
                          for i in range(4)], 1)
        ref = np.log(np.exp(comps) @ m.weights.numpy())
        np.testing.assert_allclose(m.log_prob(x[:, :3]).numpy(), ref, rtol=1e-10)


@pytest.mark.parametrize("kind", ["full", "diag", "spherical"])
def test_mixture_is_stable_far_from_all_modes(gen, kind):
    m = random_mixture(3, 5, gen, kind)
    x = torch.tensor([[1e3, -1e3, 5e2], [-4e3, 0.0, 1e4]])
    assert torch.isfinite(m.log_prob(x)).all() and torch.isfinite(m.score(x)).all()
    # far away the nearest-in-Mahalanobis component dominates: score equals that component's
    r = m.responsibilities(x)
    assert torch.allclose(r.sum(1), torch.ones(2))


def test_spherical_fast_path_matches_the_plain_formula_at_small_noise(gen):
    """Spherical and diagonal mixtures take matrix-product shortcuts and raise responsibilities below
    e^-600 of the largest; near well-separated atoms (most responsibilities far below that) the score
    still equals softmax-weighted means in float64, and no responsibility is subnormal."""
    pts = 3.0 * torch.randn(400, 8, generator=gen)
    x = pts[:50] + 1e-3 * torch.randn(50, 8, generator=gen)
    s2 = torch.rand(400, generator=gen, dtype=torch.float64) * 1e-5 + 1e-5
    w = torch.rand(400, generator=gen, dtype=torch.float64)
    for covs in (s2, s2[:, None].expand(400, 8).contiguous()):
        m = sg.targets.GaussianMixture(w / w.sum(), pts, covs)
        logits = (w / w.sum()).log() - 0.5 * (8 * s2.log() + ((x[:, None] - pts) ** 2).sum(-1) / s2)
        r = torch.softmax(logits, dim=1)
        assert float(r.min()) == 0.0  # the plain softmax underflows here
        ref = (r[:, :, None] * (pts - x[:, None]) / s2[:, None]).sum(1)
        torch.testing.assert_close(m.score(x), ref, rtol=1e-10, atol=1e-8)  # |m/s| ~ 1e6: rounding ~1e-10
        got = m.responsibilities(x)
        assert float(got[got > 0].min()) >= torch.finfo(torch.float64).tiny
        torch.testing.assert_close(got.sum(1), torch.ones(50, dtype=torch.float64), rtol=1e-14, atol=0)


def test_chunked_evaluation_equals_unchunked(gen, monkeypatch):
    m = random_mixture(4, 50, gen, "full")
    e = sg.processes.OU().marginal(sg.targets.Empirical(torch.randn(300, 4, generator=gen)), 0.3)
    x = torch.randn(1000, 4, generator=gen)
    full = (m.score(x), m.log_prob(x), e.score(x), e.log_prob(x))
    monkeypatch.setattr(targets_base, "CHUNK_ELEMENTS", 5000)
    small = (m.score(x), m.log_prob(x), e.score(x), e.log_prob(x))
    for a, b in zip(full, small):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_thousand_components_large_batch_memory_is_bounded(gen):
    """1e3 components, 2e5 points: chunks keep the intermediate below CHUNK_ELEMENTS rows x K x d."""
    m = random_mixture(4, 1000, gen, "diag")
    x = torch.randn(200_000, 4, generator=gen)
    s = m.score(x)
    assert s.shape == x.shape and torch.isfinite(s).all()


@pytest.mark.parametrize("kind", ["gaussian", "full", "spherical"])
def test_sample_moments_match_exact_moments(gen, kind):
    q = random_gaussian(3, gen) if kind == "gaussian" else random_mixture(3, 3, gen, kind)
    if kind == "gaussian":
        mean, cov = q.mean, q.cov
    else:
        covs = q.cov_matrices()
        mean = q.weights @ q.means
        second = (q.weights[:, None, None] * (covs + q.means[:, :, None] * q.means[:, None, :])).sum(0)
        cov = second - torch.outer(mean, mean)
    x = q.sample(40_000, generator=gen)
    if kind == "gaussian":
        assert_moments_match(x, mean, cov)
    else:  # mixtures are not Gaussian: test the mean only, with the exact variance
        z = (x.mean(0) - mean) / (cov.diagonal() / x.shape[0]).sqrt()
        assert z.abs().max() < z_threshold(1e-3, 3)
    assert math.isclose(q.second_moment(), float((mean**2).sum() + cov.trace()), rel_tol=1e-12)


def test_mixture_labels_follow_weights(gen):
    q = sg.targets.mixture2d()
    _, labels = q.sample_with_labels(30_000, generator=gen)
    counts = torch.bincount(labels, minlength=3).double()
    expected = 30_000 * q.weights
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.isf(1e-3, df=2)


def test_noised_families_are_the_closed_forms(gen):
    q = random_gaussian(3, gen)
    a, s = 0.6, 0.8
    n = q.noised(a, s)
    assert torch.allclose(n.mean, a * q.mean) and torch.allclose(n.cov, a * a * q.cov + s * s * torch.eye(3))
    pts = torch.randn(5, 3, generator=gen)
    e = sg.targets.Empirical(pts).noised(a, s)
    assert isinstance(e, sg.targets.GaussianMixture) and e.covariance_type == "spherical"
    assert torch.allclose(e.means, a * pts) and torch.allclose(e.covs, torch.full((5,), s * s))
    assert isinstance(sg.processes.OU().marginal(sg.targets.Empirical(pts), 0.0), sg.targets.Empirical)


def test_projection_is_the_marginal(gen):
    q = random_mixture(4, 3, gen, "full")
    p = q.project([2, 0])
    x = torch.randn(6, 2, generator=gen)
    # marginal density by quadrature would be slow; use the Gaussian closed form per component
    comps = [sg.targets.Gaussian(q.means[k], q.covs[k]).project([2, 0]) for k in range(3)]
    ref = torch.logsumexp(torch.stack([c.log_prob(x) for c in comps], 1) + q.weights.log(), 1)
    assert torch.allclose(p.log_prob(x), ref)


def test_builtin_targets():
    assert set(sg.targets.BUILTIN) >= {"mixture2d", "ring", "gaussian", "mixture"}
    q = sg.targets.builtin("gaussian", 10)
    lam = torch.linalg.eigvalsh(q.cov)
    assert math.isclose(lam.min(), 0.05, rel_tol=1e-9) and math.isclose(lam.max(), 5.0, rel_tol=1e-9)
    assert sg.targets.builtin("mixture", 5).dim == 5
    m = sg.targets.mixture2d()
    assert m.dim == 2 and sorted(m.weights.tolist()) == [0.2, 0.3, 0.5]
    # the modes are well separated: the smallest Mahalanobis distance between means is large
    for i in range(3):
        for j in range(3):
            if i != j:
                diff = m.means[i] - m.means[j]
                assert float(diff @ torch.linalg.solve(m.covs[i], diff)) ** 0.5 > 6
    with pytest.raises(ValueError, match="unknown target 'nope'"):
        sg.targets.builtin("nope")
    with pytest.raises(ValueError, match="2-dimensional"):
        sg.targets.builtin("ring", 3)


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, match", [
    (([0.0, 1.0], [[1.0, 0.0], [0.0]]), "cov must be an array"),
    (([0.0, 1.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), r"cov must have shape \(2, 2\)"),
    (([0.0, 1.0], [[1.0, 0.5], [0.0, 1.0]]), "not symmetric"),
    (([0.0, 1.0], [[1.0, 2.0], [2.0, 1.0]]), "not positive definite"),
    (([float("nan"), 1.0], [[1.0, 0.0], [0.0, 1.0]]), "mean contains NaN"),
    (([0.0, 1.0], [[float("inf"), 0.0], [0.0, 1.0]]), "cov contains NaN or infinite"),
    (([], []), "mean is empty"),
    (([[0.0]], [[1.0]]), "mean must have 1 dimension"),
])
def test_gaussian_bad_input(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sg.targets.Gaussian(*args)


@pytest.mark.parametrize("w, means, covs, match", [
    ([0.5, 0.6], [[0.0], [1.0]], [1.0, 1.0], "sum to one"),
    ([1.5, -0.5], [[0.0], [1.0]], [1.0, 1.0], "non-negative"),
    ([1.0], [[0.0], [1.0]], [1.0, 1.0], "1 entries but means has 2"),
    ([0.5, 0.5], [[0.0], [1.0]], [1.0, -1.0], "positive variances"),
    ([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[-1.0]]], r"covs\[1\] is not positive definite"),
    ([0.5, 0.5], [[0.0], [1.0]], [[1.0, 1.0, 1.0]], "covs must have shape"),
    ([0.5, float("nan")], [[0.0], [1.0]], [1.0, 1.0], "weights contains NaN"),
])
def test_mixture_bad_input(w, means, covs, match):
    with pytest.raises(ValueError, match=match):
        sg.targets.GaussianMixture(w, means, covs)


def test_evaluation_bad_input(gen):
    q = random_gaussian(3, gen)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 3\); got \(4, 2\)"):
        q.score(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        q.log_prob([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        q.sample(-1)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        q.sample(3, generator=0)
    with pytest.raises(ValueError, match="no density"):
        sg.targets.Empirical([[0.0], [1.0]]).score(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="dims must be distinct indices"):
        q.project([0, 5])
    with pytest.raises(ValueError, match="weights must be non-negative and sum to one"):
        sg.targets.Empirical([[0.0], [1.0]], [0.7, 0.7])


def _any_target(kind: str, d: int, k: int, g: torch.Generator) -> sg.targets.Target:
    if kind == "gaussian":
        return random_gaussian(d, g)
    if kind == "empirical":
        return sg.targets.Empirical(torch.randn(k + 1, d, generator=g))
    return random_mixture(d, k, g, kind)


@settings(max_examples=40, deadline=None)
@given(d=st.integers(1, 6), k=st.integers(1, 4), a=st.floats(0.05, 2.0), sigma=st.floats(0.0, 2.0),
       kind=st.sampled_from(["gaussian", "full", "diag", "spherical", "empirical"]), seed=st.integers(0, 2**31))
def test_characteristic_function_identities(d, k, a, sigma, kind, seed):
    """Exact identities: phi(0) = 1, |phi| <= 1, phi(-w) = conj phi(w); the noised law's
    phi_{aX+sZ}(w) = phi(a w) exp(-s^2 |w|^2 / 2); a projection's phi is phi at w padded with zeros."""
    g = torch.Generator().manual_seed(seed)
    q = _any_target(kind, d, k, g)
    w = torch.randn(9, d, generator=g)
    phi = q.characteristic_function(w)
    assert phi.shape == (9,) and phi.is_complex()
    assert torch.allclose(q.characteristic_function(torch.zeros(1, d)), torch.ones(1, dtype=phi.dtype), atol=1e-14)
    assert bool((phi.abs() <= 1 + 1e-12).all())
    assert torch.allclose(q.characteristic_function(-w), phi.conj(), atol=1e-13)
    expected = q.characteristic_function(a * w) * torch.exp(-0.5 * sigma**2 * (w * w).sum(-1))
    assert torch.allclose(q.noised(a, sigma).characteristic_function(w), expected, atol=1e-12)
    dims = list(range(0, d, 2))
    padded = torch.zeros(9, d)
    padded[:, dims] = w[:, dims]
    assert torch.allclose(q.project(dims).characteristic_function(w[:, dims]), q.characteristic_function(padded),
                          atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "full", "empirical"])
def test_characteristic_function_matches_monte_carlo(gen, kind):
    q = _any_target(kind, 3, 3, gen)
    w = torch.randn(6, 3, generator=gen)
    x = q.sample(200_000, generator=gen)
    e = torch.exp(1j * (x @ w.T))
    se = (e.real.var(0) + e.imag.var(0)).sqrt() / math.sqrt(x.shape[0])
    z = (e.mean(0) - q.characteristic_function(w)).abs() / se
    assert float(z.max()) < z_threshold(1e-3, 6)


def test_characteristic_function_bad_input(gen):
    q = sg.targets.mixture2d()
    with pytest.raises(ValueError, match=r"w must have shape \(D, 2\)"):
        q.characteristic_function(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        q.characteristic_function(torch.full((1, 2), math.nan))
    with pytest.raises(TypeError, match="torch.Tensor"):
        q.characteristic_function([[0.0, 1.0]])


def test_to_the_device_a_target_is_on_is_itself_and_an_unknown_device_is_refused(gen):
    for q in (sg.targets.mixture2d(), sg.targets.Gaussian([0.0, 1.0], [[1.0, 0.2], [0.2, 1.0]]),
              sg.targets.Empirical(torch.randn(5, 2, generator=gen))):
        assert q.to("cpu") is q and q.to(torch.device("cpu")) is q
        with pytest.raises(ValueError, match="not a device torch knows"):
            q.to("nonsense")
        with pytest.raises(ValueError, match="cuda:9"):
            q.to("cuda:9")
