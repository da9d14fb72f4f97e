"""The command line: the demo, sample's outputs, help, and bad input that loses nothing."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from sgmlab.cli import build_parser, main


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_writes_results_and_prints_measured_next_to_exact(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, _ = run(["demo", "--n", "2000", "--steps", "50", "--out", str(out), "--no-progress"], capsys)
    assert code == 0
    assert "mode weights measured" in stdout and "exact [0.5000, 0.3000, 0.2000]" in stdout
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.json", "samples.npy", "samples.png"}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sampler"] == "exponential_integrator" and cfg["steps"] == 50 and cfg["target"] == "mixture2d"
    m = json.loads((out / "metrics.json").read_text())
    assert m["score_evaluations"] == 50
    assert m["samples"]["mode_tv"]["value"] < 0.05
    assert np.load(out / "samples.npy").shape == (2000, 2)


@pytest.mark.parametrize("sampler", ["exponential_integrator", "euler_maruyama", "ddpm_ancestral"])
def test_sample_gaussian_reports_exact_errors(tmp_path, capsys, sampler):
    out = tmp_path / sampler
    code, stdout, _ = run(["sample", "--target", "gaussian", "--dim", "3", "--sampler", sampler, "--steps", "20",
                           "--n", "500", "--grid", "two_phase", "--out", str(out), "--no-progress"], capsys)
    assert code == 0 and "kl_output_to_q_delta" in stdout
    m = json.loads((out / "metrics.json").read_text())
    assert m["exact"]["kl_output_to_q_delta"] > 0
    assert (out / "samples.png").stat().st_size > 1000


def test_sample_same_seed_same_samples(tmp_path, capsys):
    args = ["sample", "--target", "ring", "--steps", "10", "--n", "300", "--no-progress", "--process", "vp-cosine",
            "--T", "0.99"]
    run(args + ["--out", str(tmp_path / "a")], capsys)
    run(args + ["--out", str(tmp_path / "b")], capsys)
    assert np.array_equal(np.load(tmp_path / "a" / "samples.npy"), np.load(tmp_path / "b" / "samples.npy"))


def test_targets_lists_builtins(capsys):
    code, stdout, _ = run(["targets"], capsys)
    assert code == 0 and all(name in stdout for name in ("mixture2d", "ring", "gaussian", "mixture"))


def test_help_documents_every_option(capsys):
    sub = build_parser()._subparsers._group_actions[0].choices["sample"]
    for action in sub._actions:
        assert action.help, action.dest
    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    helptext = capsys.readouterr().out
    for opt in ("--target", "--sampler", "--grid", "--steps", "--T", "--delta", "--n", "--seed", "--out"):
        assert opt in helptext


@pytest.mark.parametrize("argv, match", [
    (["sample", "--target", "nope"], "invalid choice: 'nope'"),
    (["sample", "--sampler", "heun"], "invalid choice: 'heun'"),
    (["sample", "--steps", "0"], "expected an integer >= 1; got 0"),
    (["sample", "--delta", "-1"], "expected a finite number > 0"),
    (["sample", "--T", "nan"], "expected a finite number > 0"),
])
def test_bad_arguments_are_refused_by_the_parser(argv, match, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and match in capsys.readouterr().err


def test_bad_values_lose_nothing_already_written(tmp_path, capsys):
    out = tmp_path / "kept"
    out.mkdir()
    (out / "metrics.json").write_text("precious")
    code, _, err = run(["sample", "--out", str(out), "--no-progress", "--n", "100", "--steps", "5"], capsys)
    assert code == 2 and "already holds results" in err
    assert (out / "metrics.json").read_text() == "precious"
    new = tmp_path / "new"
    for argv, match in [(["--delta", "10"], "delta must be smaller than T"),
                        (["--target", "ring", "--dim", "3"], "2-dimensional"),
                        (["--process", "vp-linear", "--T", "5"], "beyond the range")]:
        code, _, err = run(["sample", "--out", str(new), "--no-progress"] + argv, capsys)
        assert code == 2 and match in err
        assert not new.exists()


def test_plan_prints_the_three_answers(tmp_path, capsys):
    code, stdout, _ = run(["plan", "--target", "gaussian", "--dim", "2", "--eps", "0.2", "--no-progress",
                           "--out", str(tmp_path / "p")], capsys)
    assert code == 0
    for text in ("(a) Theorem 2", "(b) certified bound", "uniform", "two_phase", "(c) later rates", "Li-Yan"):
        assert text in stdout
    plan = json.loads((tmp_path / "p" / "plan.json").read_text())
    assert plan["certified"]["uniform"]["tv_bound"] <= 0.1 and plan["theorem"]["N_paper"] > 0


def test_bound_prints_theorem_certified_and_measured_and_writes_a_figure(tmp_path, capsys):
    out = tmp_path / "b"
    code, stdout, _ = run(["bound", "--target", "gaussian", "--dim", "3", "--steps", "10", "40", "--no-progress",
                           "--out", str(out)], capsys)
    assert code == 0 and "TV bound" in stdout and "KL bound" in stdout and "measured" in stdout
    assert "rigorous" in stdout  # each column says how it was obtained
    rows = json.loads((out / "bounds.json").read_text())["rows"]
    assert [r["steps"] for r in rows] == [10, 40]
    for r in rows:
        assert r["measured"]["value"] - 4 * r["measured"]["error"] <= r["certified"]["tv_bound"]
    assert (out / "bounds.png").stat().st_size > 1000
    code, _, _ = run(["bound", "--target", "mixture2d", "--steps", "8", "--n", "500", "--n-paths", "100",
                      "--eps-score", "0.2", "--error-shape", "localized", "--no-progress",
                      "--out", str(tmp_path / "m")], capsys)
    assert code == 0


@pytest.mark.parametrize("argv, match", [
    (["plan", "--eps", "0"], "expected a finite number > 0"),
    (["plan", "--eps", "1.5", "--target", "gaussian", "--dim", "2"], "eps must be"),
    (["bound", "--steps"], "expected at least one argument"),
    (["bound", "--eps-score", "-1"], "eps_score must be a finite number >= 0"),
    (["bound", "--target", "ring", "--dim", "3"], "2-dimensional"),
    (["bound", "--T", "0.5", "--delta", "1"], "delta must be smaller than T"),
])
def test_plan_and_bound_bad_input(argv, match, capsys, tmp_path):
    try:
        code = main(argv + ["--no-progress", "--out", str(tmp_path / "x")])
    except SystemExit as e:
        code = e.code
    assert code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_train_then_sample_from_the_model(tmp_path, capsys):
    model = tmp_path / "model"
    code, stdout, _ = run(["train", "--data", "mixture2d", "--n", "2000", "--steps", "60", "--hidden", "32",
                           "--eval-every", "30", "--out", str(model), "--no-progress"], capsys)
    assert code == 0 and "eval loss" in stdout
    assert {"config.json", "data.json", "checkpoint.safetensors"} <= {p.name for p in model.iterdir()}
    # resume to more steps: said to differ from one run of that length (the cosine schedule is laid out again)
    code, stdout, _ = run(["train", "--data", "mixture2d", "--n", "2000", "--steps", "90", "--hidden", "32",
                           "--eval-every", "30", "--out", str(model), "--resume", "--no-progress"], capsys)
    assert code == 0 and "laid out over 60 steps and is now laid out over 90" in stdout
    assert "differs from one uninterrupted run of 90 steps" in stdout
    out = tmp_path / "s"
    for sampler in ("exponential_integrator", "ddpm_ancestral"):
        code, stdout, _ = run(["sample", "--model", str(model), "--sampler", sampler, "--steps", "20", "--n", "500",
                               "--out", str(out / sampler), "--no-progress"], capsys)
        assert code == 0 and "score error" in stdout and "mode weights measured" in stdout
        m = json.loads((out / sampler / "metrics.json").read_text())
        assert len(m["score_error"]["eps2"]) == 64  # its own grid (PROFILE_STEPS), whatever --steps
        assert {"samples.png", "score_error.png", "samples.npy"} <= {p.name for p in (out / sampler).iterdir()}


def test_train_digits_and_evaluate(tmp_path, capsys):
    model = tmp_path / "digits"
    code, _, _ = run(["train", "--data", "digits", "--steps", "20", "--batch-size", "64", "--hidden", "8",
                      "--eval-every", "20", "--out", str(model), "--no-progress"], capsys)
    assert code == 0
    code, stdout, _ = run(["sample", "--model", str(model), "--steps", "10", "--n", "200", "--out",
                           str(tmp_path / "s"), "--no-progress"], capsys)
    assert code == 0 and "class_histogram" in stdout and "nearest_train_distance" in stdout
    assert (tmp_path / "s" / "samples.png").exists()


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "nope"], "unknown data 'nope'"),
    (["train", "--data", "ring", "--resume"], "no checkpoint"),
    (["sample", "--model", "/nonexistent"], "no checkpoint.safetensors"),
])
def test_train_and_model_bad_input(argv, match, tmp_path, capsys):
    code = main(argv + ["--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and match in capsys.readouterr().err


def _same_rows(a, b):
    """Typed rows equal in every field (NaN equal to NaN) but the timings."""
    from dataclasses import asdict

    a, b = [asdict(r) for r in a], [asdict(r) for r in b]
    keep = [k for k in a[0] if k not in ("wall_seconds", "score_seconds")]
    return all(ra.keys() == rb.keys() and all(ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k]) for k in keep)
               for ra, rb in zip(a, b, strict=True))


def test_bench_checkpoints_give_the_rows_of_one_uninterrupted_run(tmp_path):
    import torch

    from sgmlab.experiments.bench import BenchConfig, run_bench

    config = BenchConfig(targets=("gaussian10", "mixture2d"), budgets=(6,), n=1000, n_gaussian=1000, peers=False)
    whole = run_bench(config)
    part = tmp_path / "partial"
    first = run_bench(config, checkpoint=part)
    assert _same_rows(whole, first) and len(list(part.glob("*.pt"))) == 4
    # a run stopped before these two methods finished: they run again, the others are read back
    (part / "mixture2d-6-sgmlab.pt").unlink()
    (part / "gaussian10-6-paper.pt").unlink()
    said: list[str] = []
    again = run_bench(config, progress=said.append, checkpoint=part)
    assert _same_rows(whole, again)  # the coupled differences too: the same prior draws
    assert [m.endswith("(read back)") for m in said if "evaluations," in m] == [True, False, False, True]
    # another configuration, or a damaged file, is refused before any work, naming the file
    before = sorted(p.name for p in part.iterdir())
    with pytest.raises(ValueError, match="gaussian10-6-paper.pt was written by another bench configuration"):
        run_bench(BenchConfig(targets=("mixture2d",), budgets=(6,), n=2000, peers=False), checkpoint=part)
    (part / "mixture2d-6-paper.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="mixture2d-6-paper.pt cannot be read"):
        run_bench(config, checkpoint=part)
    assert sorted(p.name for p in part.iterdir()) == before
    assert torch.load(part / "gaussian10-6-sgmlab.pt", weights_only=True)["config"] == config.as_dict()


def test_bench_resume_continues_a_run_and_refuses_what_would_lose_it(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "--targets", "mixture2d", "--budgets", "6", "--n", "500", "--no-peers", "--out", str(out)]
    code, _, err = run(args, capsys)
    assert code == 0 and "mixture2d, 6 evaluations, sgmlab: mmd2_exact" in err
    results = (out / "results.csv").read_text()
    (out / "partial" / "mixture2d-6-paper.pt").unlink()  # as if stopped before the paper's sampler finished
    code, _, err = run(args + ["--no-progress"], capsys)
    assert code != 0 and "--resume" in err and (out / "results.csv").read_text() == results
    for extra, message in ((["--resume", "--force"], "pass one of them"),
                           (["--resume", "--n", "600"], "another bench configuration")):
        code, _, err = run(args + extra, capsys)
        assert code != 0 and message in err and (out / "results.csv").read_text() == results
    code, _, err = run(args[:-2] + ["--resume"], capsys)
    assert code != 0 and "give its folder with --out" in err
    code, _, err = run(args + ["--resume"], capsys)
    assert code == 0 and "sgmlab: mmd2_exact" in err and "(read back)" in err
    untimed = [{k: v for k, v in r.items() if not k.endswith("_seconds")} for r in csv.DictReader(io.StringIO(results))]
    assert untimed == [{k: v for k, v in r.items() if not k.endswith("_seconds")}
                       for r in csv.DictReader((out / "results.csv").open())]


def test_bound_measures_the_perturbed_sampler(tmp_path):
    """The measured column follows the score error: exact laws for a bias (the TV grows with eps),
    the TV of the projection on the error's direction for a localized error in d > 2."""
    from sgmlab.experiments.bounds import BoundConfig, bounds_figure, run_bounds
    from sgmlab.theory import RIGOROUS

    vals = []
    for eps in (0.0, 0.1, 0.3):
        _, rows = run_bounds(BoundConfig(target="gaussian", dim=2, steps=(30,), eps_score=eps, n_paths=50))
        vals.append(rows[0].measured)
        assert rows[0].measured_name.startswith("TV (Monte Carlo from the exact output law)")
        assert rows[0].measured <= rows[0].certified.tv_bound
    assert vals[0] < vals[1] < vals[2]
    cfg = BoundConfig(target="gaussian", dim=4, steps=(20,), eps_score=0.2, error_shape="localized", n=4000)
    _, rows = run_bounds(cfg)
    assert "projection on the error's direction" in rows[0].measured_name
    assert rows[0].certified.method.startswith("split") and rows[0].certified.kind == RIGOROUS
    fig = bounds_figure(cfg, rows)
    assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "TV to q_delta"  # a TV: the TV axis
    import matplotlib.pyplot as plt

    plt.close(fig)


