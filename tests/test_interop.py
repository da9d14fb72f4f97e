"""diffusers interoperability: diffusers' schedulers driven by exact scores, and the ground-truth
bench (sgmlab's own schedulers: tests/test_schedulers.py)."""

from __future__ import annotations

import csv
import math

import pytest
import torch

import sgmlab as sg

pytest.importorskip("diffusers")

from sgmlab.interop.peers import PEERS, DiffusersPeer  # noqa: E402

OU = sg.processes.OU()


def test_peer_time_mapping_is_exact():
    """DDIM with the exact score converges to the target as the steps grow (exact laws), which fails
    if timesteps were mapped to the wrong OU times."""
    q = sg.targets.anisotropic_gaussian(3, cond=10.0)
    kls = [sg.metrics.gaussian_kl(sg.samplers.deterministic_output_law(DiffusersPeer("ddim", n), q, None), q)
           for n in (10, 50, 250)]
    assert kls[0] > kls[1] > kls[2] and kls[2] < 2e-3


@pytest.mark.parametrize("name", PEERS)
def test_each_peer_runs_within_budget(name, gen):
    calls = []
    q = sg.targets.mixture2d()
    exact = sg.scores.exact(q)
    x = DiffusersPeer(name, 12)(lambda x, t: calls.append(t) or exact(x, t), OU.prior_sample(64, 2, generator=gen),
                                generator=gen)
    assert len(calls) == 12 and x.shape == (64, 2) and torch.isfinite(x).all()  # one evaluation a step


def test_bench_smoke(tmp_path):
    from sgmlab.experiments.bench import BenchConfig, run_bench, summary

    said: list[str] = []
    rows = run_bench(BenchConfig(targets=("gaussian10", "mixture2d"), budgets=(10,), n=2000, n_gaussian=2000),
                     progress=said.append)
    # first the estimate, then a line per method as it finishes (a digits run at large n takes minutes per
    # method) with the time left, then per budget
    assert said[0].startswith("the bench should take about ")
    assert len(said) == len(rows) + 3 and said[1].startswith(f"[1 of {len(rows)}, ")
    assert "] gaussian10, 10 evaluations, sgmlab: kl_exact " in said[1] and "all done" in said[-2]
    assert said[-1] == "mixture2d, 10 evaluations done"
    table = summary(rows)
    assert {r["target"] for r in table} == {"gaussian10", "mixture2d"}
    g10 = next(r for r in table if r["target"] == "gaussian10")
    assert g10["metric"] == "kl_exact" and g10["sgmlab_wins"] == "yes" and g10["paper"] > g10["sgmlab"]
    m2 = [r for r in rows if r["target"] == "mixture2d"]
    assert {r["metric"] for r in m2} == {"mmd2_exact"} and all(r["se"] > 0 and r["noise_floor"] > 0 for r in m2)
    # every method started from the same prior draws; sgmlab's difference to itself is exactly zero
    ours = next(r for r in m2 if r["method"] == "sgmlab")
    assert ours["diff_vs_sgmlab"] == 0.0 and ours["diff_se"] == 0.0


def test_bench_verdict_rules():
    from sgmlab.experiments.bench import Z_VERDICT, verdict

    def peer(diff, se):
        return {"diff_vs_sgmlab": diff, "diff_se": se}

    assert verdict([peer(1.0, 0.0), peer(3.0 * Z_VERDICT, 1.0)]) == "yes"
    assert verdict([peer(1.0, 0.0), peer(0.5 * Z_VERDICT, 1.0)]) == "tie"   # one peer not resolved
    assert verdict([peer(1.0, 0.0), peer(-2.0 * Z_VERDICT, 1.0)]) == "no"   # one peer resolved better
    assert verdict([peer(-1e-9, 0.0)]) == "no" and verdict([]) == "n/a"  # no peers: nothing was won


