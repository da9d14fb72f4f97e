"""Grids: endpoints, monotonicity, shapes of the step sequences, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg

GRIDS = [sg.grids.uniform, sg.grids.exponential, sg.grids.two_phase, sg.grids.log_snr, sg.grids.log_snr_focused,
         sg.grids.karras, sg.grids.vp_linear]


@settings(max_examples=150, deadline=None)
@given(T=st.floats(0.05, 50), ratio=st.floats(1e-6, 0.9), steps=st.integers(1, 500),
       i=st.integers(0, len(GRIDS) - 1))
def test_grids_are_strictly_decreasing_from_T_to_delta(T, ratio, steps, i):
    g = GRIDS[i](T, T * ratio, steps)
    assert g.dtype == torch.float64 and g.shape == (steps + 1,)
    assert g[0] == T and g[-1] == T * ratio
    assert bool((g[:-1] > g[1:]).all())
    assert torch.equal(sg.grids.from_times(g), g)


def test_uniform_and_exponential_steps():
    g = sg.grids.uniform(5.0, 1e-3, 100)
    h = g[:-1] - g[1:]
    assert torch.allclose(h, torch.full_like(h, (5 - 1e-3) / 100))
    e = sg.grids.exponential(5.0, 1e-3, 100)
    r = e[1:] / e[:-1]
    assert torch.allclose(r, torch.full_like(r, (1e-3 / 5) ** 0.01))


def test_two_phase_steps_are_kappa_min_1_t():
    T, delta, N = 10.0, 1e-3, 400
    g = sg.grids.two_phase(T, delta, N)
    kappa = (T - (1 + math.log(delta))) / N
    h = g[:-1] - g[1:]
    far = g[:-1] > 1 + kappa
    assert torch.allclose(h[far], torch.full_like(h[far], kappa))
    near = g[:-1] <= 1
    # geometric below t = 1: h = t_k (1 - e^{-kappa})
    assert torch.allclose(h[near], g[:-1][near] * (1 - math.exp(-kappa)), rtol=1e-10)
    # T < 1: purely geometric
    assert torch.allclose(sg.grids.two_phase(0.5, 1e-3, 10), sg.grids.exponential(0.5, 1e-3, 10))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(T=1.0, delta=0.0, steps=10), ValueError, "delta must be > 0.0"),
    (dict(T=1.0, delta=-1e-3, steps=10), ValueError, "delta must be > 0.0"),
    (dict(T=1.0, delta=2.0, steps=10), ValueError, "delta must be smaller than T"),
    (dict(T=1.0, delta=1e-3, steps=0), ValueError, "steps must be an integer >= 1"),
    (dict(T=1.0, delta=1e-3, steps=2.5), TypeError, "steps must be an integer"),
    (dict(T=float("nan"), delta=1e-3, steps=3), ValueError, "T must be finite"),
    (dict(T=float("inf"), delta=1e-3, steps=3), ValueError, "T must be finite"),
])
@pytest.mark.parametrize("fn", GRIDS)
def test_grid_bad_input(fn, kwargs, err, match):
    with pytest.raises(err, match=match):
        fn(**kwargs)


@pytest.mark.parametrize("t, match", [
    ([1.0, 0.5, 0.7], "strictly decreasing; got t\\[1\\]=0.5 <= t\\[2\\]=0.7"),
    ([1.0, 1.0, 0.1], "strictly decreasing"),
    ([1.0, 0.0], "must end at a positive time"),
    ([1.0], "at least 2 times"),
    ([], "grid is empty"),
    ([1.0, float("nan")], "NaN"),
    ([[1.0, 0.5]], "1 dimension"),
])
def test_from_times_bad_input(t, match):
    with pytest.raises(ValueError, match=match):
        sg.grids.from_times(t)


def test_start_at_moves_only_the_first_time():
    g = sg.grids.denoised(sg.grids.log_snr(5.0, 3e-3, 19))
    s = sg.grids.start_at(g, 9.0)
    assert s[0] == 9.0 and torch.equal(s[1:], g[1:]) and g[0] == 5.0  # the input is not changed
    assert torch.equal(sg.grids.start_at(g, 5.0), g)


@pytest.mark.parametrize("T, err, match", [
    (4.0, ValueError, "at least the grid's first time 5"), (float("nan"), ValueError, "T must be finite"),
    ("9", TypeError, "T must be a real number")])
def test_start_at_bad_input(T, err, match):
    with pytest.raises(err, match=match):
        sg.grids.start_at(sg.grids.log_snr(5.0, 1e-3, 10), T)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sg.grids.start_at([1.0, 2.0], 3.0)


def test_start_at_removes_the_prior_mismatch_of_a_shifted_target():
    """A Gaussian target with mean m: the reverse flow is a bijection, so with an exact solver the
    output's KL to q is exactly KL(N(0, I) || q_T), the prior mismatch (about |e^{-T} m|^2 / 2). On a
    fine grid DPM-Solver++ 3M reproduces that closed form, and moving the first time from 5 to 12
    divides the KL by more than 1e3 at the same number of score evaluations."""
    d = 4
    q = sg.targets.Gaussian(torch.full((d,), 3.0, dtype=torch.float64),
                            torch.diag(torch.tensor([0.5, 1.0, 2.0, 0.2], dtype=torch.float64)))
    ou = sg.processes.OU()
    g = sg.grids.denoised(sg.grids.log_snr(5.0, 1e-4, 400))
    kl5 = sg.metrics.gaussian_kl(sg.samplers.deterministic_output_law(sg.samplers.dpm_solver_pp_3m, q, g), q)
    prior = sg.metrics.gaussian_kl(sg.targets.Gaussian(torch.zeros(d, dtype=torch.float64),
                                                       torch.eye(d, dtype=torch.float64)), ou.marginal(q, 5.0))
    assert prior == pytest.approx(0.5 * math.exp(-10) * 36.0, rel=0.05)
    assert kl5 == pytest.approx(prior, rel=1e-3)
    kl12 = sg.metrics.gaussian_kl(
        sg.samplers.deterministic_output_law(sg.samplers.dpm_solver_pp_3m, q, sg.grids.start_at(g, 12.0)), q)
    assert kl12 < kl5 / 1e3