@pytest.mark.parametrize("sampler", ["default", "dpm_solver_pp_3m", "unipc_3", "probability_flow_heun",
                                     "exponential_sde_2", "ddpm_ancestral", "dpmpp_2m"])
def test_sample_reaches_every_sampler_by_its_library_name(sampler, tmp_path, capsys):
    code, stdout, _ = run(["sample", "--target", "gaussian", "--dim", "2", "--sampler", sampler, "--steps", "10",
                           "--n", "200", "--no-progress", "--out", str(tmp_path / "s")], capsys)
    assert code == 0
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["score_evaluations"] <= 10 and "kl_output_to_q_delta" in metrics["exact"]  # an exact-law route


@pytest.mark.parametrize("argv, match", [
    (["--sampler", "default", "--grid", "uniform"], "--sampler default brings its own grid, T and delta; drop --grid"),
    (["--sampler", "cld_sscs"], "cld_sscs samples CLD"),
    (["--sampler", "sscs"], "cld_sscs samples CLD"),
])
def test_sample_refuses_what_does_not_apply(argv, match, tmp_path, capsys):
    code, _, err = run(["sample", "--steps", "4", "--n", "20", "--no-progress", "--out", str(tmp_path / "s"), *argv],
                       capsys)
    assert code == 2 and match in err and not (tmp_path / "s").exists()


