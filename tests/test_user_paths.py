"""What the user paths write says what they did: every JSON file is strict JSON (RFC 8259: no NaN
or Infinity, which JavaScript's JSON.parse, jq and most non-Python readers reject; non-finite
values are null), each run records the sampler and grid it ran, and metrics cost what is chosen."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from sgmlab._io import strict_json, write_json
from sgmlab.cli import main


def _strict(path: Path) -> object:
    def refuse(constant: str) -> None:
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    obj = {"nan": math.nan, "inf": [1.0, -math.inf], "np": np.float64("nan"), "t": torch.tensor([1.0, math.inf]),
           "scalar": torch.tensor(2.5), "np32": np.float32(1.5), "int": np.int64(3)}
    back = _strict(write_json(tmp_path / "x.json", obj))
    assert back == {"nan": None, "inf": [1.0, None], "np": None, "t": [1.0, None], "scalar": 2.5, "np32": 1.5,
                    "int": 3}
    assert strict_json((1.0, math.nan)) == [1.0, None]


def test_every_json_file_the_commands_write_is_strict(tmp_path, capsys):
    runs = [["sample", "--target", "mixture2d", "--steps", "6", "--n", "400"],
            ["tune", "--target", "gaussian", "--dim", "2", "--nfe", "5", "--n-pilot", "16", "--trials", "6"],
            ["bound", "--target", "mixture2d", "--steps", "8", "--n", "500", "--n-paths", "100"],
            ["plan", "--target", "gaussian", "--dim", "2", "--eps", "0.3", "--n-max", "64"],
            ["claims", "--quick"],
            ["bench", "--targets", "mixture2d", "--budgets", "4", "--n", "300", "--peers", "ddim"]]
    written = []
    for i, argv in enumerate(runs):
        out = tmp_path / f"run{i}"
        assert main(argv + ["--out", str(out), "--no-progress"]) == 0, argv
        written += sorted(out.rglob("*.json"))
    capsys.readouterr()
    assert len(written) >= len(runs)
    for path in written:
        _strict(path)
    # and each says what ran: the tuned plan what it was tuned for, each claim its samplers and grids,
    # the bench every method's grid and the evaluations each made
    plan = _strict(tmp_path / "run1" / "plan.json")
    assert plan["tuned_for"]["process"] == "OU()" and plan["tuned_for"]["clock"] == "OU time"
    assert "gaussian" in plan["tuned_for"]["score"] and len(plan["grid"]) == 6
    for claim in _strict(tmp_path / "run4" / "claims.json")["claims"]:
        assert claim["ran"] and all(r["sampler"] and r["grids"] and r["score_evaluations"] for r in claim["ran"])
    assert "**Ran:**" in (tmp_path / "run4" / "report.md").read_text()
    ran = _strict(tmp_path / "run5" / "ran.json")["4"]
    assert set(ran) == {"sgmlab", "paper", "diffusers:ddim"}
    assert ran["sgmlab"]["grid"] == [float(v) for v in __import__("sgmlab").default_plan(4).grid]
    assert len(ran["diffusers:ddim"]["grid"]) == 5 and ran["paper"]["sampler"] == "exponential_integrator"
    import csv

    rows = list(csv.DictReader((tmp_path / "run5" / "results.csv").open()))
    assert {r["method"]: r["score_evaluations"] for r in rows}["diffusers:ddim"] == "4"


def test_a_model_run_records_what_ran_and_its_score_error_does_not_depend_on_steps(tmp_path, capsys):
    """metrics.json's ``ran``: the sampler, every grid time, the plan's source and the checkpoint; the
    eps_score profile is on a grid of its own, so --steps does not change the model's number."""
    import sgmlab as sg

    model = tmp_path / "model"
    assert main(["train", "--data", "mixture2d", "--n", "500", "--steps", "10", "--hidden", "8",
                 "--eval-every", "10", "--out", str(model), "--no-progress"]) == 0
    got = {}
    for steps in (6, 12):
        out = tmp_path / f"s{steps}"
        assert main(["sample", "--model", str(model), "--steps", str(steps), "--n", "200", "--out", str(out),
                     "--no-progress"]) == 0
        m = _strict(out / "metrics.json")
        ran = m["ran"]
        plan = sg.default_plan(steps, t_range=(1e-3, 5.0), trained=True)  # the vector recipe: OU on [1e-3, 5]
        assert ran["sampler"] == sg.catalogue.name_of(plan.sampler) and ran["grid"] == plan.grid.tolist()
        assert "trained-model default" in ran["plan"]["kind"] and ran["checkpoint"]["step"] == 10
        assert len(ran["checkpoint"]["sha256"]) == 64
        got[steps] = m["score_error"]["time_average_eps2"]
        assert "its own" in m["score_error"]["grid"]
        assert m["reference"].startswith("q: ")  # the default ends with the denoising step: measured against q
    assert got[6] == got[12]
    out = tmp_path / "uniform"  # the paper's sampler ends at delta: measured against q_delta
    assert main(["sample", "--model", str(model), "--steps", "6", "--grid", "uniform", "--n", "200", "--out", str(out),
                 "--no-progress"]) == 0
    assert _strict(out / "metrics.json")["reference"].startswith("q_delta")
    # a plan tuned for the model records the checkpoint it was tuned for, its process and clock
    assert main(["tune", "--model", str(model), "--nfe", "4", "--n-pilot", "16", "--trials", "4", "--no-progress"]) == 0
    tuned_for = _strict(model / "plan-nfe4.json")["tuned_for"]
    assert tuned_for["checkpoint"]["step"] == 10 and tuned_for["checkpoint"]["sha256"] == ran["checkpoint"]["sha256"]
    assert tuned_for["process"] == "OU()" and tuned_for["t_range"] == [1e-3, 5.0]
    assert sg.TunedPlan.load(model / "plan-nfe4.json").tuned_for == tuned_for
    # trained on, the model is another checkpoint: its old plan is refused, or run with --force and recorded
    assert main(["train", "--data", "mixture2d", "--n", "500", "--steps", "12", "--hidden", "8", "--eval-every", "10",
                 "--out", str(model), "--resume", "--no-progress"]) == 0
    capsys.readouterr()
    argv = ["sample", "--model", str(model), "--steps", "4", "--n", "100", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert "tuned for checkpoint" in err and "(step 10)" in err and "--force" in err
    assert not (tmp_path / "refused").exists()
    assert main(argv + ["--out", str(tmp_path / "forced"), "--force"]) == 0
    forced = _strict(tmp_path / "forced" / "metrics.json")["ran"]["plan"]
    assert forced["kind"] == "tuned plan" and "tuned for checkpoint" in forced["forced"]
    capsys.readouterr()


def test_a_default_target_run_records_the_grid_it_ran(tmp_path, capsys):
    import sgmlab as sg

    out = tmp_path / "s"
    assert main(["sample", "--sampler", "default", "--steps", "10", "--n", "300", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    m, c = _strict(out / "metrics.json"), _strict(out / "config.json")
    plan = sg.default_plan(10)
    assert m["ran"]["grid"] == plan.grid.tolist() and m["ran"]["sampler"] == sg.catalogue.name_of(plan.sampler)
    assert c["T"] is None and c["delta"] is None and "uniform" not in text.splitlines()[0]


def test_metrics_cost_what_the_user_chooses(tmp_path, capsys):
    got = {}
    for level in ("none", "fast", "all"):
        out = tmp_path / level
        assert main(["sample", "--target", "mixture2d", "--steps", "6", "--n", "800", "--metrics", level,
                     "--out", str(out), "--no-progress"]) == 0
        got[level] = _strict(out / "metrics.json")["samples"]
    assert got["none"] == {}
    assert got["fast"]["w2"]["n"] == 500 and got["all"]["w2"]["n"] == 800  # all: up to 2000 points
    assert set(got["fast"]) == set(got["all"]) and "mmd2_small_scales" in got["fast"]
    capsys.readouterr()
    try:
        code = main(["sample", "--metrics", "some", "--no-progress"])
    except SystemExit as e:
        code = e.code
    assert code != 0 and "invalid choice" in capsys.readouterr().err


def _inside(fig, artist) -> bool:
    fig.canvas.draw()
    box, frame = artist.get_window_extent(), fig.bbox
    return box.x0 >= frame.x0 - 1 and box.y0 >= frame.y0 - 1 and box.x1 <= frame.x1 + 1 and box.y1 <= frame.y1 + 1


def test_the_bench_figure_draws_every_value_where_it_is_and_marks_the_rest():
    from sgmlab.experiments.bench import bench_figures

    rows = [{"target": "t", "method": m, "nfe": n, "metric": "mmd2_exact", "value": v, "noise_floor": f}
            for m, n, v, f in [("sgmlab", 10, 2.6e-5, 1e-4), ("sgmlab", 20, 1.9e-7, 1e-4), ("sgmlab", 40, -3e-6, 1e-4),
                               ("diffusers:ddim", 10, 5e-3, 1e-4), ("diffusers:ddim", 20, 1e-3, 1e-4),
                               ("diffusers:ddim", 40, 4e-4, 1e-4)]]
    fig = bench_figures(rows)["bench_t.png"]
    ax = fig.axes[0]
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    assert 2.6e-5 in ys and 1.9e-7 in ys  # at their true positions, not clipped to one value
    open_markers = [line for line in ax.get_lines() if line.get_marker() in ("o", "v") and
                    line.get_markerfacecolor() == "none"]
    assert len(open_markers) == 3  # two under the floor, one <= 0
    assert ax.get_xlabel() and ax.get_ylabel() and _inside(fig, ax.get_legend())


def test_the_bound_figure_draws_a_tv_with_the_bounds_and_another_metric_apart():
    from types import SimpleNamespace

    from sgmlab.experiments.bounds import bounds_figure

    def row(h, measured, name):
        return SimpleNamespace(max_step=h, theorem=SimpleNamespace(total=2.0 * h), measured=measured,
                               certified=SimpleNamespace(tv_bound=0.5 * h, kind="rigorous"), measured_error=0.01,
                               measured_name=name)

    config = SimpleNamespace(C=1.0, target="mixture2d", grid="uniform", T=5.0, delta=1e-3, eps_score=0.0)
    fig = bounds_figure(config, [row(0.1, 0.02, "tv_histogram (noise floor as error)"),
                                 row(0.2, 0.04, "tv_histogram (noise floor as error)")])
    assert len(fig.axes) == 1  # a TV: on the bounds' own axis, so "below the bound" reads as below
    fig = bounds_figure(config, [row(0.1, 0.3, "sliced_w2"), row(0.2, 0.5, "sliced_w2")])
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "sliced_w2"  # its own panel, not a twin axis
    assert all(a.get_xlabel() and a.get_ylabel() for a in fig.axes) and _inside(fig, fig.axes[0].get_legend())


def test_the_heldout_figure_has_no_empty_panel():
    from sgmlab.experiments.heldout import heldout_figures

    rows = [{"metric": "mmd2_exact", "method": m, "nfe": n, "ratio": r} for m, n, r in
            [("sgmlab", 10, 0.5), ("tuned", 10, 0.2), ("sgmlab", 20, 1.0), ("tuned", 20, 0.9)]]
    fig = heldout_figures(rows)["heldout.png"]
    assert len(fig.axes) == 1 and fig.axes[0].get_xlabel() and fig.axes[0].get_ylabel()


def test_every_compare_cld_figure_labels_its_axes():
    from types import SimpleNamespace

    from sgmlab.experiments.compare_cld import compare_figures

    rows = [{"target": "gaussian", "metric": m, "method": meth, "d": d, "nfe": n, "value": 0.1 * d / n,
             "noise_floor": 0.0} for m in ("kl_to_q", "path_kl") for meth in ("ddpm", "cld", "cld_sscs")
            for d in (2, 4) for n in (5, 10)]
    rows += [{"target": "mixture2d", "metric": "tv_histogram", "method": meth, "d": 2, "nfe": n, "value": 0.3 / n,
              "noise_floor": 0.01} for meth in ("ddpm", "cld", "cld_sscs") for n in (5, 10)]
    figs = compare_figures(rows, SimpleNamespace(nfes=(5, 10), dims=(2, 4), T=5.0, delta=1e-3))
    for name, fig in figs.items():
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), name
            assert _inside(fig, ax.get_legend()), name


def test_a_table_figure_names_its_columns_and_shows_each_of_them(tmp_path):
    from sgmlab.learn.data import load_data
    from sgmlab.plotting import samples_vs_data

    rng = np.random.default_rng(0)
    (tmp_path / "t.csv").write_text("alpha,beta,gamma\n" + "\n".join(
        ",".join(f"{v:.4f}" for v in row) for row in rng.normal(size=(50, 3))) + "\n")
    data = load_data(str(tmp_path / "t.csv"))
    assert data.columns == ("alpha", "beta", "gamma")
    assert load_data(str(tmp_path / "t.csv"), columns=["gamma", "alpha"]).columns == ("gamma", "alpha")
    assert load_data("wine").columns[0] == "alcohol"
    fig = samples_vs_data(data.x + 0.1, data.x, "t", columns=data.columns)
    labels = {ax.get_xlabel() for ax in fig.axes if ax.axison}
    assert labels == {"alpha", "beta", "gamma"} and fig.axes[0].get_ylabel() == "beta"
    assert all(ax.get_ylabel() for ax in fig.axes if ax.axison)
    wide = torch.randn(40, 15, dtype=torch.float64)
    fig = samples_vs_data(wide, wide, "wide")
    assert "the first 11 of 15 columns" in fig._suptitle.get_text()
