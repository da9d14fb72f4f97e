"""The fused CPU steps (sgmlab.samplers._fused): the samples of torch's operations to rounding, the
same noise bitwise, the non-finite check kept, aliasing scores, and the fallback without numba."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg
from sgmlab.samplers import _fused

S = sg.samplers
SAMPLERS = {"exp-int": S.exponential_integrator, "em": S.euler_maruyama, "ancestral": S.ddpm_ancestral,
            "ancestral-large": S.DDPMAncestral("large"), "sde-1": S.exponential_sde_1, "sde-2": S.exponential_sde_2,
            "sde-3": S.exponential_sde_3, "dpm-1": S.dpm_solver_pp_1, "dpm-2m": S.dpm_solver_pp_2m,
            "dpm-3m": S.dpm_solver_pp_3m, "dpm-3m-lof": S.DPMSolverPP(3, lower_order_final=True),
            "pf-euler": S.probability_flow_euler}
DENOISING = {"dpm-1", "dpm-2m", "dpm-3m", "dpm-3m-lof"}


def run(sampler, score, x0, grid, seed=1, **kw):
    return sampler(score, x0, grid, generator=torch.Generator().manual_seed(seed), **kw)


def both(sampler, score, x0, grid, monkeypatch):
    fused = run(sampler, score, x0, grid)
    monkeypatch.setattr(_fused, "ENABLED", False)
    plain = run(sampler, score, x0, grid)
    monkeypatch.setattr(_fused, "ENABLED", True)
    return fused, plain


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_steps_give_the_samples_of_torch_operations(name, dtype, monkeypatch):
    """The same noise from the same generator calls, so the two paths differ by rounding only (a wrong
    draw or coefficient differs by order 1). float64: within 1e-12 over 15 steps. float32: the
    kernels compute in float64 and round once, torch in float32 throughout, and a sample near the
    boundary between modes amplifies the difference; so 99% of the entries agree to 1e-4 and the
    fused float32 samples are no farther from the float64 ones than torch's (up to 20%)."""
    q = sg.targets.mixture2d()
    grid = sg.grids.log_snr(5.0, 1e-3, 15)
    grid = sg.grids.denoised(grid) if name in DENOISING else grid
    x0 = sg.processes.OU().prior_sample(3000, 2, generator=torch.Generator().manual_seed(0))
    fused, plain = both(SAMPLERS[name], sg.scores.exact(q), x0.to(dtype), grid, monkeypatch)
    assert fused.dtype == plain.dtype == dtype and not fused.equal(x0.to(dtype))
    if dtype == torch.float64:
        torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
        return
    assert float(torch.quantile((fused - plain).abs().flatten(), 0.99)) < 1e-4
    exact = run(SAMPLERS[name], sg.scores.exact(q), x0, grid)
    assert (fused - exact).abs().mean() <= 1.2 * (plain - exact).abs().mean()


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (64, 5), (1000, 3), (4097,), (0, 3)])
@pytest.mark.parametrize("chunk", [64, 1000, 1 << 22])
@pytest.mark.parametrize("enabled", [True, False])
def test_float64_draws_in_pieces_are_the_one_call_composition_bitwise(shape, chunk, enabled, monkeypatch):
    """standard_normal_ draws its float32 body in pieces (bounded memory) and scans for the tails
    with a kernel on the CPU: the numbers are those of add_noise_ on zeros, which draws the body in
    one call, bitwise, for pieces that leave a short remainder too (1000 = 15 x 64 + 40; 4097 x 1),
    and for a piece size that is no multiple of 16 (rounded down to one)."""
    from sgmlab import _random

    monkeypatch.setattr(_random, "CHUNK", chunk)
    monkeypatch.setattr(_fused, "ENABLED", enabled)
    a = _random.standard_normal_(torch.empty(shape, dtype=torch.float64), torch.Generator().manual_seed(3))
    b = _random.add_noise_(torch.zeros(shape, dtype=torch.float64), 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and (a.numel() == 0 or float(a.abs().max()) > 0)
    strided = torch.empty((*shape, 2), dtype=torch.float64)[..., 0]
    assert torch.equal(_random.standard_normal_(strided, torch.Generator().manual_seed(3)), b)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), max_size=300))
def test_the_tail_scan_finds_exactly_the_draws_beyond_the_tail(values):
    from sgmlab.samplers import _kernels

    z = np.array(values, dtype=np.float32)
    out = np.empty(z.size, dtype=np.int64)
    count = _kernels.far(z, 3.0, out)
    assert np.array_equal(out[:count], np.flatnonzero(np.abs(z) > 3.0))