_NO_GPU = "this torch build has no CUDA device" if not torch.cuda.is_available() else "there are"


@pytest.mark.parametrize("argv, match", [
    (["sample", "--device", "nonsense"], "device 'nonsense' is not a device torch knows"),
    (["sample", "--device", "cuda:7"], _NO_GPU),
    (["sample", "--device", ""], "is not a device torch knows"),
    (["bench", "--targets", "mixture2d", "--budgets", "5", "--no-peers", "--device", "nonsense"], "not a device"),
    (["bench", "--suite", "heldout", "--device", "cuda"], "--suite heldout and train run on the CPU"),
])
def test_a_device_that_is_not_there_is_refused_before_any_work(argv, match, tmp_path, capsys):
    code, _, err = run([*argv, "--n", "20", "--no-progress", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and match in err and not (tmp_path / "s").exists()


def test_sample_on_the_cpu_by_name_is_the_default(tmp_path, capsys):
    outs = []
    for extra in ([], ["--device", "cpu"]):
        out = tmp_path / str(len(outs))
        code, _, _ = run(["sample", "--n", "50", "--steps", "5", "--no-progress", "--out", str(out), *extra], capsys)
        assert code == 0 and json.loads((out / "config.json").read_text())["device"] == "cpu"
        outs.append(np.load(out / "samples.npy"))
    assert np.array_equal(*outs)


def test_the_cli_is_thin():
    """No computation, file format or figure in the CLI: it builds configs, prepares folders, runs
    experiments, prints their reports and saves them (sgmlab.experiments.results.Result)."""
    import ast
    import inspect

    import sgmlab.cli as cli

    src = inspect.getsource(cli)
    for banned in ("matplotlib", "plotting", "write_json", "write_csv", "write_npy", "write_figure", "torch.save",
                   "json.dumps", "theory.", " metrics.", "(metrics."):
        assert banned not in src, banned
    prints = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
    assert len(prints) <= 14  # reports, "wrote ...", and the one-line messages of interrupted or failed runs


@pytest.mark.parametrize("argv,files", [
    (["plan", "--target", "gaussian", "--dim", "2", "--eps", "0.3", "--n-max", "64"], {"plan.json"}),
    (["compare-cld", "--dims", "2", "--nfes", "5", "--n", "500"], {"config.json", "results.csv", "kl_vs_d.png",
                                                                   "kl_vs_h.png", "mixture.png"}),
])
def test_every_result_reports_and_saves_what_files_lists(argv, files, tmp_path, capsys):
    from sgmlab.experiments import results

    saved = []
    real = results.Result.save

    def spy(self, folder):
        names = real(self, folder)
        saved.append((type(self).__name__, names, self.report()))
        return names

    results.Result.save = spy
    try:
        code, stdout, err = run([*argv, "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    finally:
        results.Result.save = real
    assert code == 0, err
    (kind, names, report), = saved
    assert set(names) == files == {p.name for p in (tmp_path / "r").iterdir()} and report in stdout


def test_a_library_bug_keeps_its_traceback_and_a_user_error_is_one_line(tmp_path, capsys, monkeypatch):
    import sgmlab.cli as cli

    def bug(*a, **k):
        raise TypeError("an internal bug")

    monkeypatch.setattr(cli, "run_sampling", bug)
    with pytest.raises(TypeError, match="an internal bug"):
        main(["sample", "--n", "100", "--steps", "5", "--out", str(tmp_path / "a"), "--no-progress"])
    assert not (tmp_path / "a").exists()  # the folder it made is removed all the same
    code, _, err = run(["sample", "--process", "vp-linear", "--T", "50", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_log_axes_are_labelled_as_plain_numbers_without_minor_labels():
    from sgmlab.plotting import _plt, readable_log_axes

    plt = _plt()
    fig, ax = plt.subplots()
    ax.loglog([0.11, 0.5], [1e-6, 3.0])
    readable_log_axes(fig)
    fig.canvas.draw()
    xs = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert set(xs) <= {"0.1", "0.2", "0.5", "1"} and len(xs) >= 2  # under two decades: 1, 2, 5 x 10^k
    ys = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert all(float(y) in (10.0 ** k for k in range(-8, 3)) for y in ys)  # more: powers of ten only
    assert not any(t.get_text() for t in ax.xaxis.get_minorticklabels() + ax.yaxis.get_minorticklabels())
    plt.close(fig)


def test_sample_runs_in_chunks_with_the_same_deterministic_output(tmp_path, capsys):
    """--batch-size bounds the working memory: a deterministic sampler's samples are the same in chunks
    of 7 rows as in one pass, a stochastic one's reproducible for the same chunk size."""
    def samples(*extra):
        out = tmp_path / f"s{len(list(tmp_path.iterdir()))}"
        code, _, err = run(["sample", "--n", "50", "--steps", "8", "--out", str(out), "--no-progress", *extra], capsys)
        assert code == 0, err
        return np.load(out / "samples.npy")

    det = ["--sampler", "dpm_solver_pp_3m", "--grid", "log_snr"]
    assert np.array_equal(samples(*det), samples(*det, "--batch-size", "7"))
    assert np.array_equal(samples("--batch-size", "7"), samples("--batch-size", "7"))
    assert json.loads((tmp_path / "s3" / "config.json").read_text())["batch_size"] == 7


def test_the_progress_bar_counts_every_chunk(capsys):
    """A sampler run in three chunks of rows calls back 3 x steps times: the bar grows a chunk at a
    time instead of running past its total."""
    from sgmlab.cli import _bar

    step, close = _bar(4, True, "sample")
    bar = close.__self__  # the tqdm bar whose close() this is
    for _ in range(12):
        step(None)
    assert (bar.n, bar.total) == (12, 12) and bar.desc.startswith("sample, chunk 3")
    close()
