"""Samplers: exact output laws against Monte Carlo, convergence rates, effects of T and delta,
the samplers' differences, the contract, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import sgmlab as sg

from scipy import stats

from helpers import assert_moments_match, fit_slope, random_gaussian, z_threshold

OU = sg.processes.OU()
SAMPLERS = [sg.samplers.exponential_integrator, sg.samplers.euler_maruyama, sg.samplers.ddpm_ancestral,
            sg.samplers.DDPMAncestral("large")]
IDS = ["exp-int", "em", "ancestral-small", "ancestral-large"]
KL = sg.metrics.gaussian_kl


@pytest.mark.parametrize("sampler", SAMPLERS, ids=IDS)
@pytest.mark.parametrize("process", [OU, sg.processes.VP()], ids=["ou", "vp"])
def test_exact_output_law_matches_monte_carlo(sampler, process, gen):
    q = random_gaussian(3, gen)
    T = 4.0 if process is OU else 1.0
    grid = sg.grids.exponential(T, 1e-2, 12)  # coarse on purpose: the law is far from q
    law = sg.samplers.exact_output_law(sampler, q, grid, process=process)
    x0 = process.prior_sample(40_000, 3, generator=gen)
    x = sampler(sg.scores.exact(q, process), x0, grid, process=process, generator=gen)
    assert_moments_match(x, law.mean, law.cov, p_value=1e-3)


def test_exact_output_law_matches_full_matrix_recursion(gen):
    """An independent derivation: propagate (mean, cov) with the full d x d step matrices."""
    q = random_gaussian(4, gen)
    grid = sg.grids.two_phase(3.0, 1e-2, 9)
    for sampler in SAMPLERS:
        mu, S = torch.zeros(4), torch.eye(4)
        for t, tn in zip(grid[:-1].tolist(), grid[1:].tolist()):
            c = sampler.coefficients(OU, t, tn)
            qt = OU.marginal(q, t)
            M = c.cx * torch.eye(4) - c.cs * qt.precision
            mu = M @ mu + c.cs * qt.precision @ qt.mean
            S = M @ S @ M.T + c.noise_std**2 * torch.eye(4)
        law = sg.samplers.exact_output_law(sampler, q, grid)
        assert torch.allclose(law.mean, mu, atol=1e-12) and torch.allclose(law.cov, S, atol=1e-12)


def test_samplers_differ_but_agree_to_first_order(gen):
    q = random_gaussian(3, gen)
    laws = {i: [sg.samplers.exact_output_law(s, q, sg.grids.uniform(6.0, 1e-2, n)) for n in (20, 40, 80, 160)]
            for i, s in zip(IDS, SAMPLERS)}
    # distinct samplers: different output laws on the same grid
    for a in IDS:
        for b in IDS:
            if a < b:
                assert KL(laws[a][0], laws[b][0]) > 1e-4, (a, b)
    # the same seed gives different samples
    x0 = OU.prior_sample(100, 3, generator=gen)
    grid = sg.grids.uniform(6.0, 1e-2, 20)
    out = [s(sg.scores.exact(q), x0, grid, generator=torch.Generator().manual_seed(0)) for s in SAMPLERS]
    for i in range(len(out)):
        for j in range(i):
            assert (out[i] - out[j]).abs().max() > 1e-3
    # ... and they agree as h -> 0: the distance between the exponential integrator and EM shrinks
    d = [KL(a, b) for a, b in zip(laws["exp-int"], laws["em"])]
    assert all(d[i + 1] < d[i] for i in range(3))


@pytest.mark.parametrize("sampler", SAMPLERS[:2], ids=IDS[:2])
def test_discretisation_error_rate(sampler, gen):
    """Error against the early-stopped target q_delta as the step shrinks (T large so the prior's
    error is ~e^{-2T} negligible). Theorem 2 guarantees TV <~ sqrt(h) (KL <~ h); on Gaussians the
    step is weakly first order, so the measured rates are W2 ~ h and KL ~ h^2: log-log slopes 1 and 2."""
    q = random_gaussian(3, gen)
    T, delta = 12.0, 1e-2
    q_delta = OU.marginal(q, delta)
    hs, kls, w2s = [], [], []
    for n in (400, 800, 1600, 3200, 6400):
        law = sg.samplers.exact_output_law(sampler, q, sg.grids.uniform(T, delta, n))
        hs.append((T - delta) / n)
        kls.append(KL(law, q_delta))
        w2s.append(sg.metrics.gaussian_w2(law, q_delta))
    assert abs(fit_slope(hs, kls) - 2.0) < 0.1
    assert abs(fit_slope(hs, w2s) - 1.0) < 0.05


def test_effect_of_T_is_exponential(gen):
    """Fine grid, growing T. For q = N(m, I) the exact reverse flow contracts the prior's mean
    error e^{-T} m by another e^{-T}: KL(p || q_delta) -> |m|^2 e^{-4T} / 2. In any case the output
    is no further from q_delta than N(0, I) from q_T (data processing), and KL(q_T || N(0, I)) <=
    e^{-2T} KL(q || N(0, I)) (forward convergence; Chen et al. 2023)."""
    m = torch.tensor([1.5, -1.0])
    q = sg.targets.Gaussian(m, torch.eye(2))
    std = sg.targets.Gaussian(torch.zeros(2), torch.eye(2))
    Ts = [1.0, 1.5, 2.0, 2.5, 3.0]
    kls = []
    for T in Ts:
        law = sg.samplers.exact_output_law(sg.samplers.exponential_integrator, q, sg.grids.uniform(T, 1e-3, int(8000 * T)))
        kls.append(KL(law, OU.marginal(q, 1e-3)))
        assert kls[-1] <= KL(std, OU.marginal(q, T)) * 1.01
        assert KL(OU.marginal(q, T), std) <= math.exp(-2 * T) * KL(q, std) + 1e-15
    slope = fit_slope([math.exp(T) for T in Ts], kls)
    assert abs(slope + 4.0) < 0.05
    assert kls[-1] == pytest.approx(0.5 * float(m @ m) * math.exp(-4 * Ts[-1]), rel=0.02)
    # a generic target: at least e^{-2T} in KL (the theorem's e^{-T} in TV)
    q = random_gaussian(3, gen)
    kls = [KL(sg.samplers.exact_output_law(sg.samplers.exponential_integrator, q, sg.grids.uniform(T, 1e-2, int(8000 * T))),
              OU.marginal(q, 1e-2)) for T in Ts]
    assert fit_slope([math.exp(T) for T in Ts], kls) < -2.0


def test_effect_of_delta(gen):
    """Early stopping: the output targets q_delta. Its distance to q grows with delta and obeys
    W2(q_delta, q)^2 <= (1 - e^{-delta})^2 m_2^2 + (1 - e^{-2 delta}) d (early stopping; Chen et al. 2023)."""
    q = random_gaussian(3, gen)
    m2 = q.second_moment()
    w_prev = 0.0
    for delta in (1e-3, 1e-2, 1e-1, 0.5):
        q_delta = OU.marginal(q, delta)
        law = sg.samplers.exact_output_law(sg.samplers.exponential_integrator, q, sg.grids.uniform(10.0, delta, 20_000))
        assert KL(law, q_delta) < 1e-4
        w = sg.metrics.gaussian_w2(q_delta, q)
        assert w > w_prev
        assert w**2 <= (1 - math.exp(-delta)) ** 2 * m2 + (1 - math.exp(-2 * delta)) * 3
        w_prev = w


def test_exponential_integrator_is_clock_free_but_em_is_not(gen):
    """The exponential integrator on VP over grid s equals it on OU over tau(s); EM does not."""
    q = random_gaussian(2, gen)
    vp = sg.processes.VP()
    s_grid = sg.grids.uniform(1.0, 1e-3, 15)
    tau_grid = vp.ou_time(s_grid)
    for sampler, same in [(sg.samplers.exponential_integrator, True), (sg.samplers.ddpm_ancestral, True),
                          (sg.samplers.euler_maruyama, False)]:
        a = sg.samplers.exact_output_law(sampler, q, s_grid, process=vp)
        b = sg.samplers.exact_output_law(sampler, q, tau_grid, process=OU)
        assert (KL(a, b) < 1e-20) == same


def test_paper_step_formula_exactly(gen):
    """One step of exponential_integrator is Y' = e^h Y + 2(e^h - 1) s + sqrt(e^{2h} - 1) xi."""
    score = lambda x, t: torch.sin(x) * t  # noqa: E731 - any function will do
    x0 = torch.randn(5, 2, generator=gen)
    h = 0.3
    out = sg.samplers.exponential_integrator(score, x0, [1.0, 1.0 - h], generator=torch.Generator().manual_seed(7))
    xi = sg.samplers.base.standard_normal_(torch.empty(5, 2), torch.Generator().manual_seed(7))
    expected = math.exp(h) * x0 + 2 * math.expm1(h) * score(x0, 1.0) + math.sqrt(math.expm1(2 * h)) * xi
    assert torch.allclose(out, expected, atol=1e-14)


