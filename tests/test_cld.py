"""CLD: transitions against matrix exponentials and quadrature, exact velocity scores, samplers'
exact output laws against Monte Carlo, stationarity, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, linalg

import sgmlab as sg
from sgmlab.samplers.cld_base import linear_flow

from helpers import assert_moments_match, random_gaussian, random_mixture, z_threshold

CLD = sg.processes.CLD()
SAMPLERS = [sg.samplers.cld_exponential_integrator, sg.samplers.cld_euler_maruyama, sg.samplers.cld_sscs]
IDS = ["exp-int", "em", "sscs"]


@pytest.mark.parametrize("friction, mass", [(2.0, 1.0), (1.0, 0.25), (3.0, 1.0), (1.0, 1.0)])
def test_transition_against_matrix_exponential_and_quadrature(friction, mass):
    cld = sg.processes.CLD(friction, mass)
    A, Q = cld.A.numpy(), cld.Q.numpy()
    for t in (0.05, 0.7, 3.0):
        E, S = cld.transition(t)
        assert np.allclose(E.numpy(), linalg.expm(t * A), atol=1e-13)
        batch = sg.processes.expm2(cld.A, torch.tensor([t, 2 * t], dtype=torch.float64))
        assert np.allclose(batch[1].numpy(), linalg.expm(2 * t * A), atol=1e-12)
        quad, _ = integrate.quad_vec(lambda u: linalg.expm(u * A) @ Q @ linalg.expm(u * A).T, 0, t, epsabs=1e-13)
        assert np.allclose(S.numpy(), quad, atol=1e-10)


def test_paper_closed_forms_for_critical_damping():
    """e^{sA} = e^{-s}[[1+s, s], [-s, 1-s]] and e^{hA'} = e^{h}[[1-h, -h], [h, 1+h]] (CLD; Chen et al. 2023)."""
    for s in (0.1, 1.0, 2.5):
        E, _ = CLD.transition(s)
        assert torch.allclose(E, math.exp(-s) * torch.tensor([[1 + s, s], [-s, 1 - s]], dtype=torch.float64))
        Phi, Psi, noise = linear_flow(-CLD.A, CLD.Q, s)
        assert torch.allclose(Phi, math.exp(s) * torch.tensor([[1 - s, -s], [s, 1 + s]], dtype=torch.float64))
        # Psi = (e^h - 1) I + ((h - 1) e^h + 1) N with N = A' - I
        N = -CLD.A - torch.eye(2, dtype=torch.float64)
        assert torch.allclose(Psi, math.expm1(s) * torch.eye(2, dtype=torch.float64) + ((s - 1) * math.exp(s) + 1) * N)
        quad, _ = integrate.quad_vec(lambda u: linalg.expm(-u * CLD.A.numpy()) @ CLD.Q.numpy()
                                     @ linalg.expm(-u * CLD.A.numpy()).T, 0, s, epsabs=1e-13)
        assert np.allclose(noise.numpy(), quad, atol=1e-9 * max(1, np.abs(quad).max()))


def test_stationary_law_is_invariant_and_marginals_are_exact(gen):
    std = sg.targets.Gaussian(torch.zeros(2), torch.eye(2))
    law = CLD.marginal(std, 0.8)
    assert torch.allclose(law.cov, torch.eye(4)) and torch.allclose(law.mean, torch.zeros(4))
    # moments of a simulated forward path (exact transitions composed) match the marginal
    q = random_gaussian(2, gen)
    z = torch.cat([q.sample(40_000, generator=gen), torch.randn(40_000, 2, generator=gen)], 1)
    for _ in range(4):
        E, S = CLD.transition(0.2)
        EE, L = torch.kron(E, torch.eye(2)), torch.linalg.cholesky(torch.kron(S, torch.eye(2)))
        z = z @ EE.T + torch.randn(z.shape, generator=gen) @ L.T
    law = CLD.marginal(q, 0.8)
    assert_moments_match(z, law.mean, law.cov)


@pytest.mark.parametrize("kind", ["gaussian", "mixture"])
def test_velocity_score_equals_autograd(kind, gen):
    q = random_gaussian(3, gen) if kind == "gaussian" else random_mixture(3, 3, gen)
    score = sg.scores.exact(q, CLD)
    for t in (1e-3, 0.5, 4.0):
        law = CLD.marginal(q, t)
        z = law.sample(6, generator=gen).requires_grad_(True)
        (grad,) = torch.autograd.grad(law.log_prob(z).sum(), z)
        assert torch.allclose(score(z.detach(), t), grad[:, 3:], atol=1e-9 * (1 + grad.abs().max()))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_exact_output_law_matches_monte_carlo(sampler, gen):
    q = random_gaussian(2, gen)
    grid = sg.grids.exponential(4.0, 1e-2, 10)
    law = sg.samplers.cld_exact_output_law(sampler, q, grid)
    z = sampler(sg.scores.exact(q, CLD), CLD.prior_sample(40_000, 2, generator=gen), grid, generator=gen)
    assert_moments_match(z, law.mean, law.cov)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
def test_stationary_law_is_kept_as_h_goes_to_zero(sampler):
    """For q = N(0, I) the exact velocity score is -v and N(0, I_2d) is invariant for the reverse
    process; each sampler's output law approaches it as h -> 0 (error decreasing, ~ 0 at h = 1e-3)."""
    std = sg.targets.Gaussian(torch.zeros(2), torch.eye(2))
    ref = sg.targets.Gaussian(torch.zeros(4), torch.eye(4))
    errs = [sg.metrics.gaussian_kl(sg.samplers.cld_exact_output_law(sampler, std, sg.grids.uniform(2.0, 1.0, n)), ref)
            for n in (4, 40, 1000)]
    assert errs[2] < errs[1] < errs[0] or errs[0] < 1e-20
    assert errs[2] < 1e-5


def test_cld_samplers_converge_to_the_target(gen):
    q = random_gaussian(3, gen)
    kls = [sg.metrics.gaussian_kl(sg.samplers.cld_exact_output_law(s, q, sg.grids.uniform(8.0, 1e-3, 2000)).project(
        range(3)), q) for s in SAMPLERS]
    assert max(kls) < 5e-3


def test_cld_bad_input(gen):
    with pytest.raises(ValueError, match="friction must be > 0.0"):
        sg.processes.CLD(friction=0.0)
    with pytest.raises(ValueError, match="mass must be > 0.0"):
        sg.processes.CLD(mass=-1.0)
    q = sg.targets.Gaussian(torch.zeros(2), torch.eye(2))
    s = sg.scores.exact(q, CLD)
    with pytest.raises(ValueError, match=r"shape \(n, 2d\)"):
        sg.samplers.cld_exponential_integrator(s, torch.zeros(5, 3), [1.0, 0.5])
    with pytest.raises(ValueError, match=r"x must have shape \(n, 4\); got \(5, 6\)"):
        sg.samplers.cld_exponential_integrator(s, torch.zeros(5, 6), [1.0, 0.5])
    with pytest.raises(ValueError, match=r"shape \(n, 2d\)"):
        CLD.positions(torch.zeros(4, 5))
    with pytest.raises(TypeError, match="must be a CLD process"):
        sg.samplers.cld_sscs(s, torch.zeros(5, 4), [1.0, 0.5], process=sg.processes.OU())
    with pytest.raises(ValueError, match="t must be >= 0.0"):
        CLD.marginal(q, -0.1)
    with pytest.raises(ValueError, match="t = 0"):
        CLD.marginal(sg.targets.Empirical([[0.0], [1.0]]), 0.0)


@pytest.mark.parametrize("d, T, delta, N", [(1, 3.0, 0.5, 10), (3, 4.0, 0.5, 14), (8, 2.0, 1.0, 5)])
def test_cld_path_kl_for_standard_gaussian_is_4dT_1_minus_exp_minus_h(d, T, delta, N):
    """Derived from Chen et al. 2023's CLD setting: CLD path KL = 4 d T (1 - e^{-h}) for q = N(0, I_d), exact scores
    (T the length of the uniform grid), against the DDPM value N 2d (h - 1 + e^{-h})."""
    std = sg.targets.Gaussian(torch.zeros(d), torch.eye(d))
    grid = sg.grids.uniform(T, delta, N)
    h, length = (T - delta) / N, T - delta
    kl = sg.theory.cld_path_kl(std, sg.scores.exact(std, CLD), grid, nodes=6)
    assert kl.method.startswith("closed form")
    assert kl.value == pytest.approx(4 * d * length * (1 - math.exp(-h)), rel=1e-10)
    ddpm = sg.theory.certified_bound(std, sg.scores.exact(std), grid, nodes=6).path_kl
    assert ddpm == pytest.approx(N * 2 * d * (h - 1 + math.exp(-h)), rel=1e-10)
    assert kl.value > ddpm  # at equal grids CLD's path KL is the larger: of order d h T for both


def test_cld_path_kl_closed_form_matches_monte_carlo(gen):
    q = random_gaussian(2, gen)
    grid = sg.grids.uniform(3.0, 0.2, 6)
    exact = sg.scores.exact(q, CLD)
    closed = sg.theory.cld_path_kl(q, exact, grid)
    mc = sg.theory.cld_path_kl(q, lambda z, t: exact(z, t), grid, generator=gen, n_paths=20_000)
    assert mc.method.startswith("Monte Carlo")
    assert abs(mc.value - closed.value) < z_threshold(1e-3, 1) * mc.stderr


def test_cld_certified_bound_is_above_the_true_tv(gen):
    q = random_gaussian(2, gen)
    for N in (20, 200):
        grid = sg.grids.uniform(4.0, 1e-2, N)
        b = sg.theory.cld_certified_bound(q, sg.scores.exact(q, CLD), grid)
        law = sg.samplers.cld_exact_output_law(sg.samplers.cld_exponential_integrator, q, grid)
        ref = CLD.marginal(q, 1e-2)
        assert sg.metrics.gaussian_tv_bounds(law, ref).lower <= b.tv_bound
        est = sg.metrics.gaussian_tv_mc(law, ref, 50_000, generator=gen)
        assert est.value - z_threshold(1e-3, 2) * est.stderr <= b.tv_bound


@pytest.mark.parametrize("hybrid, threshold", [(True, 0.01), (False, 0.05)])
def test_score_matching_learns_the_velocity_score(hybrid, threshold, gen):
    """CLD training with the same train(): the velocity-score error drops below the threshold (time
    average, standardized coordinates) on a 2-D Gaussian, for hybrid and for plain denoising score
    matching (whose targets have more variance), and sampling gives the right moments."""
    from sgmlab.learn import TrainConfig, score_error, standardized_target, train

    q = sg.targets.Gaussian([1.0, -2.0], [[1.0, 0.6], [0.6, 0.8]])
    res = train(q.sample(20_000, generator=gen), TrainConfig(steps=1500, hidden=64, eval_every=500, process="cld",
                                                             cld_hybrid=hybrid, delta=1e-2))
    target = standardized_target(q, res.standardizer)
    err = score_error(res.model.score_fn(), target, sg.grids.uniform(5.0, 1e-2, 20), process=CLD, generator=gen)
    assert err.time_average < threshold, err.time_average
    z = sg.samplers.cld_exponential_integrator(res.model.score_fn(), CLD.prior_sample(20_000, 2, generator=gen),
                                               sg.grids.uniform(5.0, 1e-3, 100), generator=gen)
    x = res.standardizer.inverse(CLD.positions(z))
    assert torch.allclose(x.mean(0), q.mean, atol=0.05) and torch.allclose(torch.cov(x.T), q.cov, atol=0.08)


def test_hsm_loss_conditional_law_is_exact(gen):
    """The hybrid perturbation (x_t, v_t) | x_0 built in the loss has the exact CLD law."""
    from sgmlab.learn.cld import conditional_factors

    t = torch.tensor([0.3], dtype=torch.float64)
    E, L = conditional_factors(CLD, t)
    law = CLD.marginal(sg.targets.Gaussian([1.5], [[1e-12]]), 0.3)
    assert torch.allclose(E[0] @ torch.tensor([1.5, 0.0], dtype=torch.float64), law.mean, atol=1e-9)
    assert torch.allclose(L[0] @ L[0].T, law.cov, atol=1e-9)


def test_compare_cld_runs_and_shows_linear_growth_in_d(tmp_path):
    from sgmlab.experiments.compare_cld import CompareCLDConfig, compare_cld

    rows = compare_cld(CompareCLDConfig(dims=(2, 8), nfes=(20, 40), n=500))
    path = {(r["method"], r["d"], r["nfe"]): r["value"] for r in rows if r["metric"] == "path_kl"}
    # the path KL of both grows linearly with d (Chen et al. 2023's CLD section: of order d h T for both)
    for method in ("ddpm", "cld"):
        assert 3.0 < path[(method, 8, 20)] / path[(method, 2, 20)] < 5.0
    assert {r["target"] for r in rows} == {"gaussian", "mixture2d"}


def test_cld_sgm_initial_velocity_convention(gen):
    """CLD(init_velocity=gamma) starts V_0 ~ N(0, gamma M I) (CLD-SGM's gamma = 0.04): its marginal
    matches simulated forward paths, its exact score matches autograd, and the exponential
    integrator with that score converges to the target (its prior at T is still the stationary law)."""
    cld = sg.processes.CLD(init_velocity=0.04)
    assert cld != CLD and cld.velocity_var0 == pytest.approx(0.04) and "init_velocity=0.04" in repr(cld)
    q = random_gaussian(2, gen)
    z = torch.cat([q.sample(40_000, generator=gen), 0.2 * torch.randn(40_000, 2, generator=gen)], 1)
    E, S = cld.transition(0.3)
    z = z @ torch.kron(E, torch.eye(2)).T + torch.randn(z.shape, generator=gen) @ torch.linalg.cholesky(
        torch.kron(S, torch.eye(2))).T
    law = cld.marginal(q, 0.3)
    assert_moments_match(z, law.mean, law.cov)
    assert not torch.allclose(law.cov, CLD.marginal(q, 0.3).cov)
    zz = law.sample(5, generator=gen).requires_grad_(True)
    (grad,) = torch.autograd.grad(law.log_prob(zz).sum(), zz)
    assert torch.allclose(sg.scores.exact(q, cld)(zz.detach(), 0.3), grad[:, 2:], atol=1e-9 * (1 + grad.abs().max()))
    out = sg.samplers.cld_exact_output_law(sg.samplers.cld_exponential_integrator, q, sg.grids.uniform(8.0, 1e-3, 2000),
                                           process=cld)
    assert sg.metrics.gaussian_kl(out.project(range(2)), q) < 5e-3
    with pytest.raises(ValueError, match="init_velocity must be >= 0"):
        sg.processes.CLD(init_velocity=-1.0)


def test_sscs_score_time_is_a_documented_choice(gen):
    """The splitting sampler's kick evaluates the score at the midpoint time (default) or at the start
    (CLD-SGM's): different samplers, both converging on the exact law."""
    q = random_gaussian(2, gen)
    start = sg.samplers.CLDSymmetricSplitting("start")
    assert start != sg.samplers.cld_sscs and repr(start) == "CLDSymmetricSplitting('start')"
    laws = [sg.samplers.cld_exact_output_law(s, q, sg.grids.uniform(6.0, 1e-3, n)).project(range(2))
            for s in (sg.samplers.cld_sscs, start) for n in (20, 2000)]
    assert not torch.allclose(laws[0].cov, laws[2].cov)
    assert sg.metrics.gaussian_kl(laws[1], q) < 5e-3 and sg.metrics.gaussian_kl(laws[3], q) < 5e-3
    with pytest.raises(ValueError, match="score_time must be"):
        sg.samplers.CLDSymmetricSplitting("end")
