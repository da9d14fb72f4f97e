"""Processes: transitions against SDE simulation, VP as an exact time change of OU, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

import sgmlab as sg

from helpers import assert_moments_match, random_gaussian

OU = sg.processes.OU()
VPS = [sg.processes.VP(sg.processes.LinearBeta()), sg.processes.VP(sg.processes.CosineBeta()),
       sg.processes.VP(sg.processes.DiscreteBetas.linear(1000))]


@pytest.mark.parametrize("process", [OU, VPS[0]], ids=["ou", "vp-linear"])
def test_marginal_moments_match_forward_sde_simulation(process, gen):
    """Euler-Maruyama on the forward SDE with 2000 steps (bias O(h) ~ 1e-3, well below the CLT
    error of 3e4 samples) against the closed-form law at t."""
    q = random_gaussian(2, gen)
    t = 0.8 if process is OU else 0.4
    n, steps = 30_000, 2000
    x = q.sample(n, generator=gen)
    h = t / steps
    for k in range(steps):
        s = k * h
        x = x + process.drift(x, s) * h + process.diffusion(s) * math.sqrt(h) * torch.randn(x.shape, generator=gen)
    qt = process.marginal(q, t)
    assert_moments_match(x, qt.mean, qt.cov)


@settings(max_examples=40, deadline=None)
@given(t=st.floats(0.0, 0.99), i=st.integers(0, 2))
def test_vp_time_change_round_trip(t, i):
    vp = VPS[i]
    tau = vp.ou_time(t)
    assert math.isclose(float(vp.time_from_ou(tau)), t, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("vp", VPS[:2], ids=["linear", "cosine"])
def test_ou_clock_is_half_the_integral_of_beta(vp):
    for t in [0.01, 0.3, 0.9]:
        quad, _ = integrate.quad(lambda s: float(vp.beta(s)), 0, t, epsabs=1e-13, epsrel=1e-13)
        assert math.isclose(float(vp.ou_time(t)), 0.5 * quad, rel_tol=1e-10)


def test_vp_marginal_is_ou_marginal_at_ou_time(gen):
    q = random_gaussian(3, gen)
    for vp in VPS:
        a = vp.marginal(q, 0.37)
        b = OU.marginal(q, float(vp.ou_time(0.37)))
        assert torch.allclose(a.mean, b.mean, atol=1e-14) and torch.allclose(a.cov, b.cov, atol=1e-14)


def test_ddpm_timesteps_map_to_ou_time_and_back():
    sched = sg.processes.DiscreteBetas.linear(1000)
    vp = sg.processes.VP(sched)
    k = torch.arange(1000, dtype=torch.float64)
    tau = vp.ou_time(sched.timestep_to_time(k))
    # alpha_bar_k = exp(-2 t_k) exactly
    assert torch.allclose(torch.exp(-2 * tau), sched.alphas_cumprod(), rtol=1e-12)
    back = sched.time_to_timestep(vp.time_from_ou(tau))
    assert torch.allclose(back, k, atol=1e-8)
    # the continuous linear schedule with beta in [0.1, 20] is close to the discrete one
    cont = sg.processes.VP(sg.processes.LinearBeta(0.1, 20.0))
    assert abs(float(cont.ou_time(1.0)) - float(tau[-1])) / float(tau[-1]) < 0.01


def test_reverse_drift_is_the_papers_for_ou(gen):
    q = random_gaussian(2, gen)
    score = sg.scores.exact(q, OU)
    x = torch.randn(5, 2, generator=gen)
    assert torch.allclose(OU.reverse_drift(x, 0.5, score), x + 2 * score(x, 0.5))
    assert torch.allclose(OU.reverse_drift(x, 0.5, score, probability_flow=True), x + score(x, 0.5))


def test_prior(gen):
    x = OU.prior_sample(50_000, 3, generator=gen)
    assert_moments_match(x, torch.zeros(3), torch.eye(3))
    std = sg.targets.Gaussian(torch.zeros(3), torch.eye(3))
    assert torch.allclose(OU.prior_log_prob(x[:10]), std.log_prob(x[:10]))
    assert OU.marginal_prob(torch.ones(2, 3), 1.0)[1] == pytest.approx(math.sqrt(1 - math.exp(-2)))


def test_stationary_law_is_invariant():
    std = sg.targets.Gaussian(torch.zeros(2), torch.eye(2))
    for proc in [OU] + VPS:
        qt = proc.marginal(std, 0.5)
        assert torch.allclose(qt.cov, torch.eye(2)) and torch.allclose(qt.mean, torch.zeros(2))


def test_process_bad_input():
    q = sg.targets.Gaussian([0.0], [[1.0]])
    with pytest.raises(ValueError, match="t must be >= 0.0; got -1.0"):
        OU.marginal(q, -1.0)
    with pytest.raises(ValueError, match="t must be finite"):
        OU.marginal(q, float("nan"))
    with pytest.raises(ValueError, match="t must be <= 0.999"):
        VPS[1].marginal(q, 1.0)
    with pytest.raises(TypeError, match="target must be an sgmlab target"):
        OU.marginal("q", 1.0)
    with pytest.raises(ValueError, match="beta_min <= beta_max"):
        sg.processes.LinearBeta(5.0, 1.0)
    with pytest.raises(ValueError, match=r"betas must lie in \(0, 1\)"):
        sg.processes.DiscreteBetas([0.1, 1.5])
    with pytest.raises(ValueError, match="beyond this VP process's range"):
        VPS[0].time_from_ou(100.0)
    with pytest.raises(ValueError, match="d must be an integer >= 1"):
        OU.prior_sample(3, 0)