def test_contract_callback_reproducibility_and_dtype(gen):
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    x0 = OU.prior_sample(64, 2, generator=gen)
    seen = []
    grid = sg.grids.uniform(3.0, 1e-2, 7)
    a = sg.samplers.exponential_integrator(score, x0, grid, generator=torch.Generator().manual_seed(3),
                                           callback=lambda info: seen.append((info.i, info.t, info.t_next)))
    b = sg.samplers.exponential_integrator(score, x0, grid, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, x0)  # x_init is not modified
    assert [s[0] for s in seen] == list(range(7)) and seen[0][1] == 3.0 and seen[-1][2] == 1e-2
    calls = []
    sg.samplers.euler_maruyama(lambda x, t: calls.append(t) or -x, x0, grid)
    assert calls == grid[:-1].tolist()  # one score evaluation per step, at the left end


def test_sampler_bad_input(gen):
    q = sg.targets.Gaussian([0.0, 0.0], torch.eye(2))
    score = sg.scores.exact(q)
    x0 = torch.zeros(4, 2)
    grid = sg.grids.uniform(1.0, 1e-2, 4)
    s = sg.samplers.exponential_integrator
    with pytest.raises(ValueError, match=r"x_init must be a floating tensor of shape \(n, d\)"):
        s(score, torch.zeros(4), grid)
    with pytest.raises(ValueError, match="x_init contains NaN"):
        s(score, torch.full((4, 2), float("nan")), grid)
    with pytest.raises(ValueError, match="x_init is empty"):
        s(score, torch.zeros(0, 2), grid)
    with pytest.raises(ValueError, match="strictly decreasing"):
        s(score, x0, [0.1, 0.5])
    with pytest.raises(ValueError, match="positive time"):
        s(score, x0, [1.0, 0.0])
    with pytest.raises(TypeError, match="score must be a callable"):
        s("score", x0, grid)
    with pytest.raises(ValueError, match=r"score returned \(4, 3\); expected .* \(4, 2\)"):
        s(lambda x, t: torch.zeros(4, 3), x0, grid)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\); got \(4, 3\)"):
        s(score, torch.zeros(4, 3), grid)
    with pytest.raises(FloatingPointError, match="non-finite"):
        s(lambda x, t: x * float("nan"), x0, grid)
    with pytest.raises(ValueError, match="beyond the process's range"):
        s(score, x0, [2.0, 0.5], process=sg.processes.VP())
    with pytest.raises(TypeError, match="process must be an sgmlab process"):
        s(score, x0, grid, process="ou")
    with pytest.raises(ValueError, match="variance must be 'small' or 'large'"):
        sg.samplers.DDPMAncestral("medium")
    with pytest.raises(TypeError, match="exact output laws need a Gaussian target"):
        sg.samplers.exact_output_law(s, sg.targets.mixture2d(), grid)


