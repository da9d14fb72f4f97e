"""sg.tune: the certificate holds against exact W2, the plan beats the default on its own objective,
respects its budget, is reproducible, survives a save and load, and refuses bad input."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg
from sgmlab.cli import main
from sgmlab.defaults import GridSpec
from sgmlab.experiments.heldout import FAMILIES, Family, family_targets, random_gaussian
from sgmlab.samplers import deterministic_output_law
from sgmlab.tuning import TunedPlan

SMALL = Family("small", 3, (1, 6), (-3.0, 0.0), (-0.5, 1.0), (0.0, 2.0), (1, 2), (2, 2), (-1.0, 0.0))


def _tune(q, nfe, seed=0, **kw):
    kw = {"n_pilot": 64, "max_trials": 30, "reference_steps": 256, **kw}
    return sg.tune(sg.scores.exact(q), q.dim, nfe, generator=torch.Generator().manual_seed(seed), **kw)


def _reference_law(q, tp):
    r = tp.reference
    return deterministic_output_law(sg.samplers.dpm_solver_pp_3m, q, sg.grids.log_snr(r.T, r.delta, r.steps))


def test_the_certificate_bounds_the_exact_w2_at_its_level():
    # For a Gaussian target both outputs are affine maps of the same draw, diagonal in the target's
    # eigenbasis, so the coupling is optimal: E|plan - ref|^2 = W2^2 exactly, and the certificate's
    # coverage is that of its upper confidence bound. At level 0.95 over 20 targets, 6 or more misses
    # have probability 3e-4; a certificate on the tuning draws, or no certificate, misses about half.
    misses, ratios = 0, []
    for i in range(20):
        q = random_gaussian(SMALL, torch.Generator().manual_seed(i))
        tp = _tune(q, 6 + i % 3, seed=i)
        w2 = sg.metrics.gaussian_w2(deterministic_output_law(tp.sampler, q, tp.grid), _reference_law(q, tp))
        misses += w2 > tp.certificate.w2_upper
        ratios.append(tp.certificate.w2_upper / w2)
    assert misses <= 5
    assert sorted(ratios)[10] < 1.5  # and it is tight: the median bound is within 1.5x of the truth


def test_the_chain_to_the_target_adds_labelled_terms():
    """The chain's terms are labelled and add up; it bounds the exact W2 to the target at its level
    (0.95, through its first term): over 5 seeds, 3 or more misses have probability 1e-3."""
    q = sg.targets.Gaussian([0.0, 1.0], [[1.0, 0.0], [0.0, 0.01]])
    misses = 0
    for seed in range(5):
        tp = _tune(q, 10, seed=seed, target=q)
        c = tp.certificate
        assert [t[0] for t in c.terms][0] == "W2(plan, reference)"
        assert c.w2_to_target == pytest.approx(sum(t[1] for t in c.terms))
        assert all(("rigorous" in how) or ("estimated" in how) or ("statistical" in how) for _, _, how in c.terms)
        misses += sg.metrics.gaussian_w2(deterministic_output_law(tp.sampler, q, tp.grid), q) > c.w2_to_target
        assert "W2(plan, target)" in tp.describe()
    assert misses <= 2


def test_the_tuned_plan_is_never_worse_than_the_default_on_its_own_objective():
    # recomputed here from the same draws: the first n_pilot prior draws of the generator; the plain
    # coupled objective (the within-mode one leaves out the draws that switch modes on the mixture)
    for q in (sg.targets.Gaussian([0.0, 1.0], [[1.0, 0.0], [0.0, 0.01]]), sg.targets.mixture2d()):
        tp = _tune(q, 8, objective="coupled")
        z = sg.processes.OU().prior_sample(128, q.dim, generator=torch.Generator().manual_seed(0))[:64]
        score = sg.scores.exact(q)
        ref = sg.samplers.dpm_solver_pp_3m(score, z, sg.grids.log_snr(12.0, 1e-8, 256))
        plan = sg.default_plan(8)
        default = float(((plan.sampler(score, z, plan.grid) - ref) ** 2).sum(1).mean())
        ours = float(((tp.sampler(score, z, tp.grid) - ref) ** 2).sum(1).mean())
        assert tp.default_objective == pytest.approx(default, rel=1e-9)
        assert tp.objective == pytest.approx(ours, rel=1e-9)
        assert ours <= default


def test_the_default_is_returned_when_the_search_cannot_beat_it():
    q = sg.targets.anisotropic_gaussian(3)
    tp = _tune(q, 8, max_trials=1)  # one trial: the plain log-SNR grid from T = 12, worse than the default
    assert tp.source.startswith("the fixed default") and tp.spec is None
    plan = sg.default_plan(8)
    assert torch.equal(tp.grid, plan.grid) and tp.sampler == plan.sampler
    assert tp.objective == tp.default_objective


def test_max_trials_caps_the_search():
    q = sg.targets.mixture2d()
    calls = []

    def counted(x, t):
        calls.append(x.shape[0])
        return sg.scores.exact(q)(x, t)

    tp = sg.tune(counted, 2, 6, n_pilot=16, max_trials=12, reference_steps=16,
                 generator=torch.Generator().manual_seed(0))
    # probe (2 points), reference (32 x 16) and its half (16 x 8), the default and the certificate
    # (16 x 6 each), and the trials (16 x 6 each): at most 12 trials and a few of Nelder-Mead's overrun
    fixed = 2 + 32 * 16 + 16 * 8 + 2 * 16 * 6
    trials = (sum(calls) - fixed) / (16 * 6)
    assert tp.cost == sum(calls) and trials == int(trials) and trials <= 12 + 5


@pytest.mark.parametrize("sampler", [sg.samplers.dpm_solver_pp_3m, sg.samplers.dpm_solver_pp_2m, sg.samplers.unipc_3])
@pytest.mark.parametrize("nfe", [1, 2, 7])
def test_the_plan_respects_its_budget(sampler, nfe):
    q = sg.targets.mixture2d()
    tp = _tune(q, nfe, sampler=sampler, max_trials=12)
    calls = []

    def counted(x, t):
        calls.append(t)
        return sg.scores.exact(q)(x, t)

    x = sg.sample(counted, 50, 2, nfe=nfe, plan=tp)
    assert len(calls) == nfe and tp.grid.shape[0] - 1 == nfe == tp.evaluations  # the budget, spent whole
    assert x.shape == (50, 2) and bool(torch.isfinite(x).all())
    assert tp.cost > 0


def test_a_vp_process_gets_a_grid_in_its_own_clock():
    vp = sg.processes.VP(sg.processes.LinearBeta())
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q, vp)
    tp = sg.tune(score, 2, 6, process=vp, n_pilot=32, max_trials=12, t_range=(1e-3, 1.0),
                 generator=torch.Generator().manual_seed(0))
    g = tp.grid[tp.grid > 0]
    assert float(g[0]) <= 1.0 + 1e-12 and float(g[-1]) >= 1e-3 - 1e-15  # VP clock, inside the range
    x = sg.sample(score, 100, 2, nfe=6, plan=tp, process=vp)
    assert bool(torch.isfinite(x).all()) and tp.reference.T == pytest.approx(float(vp.ou_time(1.0)))


def test_tuning_is_reproducible_from_its_generator():
    q = sg.targets.mixture(3, 3)
    a, b, c = _tune(q, 6, seed=1), _tune(q, 6, seed=1), _tune(q, 6, seed=2)
    assert torch.equal(a.grid, b.grid) and a.certificate == b.certificate and a.cost == b.cost
    assert not torch.equal(a.grid, c.grid) or a.certificate != c.certificate


def test_a_plan_survives_save_and_load_and_a_damaged_file_is_refused(tmp_path):
    q = sg.targets.mixture2d()
    tp = _tune(q, 6, target=q)
    path = tp.save(tmp_path / "plan.json")
    back = TunedPlan.load(path)
    assert torch.equal(back.grid, tp.grid) and back.certificate == tp.certificate and back.spec == tp.spec
    assert back.sampler == tp.sampler and back.cost == tp.cost
    d = json.loads(path.read_text())
    assert len(d["sha256"]) == 64
    # an edit with the checksum kept is refused as an edit; without it, each field is checked for itself
    (tmp_path / "bad.json").write_text(json.dumps({**d, "cost": 1}))
    with pytest.raises(ValueError, match="checksum .* does not match"):
        TunedPlan.load(tmp_path / "bad.json")
    d.pop("sha256")
    cert, ref = d["certificate"], d["reference"]
    for change, match in [({"sampler": "euler"}, "sampler 'euler' is not one of"),
                          ({"sampler": "evil"}, "sampler 'evil' is not one of"),
                          ({"grid": [1.0, 2.0]}, "strictly decreasing"),
                          ({"evaluations": 3}, "steps for 3 evaluations"),
                          ({"certificate": None}, "not a valid tuned plan"),
                          ({"certificate": {**cert, "level": 7.0}}, "certificate.level = 7.0"),
                          ({"certificate": {**cert, "n": -5}}, "certificate.n = -5"),
                          ({"certificate": {**cert, "w2_upper": -1.0}}, "certificate.w2_upper"),
                          ({"cost": -1_000_000_000}, "cost = -1000000000"),
                          ({"reference": {**ref, "delta": 0.0}}, "reference"),
                          ({"spec": {"T": 3.0, "delta": 1e-2, "density": [1.0] * 4, "denoise": False}},
                           "spec does not give its grid")]:
        (tmp_path / "bad.json").write_text(json.dumps({**d, **change}))
        with pytest.raises(ValueError, match=match):
            TunedPlan.load(tmp_path / "bad.json")
    assert torch.equal(TunedPlan.from_dict(d).grid, tp.grid)  # a plan without a checksum (older files) still reads
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the plan file"):
        TunedPlan.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("[" * 100_000 + "]" * 100_000)  # nested too deep for the parser
    with pytest.raises(ValueError, match="cannot read the plan file"):
        TunedPlan.load(tmp_path / "bad.json")


def test_bad_input_is_refused_with_its_name():
    q = sg.targets.mixture2d()
    s = sg.scores.exact(q)
    for kw, err, match in [({"nfe": 0}, ValueError, "nfe must be an integer >= 1"),
                           ({"nfe": 2.5}, TypeError, "nfe must be an integer"),
                           ({"d": 3}, ValueError, "does d match"),
                           ({"level": 0.5}, ValueError, "level must be one of"),
                           ({"sampler": sg.samplers.exponential_integrator}, ValueError, "fits grids for"),
                           ({"t_range": (1.0, 0.5)}, ValueError, "t_range"),
                           ({"t_range": (float("nan"), 5.0)}, ValueError, "t_range"),
                           ({"target": sg.targets.mixture(3)}, ValueError, "target must be"),
                           ({"n_pilot": 2}, ValueError, "n_pilot"),
                           ({"generator": 3}, TypeError, "generator")]:
        args = {"d": 2, "nfe": 5, **kw}
        with pytest.raises(err, match=match):
            sg.tune(s, args.pop("d"), args.pop("nfe"), max_trials=5, **args)
    with pytest.raises(TypeError, match="score must be a callable"):
        sg.tune("score", 2, 5)

    def nan_score(x, t):
        out = s(x, t)
        return out * float("nan") if t < 0.5 else out

    with pytest.raises(FloatingPointError, match="NaN or infinite values at t ="):
        sg.tune(nan_score, 2, 5, n_pilot=16, max_trials=5)


def test_sample_takes_a_plan_and_refuses_a_plan_with_a_sampler():
    q = sg.targets.mixture2d()
    tp = _tune(q, 5)
    with pytest.raises(ValueError, match="not both"):
        sg.sample(sg.scores.exact(q), 10, 2, nfe=5, plan=tp, sampler=tp.sampler)
    with pytest.raises(TypeError, match="SamplePlan or TunedPlan"):
        sg.sample(sg.scores.exact(q), 10, 2, nfe=5, plan="fast")
    with pytest.raises(ValueError, match="more than the budget"):
        sg.sample(sg.scores.exact(q), 10, 2, nfe=4, plan=tp)
    # a grid ending at t = 0 goes to a sampler that takes it, and one that cannot is refused by it
    with pytest.raises(ValueError, match="final denoising step"):
        sg.sample(sg.scores.exact(q), 10, 2, nfe=5, sampler=sg.samplers.exponential_integrator,
                  grid=sg.grids.denoised(sg.grids.log_snr(5.0, 1e-3, 4)))


@settings(max_examples=30, deadline=None)
@given(T=st.floats(0.5, 12.0), ratio=st.floats(1e-6, 0.5), steps=st.integers(1, 60),
       density=st.lists(st.floats(0.2, 5.0), min_size=1, max_size=6))
def test_log_snr_density_puts_steps_in_proportion_to_the_density(T, ratio, steps, density):
    g = sg.grids.log_snr_density(T, T * ratio, steps, density)
    assert g.shape == (steps + 1,) and g[0] == T and g[-1] == T * ratio and bool((g[:-1] > g[1:]).all())
    if len(set(density)) == 1:
        assert torch.allclose(g, sg.grids.log_snr(T, T * ratio, steps), rtol=1e-12, atol=0)
    # the log-SNR steps inside a piece are proportional to 1 / density there
    lam = -g - 0.5 * torch.log(-torch.expm1(-2 * g))
    h = lam[1:] - lam[:-1]
    width = float(lam[-1] - lam[0]) / len(density)
    mid = 0.5 * (lam[1:] + lam[:-1])
    piece = ((mid - lam[0]) / width).floor().clamp(0, len(density) - 1).long()
    expect = float(lam[-1] - lam[0]) / steps * sum(density) / len(density) / torch.tensor(density)[piece]
    inside = ((lam[1:] - lam[0]) / width).floor() == ((lam[:-1] - lam[0]) / width).floor()
    assert torch.allclose(h[inside], expect[inside], rtol=1e-9)


def test_log_snr_density_and_grid_spec_bad_input():
    with pytest.raises(ValueError, match="density must be positive"):
        sg.grids.log_snr_density(5.0, 1e-3, 10, [1.0, 0.0])
    with pytest.raises(ValueError, match="density contains NaN"):
        sg.grids.log_snr_density(5.0, 1e-3, 10, [1.0, float("nan")])
    with pytest.raises(ValueError, match="density is empty"):
        sg.grids.log_snr_density(5.0, 1e-3, 10, [])
    spec = GridSpec(9.0, 1e-3, (1.0, 2.0), True)
    assert spec.grid(10).shape == (11,) and spec.grid(10)[-1] == 0 and spec.grid(1).tolist() == [9.0, 0.0]
    assert GridSpec(9.0, 1e-3, (1.0,), False).grid(10)[-1] == 1e-3


def test_families_are_reproducible_and_held_out_differs_from_training():
    a = family_targets("heldout", 0, 3, 2)
    b = family_targets("heldout", 0, 3, 2)
    assert [n for n, _ in a] == [n for n, _ in b]
    assert all(torch.equal(x.mean, y.mean) if isinstance(x, sg.targets.Gaussian) else torch.equal(x.means, y.means)
               for (_, x), (_, y) in zip(a, b))
    train = family_targets("train", 0, 3, 0)
    assert not any(torch.equal(x.cov, y.cov) for (_, x) in train for (_, y) in a[:3] if x.dim == y.dim)
    assert set(FAMILIES) == {"train", "heldout", "modes-train", "modes-heldout"}
    with pytest.raises(ValueError, match="unknown family"):
        family_targets("test", 0, 1, 0)


def test_the_heldout_suite_runs_and_summarises(tmp_path, capsys):
    code = main(["bench", "--suite", "heldout", "--gaussians", "2", "--mixtures", "1", "--budgets", "6",
                 "--n", "400", "--peers", "dpmpp_2m", "unipc", "--out", str(tmp_path / "h"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "median ratio" in out and "tuned" in out
    rows = (tmp_path / "h" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 5  # 3 targets x (default, paper, 2 peers, tuned)
    assert (tmp_path / "h" / "heldout.png").exists()


@pytest.mark.parametrize("argv, match", [
    (["bench", "--suite", "heldout", "--peers", "ddpm"], "deterministic schedulers"),
    (["bench", "--suite", "heldout", "--targets", "digits"], "draws its own"),
    (["bench", "--suite", "heldout", "--gaussians", "0", "--mixtures", "0"], "at least one target"),
    (["bench", "--gaussians", "3"], "--suite heldout"),
    (["tune", "--nfe", "5"], "--target NAME"),
    (["tune", "--nfe", "5", "--target", "ring", "--model", "x"], "one of them"),
    (["tune", "--nfe", "5", "--model", "/nonexistent"], "no checkpoint.safetensors"),
])
def test_tune_and_suite_bad_input(argv, match, tmp_path, capsys):
    code = main(argv + ["--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.csv").exists()


def test_tune_a_target_then_a_model_and_sample_with_the_saved_plan(tmp_path, capsys):
    code = main(["tune", "--target", "gaussian", "--dim", "3", "--nfe", "6", "--n-pilot", "32", "--trials", "10",
                 "--out", str(tmp_path / "t"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "W2(plan, target) <=" in out and "tuning cost" in out
    assert TunedPlan.load(tmp_path / "t" / "plan.json").evaluations == 6 and (tmp_path / "t" / "plan.png").exists()

    model = tmp_path / "model"
    assert main(["train", "--data", "mixture2d", "--n", "1000", "--steps", "30", "--hidden", "16",
                 "--eval-every", "30", "--out", str(model), "--no-progress"]) == 0
    code = main(["tune", "--model", str(model), "--nfe", "8", "--n-pilot", "32", "--trials", "10", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and (model / "plan-nfe8.json").is_file() and "W2(plan, reference)" in out
    plan = TunedPlan.load(model / "plan-nfe8.json")
    assert plan.certificate.w2_to_target is None  # a trained model has no exact target to chain to
    assert float(plan.grid[0]) <= 5.0 + 1e-12 and float(plan.grid[plan.grid > 0][-1]) >= 1e-3 - 1e-15
    code = main(["tune", "--model", str(model), "--nfe", "8", "--no-progress"])
    assert code == 2 and "--force" in capsys.readouterr().err  # an existing plan is not replaced silently
    code = main(["sample", "--model", str(model), "--steps", "8", "--n", "300", "--out", str(tmp_path / "s"),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "using the tuned plan" in out
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert m["grid"] == "tuned plan" and m["plan"]["evaluations"] == 8
    (model / "plan-nfe9.json").write_text("{}")
    code = main(["sample", "--model", str(model), "--steps", "9", "--n", "30", "--out", str(tmp_path / "s3"),
                 "--no-progress"])
    assert code == 2 and "--force" in capsys.readouterr().err and not (tmp_path / "s3" / "samples.npy").exists()
    code = main(["sample", "--model", str(model), "--steps", "8", "--n", "300", "--sampler", "exponential_integrator",
                 "--out", str(tmp_path / "s2"), "--no-progress"])
    assert code == 0 and "using the tuned plan" not in capsys.readouterr().out
    assert math.isfinite(m["samples"]["sliced_w2"]["value"])


def test_the_plan_figure_draws_the_default_the_plan_was_measured_against():
    import matplotlib.pyplot as plt

    from sgmlab.grids import _log_snr
    from sgmlab.plotting import plan_figure

    q = sg.targets.Gaussian([0.0, 1.0], [[1.0, 0.0], [0.0, 0.01]])
    tp = sg.tune(sg.scores.exact(q), 2, 8, n_pilot=32, max_trials=8, reference_steps=16,
                 generator=torch.Generator().manual_seed(0))
    for default in (None, sg.default_plan(8, t_range=(1e-3, 5.0), trained=True).grid):
        fig = plan_figure(tp, "t", default)
        want = sg.default_plan(8).grid if default is None else default
        drawn = fig.axes[0].lines[1].get_ydata()
        assert list(drawn) == pytest.approx(_log_snr(want[want > 0]).tolist())
        plt.close(fig)


def test_a_plan_runs_only_in_the_process_it_was_tuned_for():
    """A VP plan's grid is in the VP clock: sg.sample refuses it under another process."""
    q = sg.targets.mixture2d()
    vp = sg.processes.VP(sg.processes.CosineBeta())
    tp = sg.tune(sg.scores.exact(q, vp), 2, 5, process=vp, n_pilot=16, max_trials=4, reference_steps=16,
                 generator=torch.Generator().manual_seed(0))
    assert tp.tuned_for["process"] == repr(vp)
    x = sg.sample(sg.scores.exact(q, vp), 20, 2, nfe=5, plan=tp, process=vp)
    assert x.shape == (20, 2)
    with pytest.raises(ValueError, match="tuned for the process VP"):
        sg.sample(sg.scores.exact(q), 20, 2, nfe=5, plan=tp)  # the OU clock