def test_bench_tv_verdict_and_sizes():
    from sgmlab.experiments.bench import BenchConfig, tv_verdict

    def r(lo, hi):
        return {"tv_lower": lo, "tv_upper": hi}

    assert tv_verdict(r(0.0, 0.05), [r(0.1, 0.2), r(0.06, 0.5)]) == "yes"
    assert tv_verdict(r(0.0, 0.05), [r(0.1, 0.2), r(0.01, 0.5)]) == "tie"
    assert tv_verdict(r(0.3, 0.5), [r(0.0, 0.2)]) == "no"
    assert tv_verdict(r(math.nan, math.nan), [r(0.0, 0.2)]) == ""
    c = BenchConfig(targets=("mixture2d", "digits"), n=1000, n_by_target=(("digits", 300),))
    assert c.samples("digits") == 300 and c.samples("mixture2d") == 1000
    assert BenchConfig().samples("digits") == 50_000
    with pytest.raises(ValueError, match="unknown target"):
        BenchConfig(n_by_target=(("ring", 100),))
    with pytest.raises(ValueError, match="integer >= 4"):
        BenchConfig(n_by_target=(("digits", 2),))
    with pytest.raises(ValueError, match="peer_names is empty"):
        BenchConfig(peer_names=())
    with pytest.raises(ValueError, match=r"unknown diffusers peer\(s\) \['dpm'\]"):
        BenchConfig(peer_names=("unipc", "dpm"))
    with pytest.raises(ValueError, match="peers is False"):
        BenchConfig(peers=False, peer_names=("unipc",))


def test_bench_runs_only_the_named_peers(tmp_path):
    from sgmlab.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--targets", "mixture2d", "--budgets", "10", "--n", "200", "--peers", "dpmpp_2m", "unipc",
                 "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["method"] for r in rows] == ["sgmlab", "paper", "diffusers:dpmpp_2m", "diffusers:unipc"]


def test_bench_bad_sizes_write_nothing(tmp_path, capsys):
    from sgmlab.cli import main

    out = tmp_path / "bench"
    for argv, match in ((["--n", "1.5"], "integer >= 1"), (["--n", "foo=100"], "unknown target"),
                        (["--n", "10", "20"], "one common sample size"), (["--n", "digits=0"], "integer >= 1"),
                        (["--peers", "lms"], "unknown diffusers peer"),
                        (["--peers", "dpmpp_2m", "--no-peers"], "cannot go with --no-peers")):
        try:
            code = main(["bench", "--targets", "digits", "--out", str(out), *argv])
        except SystemExit as e:  # refused by the parser
            code = e.code
        assert code != 0 and match in capsys.readouterr().err
        assert not out.exists()


def test_interop_bad_input():
    with pytest.raises(ValueError, match="unknown diffusers peer"):
        DiffusersPeer("lms", 10)


@pytest.mark.parametrize("peer, sampler", [
    ("unipc", lambda nfe: sg.samplers.UniPC(2)),
    ("dpmpp_3m", lambda nfe: sg.samplers.DPMSolverPP(3, lower_order_final=nfe < 15)),  # diffusers' rule
    ("dpmpp_2m", lambda nfe: sg.samplers.dpm_solver_pp_2m)])
@pytest.mark.parametrize("nfe", [6, 10, 25])
def test_sgmlab_samplers_reproduce_diffusers(peer, sampler, nfe, gen):
    """Written from the papers' equations, UniPC (B2, order 2 with the corrector) and DPM-Solver++ on
    the peer's own grid agree with diffusers' schedulers to its float32 arithmetic."""
    q = sg.targets.mixture2d()
    score = sg.scores.exact(q)
    p = DiffusersPeer(peer, nfe)
    x0 = OU.prior_sample(500, 2, generator=gen)
    ours, theirs = sampler(nfe)(score, x0, p.ou_grid()), p(score, x0)
    assert (ours - theirs).abs().max() < 2e-5 * theirs.abs().max()