def test_standard_normal_noise_is_exactly_normal(gen):
    """Kolmogorov-Smirnov against N(0, 1) at p = 1e-3, moments, and tails down to 1e-5."""
    z = sg.samplers.base.standard_normal_(torch.empty(1_000_000), gen)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    assert abs(float(z.mean())) < z_threshold(1e-3, 2) * 1e-3
    assert abs(float(z.var()) - 1) < z_threshold(1e-3, 2) * math.sqrt(2) * 1e-3
    for c in (3.0, 4.0):
        p = 2 * stats.norm.sf(c)
        frac = float((z.abs() > c).double().mean())
        assert abs(frac - p) < z_threshold(1e-3, 2) * math.sqrt(p / 1e6)
    assert torch.isfinite(z).all()


def test_the_noise_body_and_tails_have_the_normal_law(gen):
    """The float64 draws are a composition: float32 Box-Muller within |z| <= 3, exact inversion beyond.
    Body: chi-square over 600 bins of [-3, 3] on 2e7 draws (p = 1e-3); tails: the mass beyond 3 and
    the law of |z| given |z| > 3, by Kolmogorov-Smirnov against the truncated normal (p = 1e-3)."""
    from sgmlab.samplers.base import TAIL, add_noise_

    z = sg.samplers.base.standard_normal_(torch.empty(20_000_000), gen)
    counts = torch.histc(z, bins=600, min=-3, max=3).double()
    edges = torch.linspace(-3, 3, 601, dtype=torch.float64)
    expected = torch.diff(torch.special.ndtr(edges)) * z.numel()
    assert float(((counts - expected) ** 2 / expected).sum()) < stats.chi2.ppf(1 - 1e-3, 599)
    far = z[z.abs() > TAIL].abs()
    p = float(2 * stats.norm.sf(TAIL))
    assert abs(far.numel() - p * z.numel()) < z_threshold(1e-3, 2) * math.sqrt(p * z.numel())
    tail_cdf = lambda v: 1 - stats.norm.sf(v) / stats.norm.sf(TAIL)  # noqa: E731
    assert stats.kstest(far.numpy(), tail_cdf).pvalue > 1e-3 and float(far.max()) > 5.0
    # adding noise in place draws the same numbers and gives the same sums, bitwise
    x = torch.randn(300, 7, generator=gen, dtype=torch.float64)
    a = x.clone().add_(sg.samplers.base.standard_normal_(torch.empty_like(x), torch.Generator().manual_seed(4)),
                       alpha=0.3)
    assert torch.equal(a, add_noise_(x.clone(), 0.3, torch.Generator().manual_seed(4)))