@pytest.mark.parametrize("name", ["exp-int", "sde-2", "dpm-3m", "pf-euler"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_score_is_caught_at_its_step_on_the_fused_path(name, bad):
    q = sg.targets.mixture2d()
    exact = sg.scores.exact(q)
    calls = []

    def score(x, t):
        calls.append(t)
        s = exact(x, t)
        if len(calls) == 3:
            s[5, 1] = bad
        return s

    x0 = sg.processes.OU().prior_sample(500, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match=r"step 3 of 10 .* in 1 of 500 samples"):
        run(SAMPLERS[name], score, x0, sg.grids.log_snr(5.0, 1e-3, 10))


def test_a_write_after_the_kernel_voids_its_finite_verdict():
    x = torch.zeros(100, 3, dtype=torch.float64)
    _fused.affine_(x, 0.5, [(1.0, torch.ones_like(x))])
    assert _fused.known_finite(x) and not _fused.known_finite(x.clone())
    x[4, 2] = float("nan")
    assert not _fused.known_finite(x)
    with pytest.raises(FloatingPointError, match="in 1 of 100 samples"):
        S.base.check_step(x, "test", 0, 1, 1.0, 0.5)


@pytest.mark.parametrize("name", ["exp-int", "sde-3", "dpm-2m"])
@pytest.mark.parametrize("enabled", [True, False])
def test_a_score_that_returns_its_input_or_a_view_of_it(name, enabled, monkeypatch):
    """The samplers update their state in place and the multistep ones keep scores: a score that
    hands back its input must give the samples of one that returns a copy."""
    monkeypatch.setattr(_fused, "ENABLED", enabled)
    x0 = sg.processes.OU().prior_sample(400, 2, generator=torch.Generator().manual_seed(0))
    grid = sg.grids.log_snr(2.0, 1e-1, 8)
    copy = run(SAMPLERS[name], lambda x, t: x.clone(), x0, grid)
    for aliasing in (lambda x, t: x, lambda x, t: x[:, :]):
        assert torch.equal(run(SAMPLERS[name], aliasing, x0, grid), copy)


def test_without_numba_the_samplers_use_torch_operations(monkeypatch):
    monkeypatch.setattr(_fused, "_kernels", lambda: None)
    q = sg.targets.mixture2d()
    x = sg.sample(sg.scores.exact(q), 500, 2, nfe=10, generator=torch.Generator().manual_seed(0))
    monkeypatch.undo()
    y = sg.sample(sg.scores.exact(q), 500, 2, nfe=10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch_size", [None, 128])
def test_sg_sample_starts_on_its_own_prior_draws_but_a_users_sampler_gets_them_untouched(batch_size):
    """sg.sample hands its prior draws to sgmlab's samplers to update in place (no copy); a sampler of
    the user's that runs one of them twice on its x_init must see x_init unchanged the second time."""
    q = sg.targets.mixture2d()
    grid = sg.grids.denoised(sg.grids.log_snr(5.0, 1e-3, 9))

    def twice(score, x, grid, **kw):
        a, b = S.dpm_solver_pp_2m(score, x, grid, **kw), S.dpm_solver_pp_2m(score, x, grid, **kw)
        assert torch.equal(a, b)
        return a

    kw = dict(nfe=20, grid=grid, batch_size=batch_size)
    ours = sg.sample(sg.scores.exact(q), 500, 2, sampler=S.dpm_solver_pp_2m, generator=torch.Generator().manual_seed(0),
                     **kw)
    users = sg.sample(sg.scores.exact(q), 500, 2, sampler=twice, generator=torch.Generator().manual_seed(0), **kw)
    x0 = sg.processes.OU().prior_sample(500, 2, generator=torch.Generator().manual_seed(0))
    by_hand = torch.cat([S.dpm_solver_pp_2m(sg.scores.exact(q), b, grid) for b in x0.split(batch_size or 500)])
    assert torch.equal(ours, users) and torch.equal(ours, by_hand)


@pytest.mark.parametrize("name", ["exp-int", "sde-3", "dpm-3m", "pf-euler"])
def test_kernels_split_across_threads_give_the_one_thread_samples_bitwise(name, monkeypatch):
    """With torch on 3 threads each kernel runs on 3 ranges of the state in threads (the tail scan's
    positions merged in order): element by element the same arithmetic, so the same bits."""
    q = sg.targets.mixture2d()
    grid = sg.grids.log_snr(5.0, 1e-3, 10)
    x0 = sg.processes.OU().prior_sample(1001, 2, generator=torch.Generator().manual_seed(0))
    one = run(SAMPLERS[name], sg.scores.exact(q), x0, grid)
    threads = torch.get_num_threads()
    monkeypatch.setattr(_fused, "PER_THREAD", 64)
    torch.set_num_threads(3)
    try:
        split = run(SAMPLERS[name], sg.scores.exact(q), x0, grid)
        draws = sg.samplers.base.standard_normal_(torch.empty(1001, 2), torch.Generator().manual_seed(5))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, split)
    assert torch.equal(draws, sg.samplers.base.standard_normal_(torch.empty(1001, 2), torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("name", ["exp-int", "sde-2", "dpm-3m"])
def test_a_score_of_the_wrong_kind_is_refused_by_name(name):
    x0 = sg.processes.OU().prior_sample(50, 2, generator=torch.Generator().manual_seed(0))
    grid = sg.grids.log_snr(5.0, 1e-3, 4)
    with pytest.raises(ValueError, match=r"score returned a tensor on meta for a state on cpu"):
        run(SAMPLERS[name], lambda x, t: torch.empty(x.shape, device="meta"), x0, grid)
    for dtype in (torch.bool, torch.complex128):
        with pytest.raises(TypeError, match=f"score returned a {dtype} tensor"):
            run(SAMPLERS[name], lambda x, t: torch.zeros(x.shape, dtype=dtype), x0, grid)
    with pytest.raises(ValueError, match=r"expected a tensor of the input's shape \(50, 2\)"):
        run(SAMPLERS[name], lambda x, t: x[:, :1], x0, grid)
