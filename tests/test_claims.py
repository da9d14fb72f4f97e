"""The paper's claims in one command: the report, its verdicts, and the exact means they rest on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import sgmlab as sg
from sgmlab.experiments import claims as C


def test_claims_quick_writes_the_report_with_a_verdict_per_claim(tmp_path, capsys):
    from sgmlab.cli import main

    out = tmp_path / "claims"
    assert main(["claims", "--quick", "--out", str(out), "--no-progress"]) == 0
    report = (out / "report.md").read_text()
    verdicts = [line for line in report.splitlines() if line.startswith("Verdict:")]
    assert len(verdicts) == 6 and all(v.startswith("Verdict: holds") for v in verdicts), verdicts
    assert report.count("**The paper predicts:**") == 6 and "arXiv 2209.11215" in report
    for k in range(1, 7):
        assert (out / f"claim{k}.png").stat().st_size > 0 and (out / f"claim{k}.csv").read_text().count("\n") >= 2
    data = json.loads((out / "claims.json").read_text())
    assert [c["number"] for c in data["claims"]] == [1, 2, 3, 4, 5, 6] and data["config"]["quick"] is True
    printed = capsys.readouterr().out
    assert printed.count("Verdict:") == 6 and "path KL" in printed
    # an existing result is refused before any work
    assert main(["claims", "--quick", "--out", str(out), "--no-progress"]) == 2
    assert "already holds results" in capsys.readouterr().err


def test_claim_6_fails_on_a_score_that_does_not_learn():
    """The title's verdict can fail: a trained network's score with a bias of 0.5 added (an error that
    training does not remove) keeps the score part and the bound from falling."""
    def biased(res):
        s = res.model.score_fn()
        return lambda x, t: s(x, t) + 0.5

    r = C.claim_learned(C.ClaimsConfig(quick=True), score_of=biased)
    assert r.verdict.startswith("FAILS") and "less than 10-fold" in r.verdict, r.verdict


def test_output_density_in_1d_is_the_exact_law():
    """The density propagation claim 1 rests on equals the exact output law (affine scores)."""
    q = sg.targets.Gaussian(torch.tensor([1.0]), torch.tensor([[0.25]]))
    grid = sg.grids.uniform(3.0, 1e-2, 30)
    xs = torch.linspace(-10.0, 12.0, 2000)
    dx = float(xs[1] - xs[0])
    for score, bias in ((sg.scores.exact(q), None), (sg.scores.perturbed(sg.scores.exact(q), q, 0.3), "bias")):
        p = C.output_density_1d(score, grid, xs)
        law = sg.samplers.exact_output_law(sg.samplers.exponential_integrator, q, grid,
                                           bias=score if bias else None)
        exact = torch.exp(law.log_prob(xs[:, None]))
        assert 0.5 * float((p - exact).abs().sum()) * dx < 1e-6


def test_fit_slope_recovers_a_known_slope():
    g = np.random.default_rng(0)
    x = np.linspace(0, 3, 20)
    s = C.fit_slope(x, 1.7 * x + 0.3 + 0.01 * g.standard_normal(20))
    assert s.contains(1.7) and 0 < s.half_width < 0.02
    assert math.isinf(C.fit_slope([1.0, 2.0], [1.0, 3.0]).half_width)


def test_claim_result_reports_its_parts():
    r = C.ClaimResult(9, "a title", "a prediction", ["one", "two"], "holds: because", [{"a": 1}])
    text = r.report()
    assert text.startswith("## Claim 9: a title") and "- one" in text and "\nVerdict: holds: because\n" in text
    assert r.as_dict()["rows"] == [{"a": 1}]


@pytest.mark.parametrize("argv", [["claims", "--seed", "x"], ["claims", "--quick", "extra"]])
def test_claims_bad_arguments(argv, tmp_path):
    from sgmlab.cli import main

    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "c")])
    assert e.value.code == 2 and not (tmp_path / "c").exists()