def test_sample_in_float32_keeps_float64_grids_and_stays_close(gen):
    q = sg.targets.mixture2d()
    x64 = sg.sample(sg.scores.exact(q), 2000, 2, nfe=20, generator=torch.Generator().manual_seed(0))
    x32 = sg.sample(sg.scores.exact(q), 2000, 2, nfe=20, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float32)
    assert x32.dtype == torch.float32 and torch.isfinite(x32).all()
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        sg.sample(sg.scores.exact(q), 10, 2, nfe=5, dtype=torch.float16)
    # the same prior draws in float32: the deterministic default's outputs agree to float32 rounding (about
    # 1e-7 relative, amplified where trajectories part between modes; benchmarks/float32.md)
    x0 = sg.processes.OU().prior_sample(2000, 2, generator=gen)
    plan = sg.default_plan(20)
    y64 = plan.sampler(sg.scores.exact(q), x0, plan.grid)
    y32 = plan.sampler(sg.scores.exact(q), x0.float(), plan.grid)
    diff = (y32.double() - y64).norm(dim=1)
    assert y32.dtype == torch.float32 and float(diff.pow(2).mean().sqrt()) < 1e-5 and float(diff.max()) < 1e-3
    assert x64.dtype == torch.float64


@pytest.mark.parametrize("name", ["dpm_solver_pp_3m", "dpm_solver_pp_2m", "unipc_3", "probability_flow_heun",
                                  "probability_flow_euler", "exponential_sde_2", "exponential_integrator",
                                  "euler_maruyama", "unadjusted_langevin", "predictor_corrector"])
def test_no_sampler_returns_nan_silently(name, gen):
    """A score that goes NaN on some samples at step 3 gives a FloatingPointError from the shared loop
    naming the sampler, the step, its times and the count (DPM-Solver++, UniPC and the ODE samplers used
    to return NaN; the check used to run once, at the end)."""
    q = sg.targets.mixture2d()
    exact = sg.scores.exact(q)
    grid = sg.grids.uniform(3.0, 1e-2, 5)
    bad_t = float(grid[2])

    def bad(x, t):
        s = exact(x, t)
        if t <= bad_t:
            s[:3] = float("nan")
        return s

    x0 = sg.processes.OU().prior_sample(20, 2, generator=gen)
    # the step whose score evaluations first reach t <= grid[2]: Heun and the corrector evaluate at a step's
    # end too, Langevin always at the grid's last time
    step = {"predictor_corrector": 2, "probability_flow_heun": 2, "unadjusted_langevin": 1}.get(name, 3)
    rows = 20 if name == "predictor_corrector" else 3  # its step size averages the score over the batch
    t0, t1 = float(grid[step - 1]), float(grid[step])
    with pytest.raises(FloatingPointError, match=rf"step {step} of 5 \(t = {t0:.6g} -> {t1:.6g}\) produced non-finite "
                                                 rf"values in {rows} of 20 samples"):
        getattr(sg.samplers, name)(bad, x0, grid, generator=gen)


@pytest.mark.parametrize("name", ["cld_exponential_integrator", "cld_sscs", "cld_euler_maruyama"])
def test_no_cld_sampler_returns_nan_silently(name, gen):
    q = sg.targets.mixture2d()
    cld = sg.processes.CLD()
    exact = sg.scores.exact(q, cld)

    def bad(z, t):
        s = exact(z, t)
        s[:2] = float("inf")
        return s

    with pytest.raises(FloatingPointError, match=r"step 1 of 4 .* non-finite values in 2 of 10 samples"):
        getattr(sg.samplers, name)(bad, cld.prior_sample(10, 2, generator=gen), sg.grids.uniform(2.0, 0.1, 4),
                                   generator=gen)


def test_callback_sees_every_step_and_a_finite_sum_overflow_is_no_error(gen):
    """The loop calls back once per step with the new state; a state whose sum overflows but whose
    values are finite is not refused."""
    seen = []
    x0 = torch.full((4, 2), 1e308, dtype=torch.float64)
    out = sg.samplers.probability_flow_euler(lambda x, t: torch.zeros_like(x), x0, [0.2, 0.1, 0.05],
                                             callback=lambda info: seen.append((info.i, info.t, info.t_next)))
    assert torch.isfinite(out).all() and not torch.isfinite(out.sum())
    assert seen == [(0, 0.2, 0.1), (1, 0.1, 0.05)]


def test_sample_in_chunks_bounds_memory_and_keeps_deterministic_output(gen):
    """sg.sample runs the sampler on chunks of batch_size rows: a deterministic sampler's output is the
    same as in one pass; a stochastic one's is reproducible for the same batch_size."""
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    one = sg.sample(score, 1000, 2, nfe=10, generator=torch.Generator().manual_seed(0))
    chunked = sg.sample(score, 1000, 2, nfe=10, generator=torch.Generator().manual_seed(0), batch_size=64)
    assert torch.equal(one, chunked)
    kw = dict(nfe=10, sampler=sg.samplers.exponential_integrator, batch_size=100)
    a = sg.sample(score, 500, 2, generator=torch.Generator().manual_seed(1), **kw)
    b = sg.sample(score, 500, 2, generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a, b) and torch.isfinite(a).all()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        sg.sample(score, 10, 2, nfe=5, batch_size=0)


@pytest.mark.parametrize("name", list(sg.catalogue.SAMPLERS))
def test_the_catalogue_tells_the_truth_about_each_sampler(name):
    """Every entry's evaluations per step, determinism and family hold when the sampler runs; the
    command line offers it; the exact-law route gives the law of its outputs (Gaussian targets)."""
    from sgmlab.cli import build_parser

    e = sg.catalogue.SAMPLERS[name]
    cld = e.family == "cld"
    q = sg.targets.Gaussian([0.5, -1.0], [[1.0, 0.3], [0.3, 0.5]])
    process = sg.processes.CLD() if cld else sg.processes.OU()
    calls = []
    exact = sg.scores.exact(q, process)

    def score(x, t):
        calls.append(t)
        return exact(x, t)

    grid = sg.grids.uniform(3.0, 1e-2, 6)
    x0 = process.prior_sample(64, 2, generator=torch.Generator().manual_seed(0))
    out = [e.sampler(score, x0, grid, process=process, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    assert len(calls) == 2 * 6 * e.evaluations
    assert torch.equal(out[0], out[1]) == e.deterministic
    sample = next(a for a in build_parser()._subparsers._group_actions[0].choices["sample"]._actions
                  if "--sampler" in a.option_strings)
    assert name in sample.choices
    if e.exact_law is not None:
        law = sg.catalogue.EXACT_LAWS[e.exact_law](e.sampler, q, grid, process=process)
        if cld:
            law = law.project(range(2))
        x = e.sampler(exact, process.prior_sample(200_000, 2, generator=torch.Generator().manual_seed(3)), grid,
                      process=process, generator=torch.Generator().manual_seed(4))
        x = sg.processes.CLD.positions(x) if cld else x
        se = (law.cov.diagonal() / 200_000).sqrt()
        assert ((x.mean(0) - law.mean).abs() < z_threshold(1e-3, 4) * se).all()


def test_a_strided_prior_draw_gives_the_samples_of_its_contiguous_copy():
    q = sg.targets.mixture2d()
    x0 = torch.randn(2, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).T  # a strided view
    grid = sg.grids.uniform(5.0, 1e-3, 5)
    for sampler in (sg.samplers.exponential_integrator, sg.samplers.exponential_sde_2, sg.samplers.dpm_solver_pp_3m):
        a = sampler(sg.scores.exact(q), x0, grid, generator=torch.Generator().manual_seed(1))
        b = sampler(sg.scores.exact(q), x0.contiguous(), grid, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a, b)
