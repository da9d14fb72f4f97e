"""Hostile input and finite extremes: a correct answer or a clear error naming the value, never a
silent NaN, inf or zero. (Started here; more entry points to come.)"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg


def _mixture(kind: str, g: torch.Generator) -> sg.targets.GaussianMixture:
    K, d = 3, 2
    means = 3 * torch.randn(K, d, generator=g)
    w = torch.rand(K, generator=g) + 0.1
    if kind == "full":
        A = torch.randn(K, d, d, generator=g)
        covs = A @ A.transpose(-1, -2) + 0.2 * torch.eye(d)
    elif kind == "diag":
        covs = torch.rand(K, d, generator=g) + 0.1
    else:
        covs = torch.rand(K, generator=g) + 0.1
    return sg.targets.GaussianMixture(w / w.sum(), means, covs)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["full", "diag", "spherical"]), seed=st.integers(0, 2**31 - 1),
       exponent=st.integers(100, 300), angle=st.floats(0, 2 * math.pi))
def test_mixture_score_is_finite_and_linear_far_out(kind, seed, exponent, angle):
    """Far from every mode the score is -Sigma_k^{-1}(x - m_k) of the nearest component: finite and
    asymptotically linear in x at every finite scale (it used to be NaN from 1e155 on: the squared distances overflowed)."""
    q = _mixture(kind, torch.Generator().manual_seed(seed))
    v = torch.tensor([[math.cos(angle), math.sin(angle)]])
    s_far, s_ref = q.score(10.0**exponent * v), q.score(1e100 * v)
    assert torch.isfinite(s_far).all()
    a, b = s_far / 10.0**exponent, s_ref / 1e100  # -Sigma^{-1} v, up to the affine part m / scale
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-9 * float(b.abs().max()))


@pytest.mark.parametrize("metric", ["w2", "sliced_w2", "mmd"])
@pytest.mark.parametrize("big", [1e3, 1e160, 1e300])
def test_sample_metrics_see_a_far_outlier(metric, big, gen):
    """One of 500 samples at 1e160: W2 is about 1e160 / sqrt(500), not 0 (POT got an infinite cost
    matrix), and the MMD is finite (it was NaN)."""
    q = sg.targets.mixture2d()
    x = q.sample(500, generator=gen)
    x[0, 0] = big
    m = getattr(sg.metrics, metric)(x, q, generator=torch.Generator().manual_seed(1))
    assert math.isfinite(m.value)
    if metric == "w2":
        assert m.value == pytest.approx(big / math.sqrt(500), rel=0.05 if big > 1e100 else 0.2)
    if metric == "sliced_w2":
        assert m.value > 0.1 * big / math.sqrt(500)
    x[1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        getattr(sg.metrics, metric)(x, q)


def test_grids_at_large_horizons():
    g = sg.grids.log_snr(400, 1e-3, 10)  # used to hold inf
    assert torch.isfinite(g).all() and bool((g[:-1] > g[1:]).all())
    for maker in (sg.grids.log_snr, sg.grids.karras, sg.grids.log_snr_focused):
        with pytest.raises(ValueError, match="T=1e\\+308 is too large"):
            maker(1e308, 1e-3, 10)


@pytest.mark.parametrize("call, err, match", [
    (lambda: sg.targets.ring(std=-0.35), ValueError, "std must be > 0"),
    (lambda: sg.targets.ring(k=0), ValueError, "k must be an integer >= 1"),
    (lambda: sg.targets.ring(radius=float("inf")), ValueError, "radius must be finite"),
    (lambda: sg.targets.anisotropic_gaussian(d=2.5), TypeError, "d must be an integer >= 1; got 2.5"),
    (lambda: sg.targets.anisotropic_gaussian(cond=float("nan")), ValueError, "cond must be finite"),
    (lambda: sg.targets.anisotropic_gaussian(cond=0.5), ValueError, "cond must be >= 1"),
    (lambda: sg.targets.anisotropic_gaussian(scale=-1), ValueError, "scale must be > 0"),
    (lambda: sg.targets.mixture(k=0), ValueError, "k must be an integer >= 1"),
])
def test_builtin_targets_name_the_bad_value(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.int32])
def test_targets_promote_what_the_math_cannot_run_in(dtype):
    """Target parameters in float16, bfloat16 or integers become float64 (Cholesky and solves do not
    run in half precision: it used to be a raw 'cholesky_cpu not implemented for Half')."""
    g = sg.targets.Gaussian(torch.zeros(2, dtype=dtype), (2 * torch.eye(2)).to(dtype))
    m = sg.targets.GaussianMixture(torch.tensor([1, 1]).to(dtype) / 2 if dtype.is_floating_point else [0.5, 0.5],
                                   torch.zeros(2, 2, dtype=dtype), torch.ones(2, dtype=dtype))
    assert g.cov.dtype == m.means.dtype == torch.float64
    assert sg.metrics.gaussian_kl(g, sg.targets.Gaussian(torch.zeros(2), torch.eye(2))) == pytest.approx(
        0.5 * (2 * 2 - 2 - 2 * math.log(2)))


def test_bool_parameters_and_half_precision_states_are_refused(gen):
    with pytest.raises(TypeError, match="mean must hold real numbers; got a torch.bool tensor"):
        sg.targets.Gaussian(torch.zeros(2, dtype=torch.bool), torch.eye(2))
    q = sg.targets.mixture2d()
    for dtype in (torch.float16, torch.bfloat16):
        with pytest.raises(TypeError, match=f"x_init is {dtype}: the samplers run in float32 or float64"):
            sg.samplers.dpm_solver_pp_3m(sg.scores.exact(q), torch.zeros(3, 2, dtype=dtype), sg.grids.uniform(1, 0.1, 3))
    x = sg.samplers.exponential_integrator(sg.scores.exact(q), torch.zeros(3, 2, dtype=torch.float32),
                                           sg.grids.uniform(1, 0.1, 3), generator=gen)
    assert x.dtype == torch.float32  # float32 runs, and stays float32


# -- a model folder is untrusted input ------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from sgmlab.learn import TrainConfig, train

    out = tmp_path_factory.mktemp("model")
    data = sg.targets.mixture2d().sample(512, generator=torch.Generator().manual_seed(0))
    train(data, TrainConfig(steps=20, hidden=16, depth=2, batch_size=64, eval_every=10, checkpoint_every=10),
          out=out)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_flipped_byte_in_the_weights_is_caught(model_dir, tmp_path):
    from sgmlab.learn import load_model

    bad = _copy(model_dir, tmp_path / "m")
    path = bad / "checkpoint.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01  # inside the tensor data, past the header
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checkpoint.safetensors fails its checksum"):
        load_model(bad)
    load_model(model_dir)  # the original loads


def test_a_config_that_lies_about_its_sizes_is_refused_before_allocating(model_dir, tmp_path):
    """hidden=10**6 would need terabytes: the sizes are checked against the weights on the meta
    device first (the file's checksum recomputed, as an attacker would)."""
    import json

    from safetensors.torch import save_file

    from sgmlab.learn import load_model
    from sgmlab.learn.train import _checksum, read_checkpoint

    bad = _copy(model_dir, tmp_path / "m")
    tensors, meta = read_checkpoint(bad)
    config = json.loads(meta["config"])
    config["hidden"] = 10**6
    meta = {**meta, "config": json.dumps(config)}
    meta["sha256"] = _checksum(tensors, meta)
    save_file(tensors, str(bad / "checkpoint.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match="hidden 1000000.*does not match its weights"):
        load_model(bad)


def test_data_json_never_makes_sgmlab_read_a_file_outside_the_folder(model_dir, tmp_path, capsys):
    import json

    from sgmlab.cli import main

    bad = _copy(model_dir, tmp_path / "m")
    secret = tmp_path / "secret.npy"
    import numpy as np

    np.save(secret, np.zeros((10, 2)))
    (bad / "data.json").write_text(json.dumps({"data": str(secret)}))
    assert main(["sample", "--model", str(bad), "--steps", "5", "--n", "50", "--no-progress",
                 "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "not read: data.json names the file" in printed and "--data" in printed
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert "samples" not in metrics and metrics["data"].startswith("not read")
    # named by the user, it is read
    assert main(["sample", "--model", str(bad), "--steps", "5", "--n", "50", "--no-progress", "--data", str(secret),
                 "--out", str(tmp_path / "o2")]) == 0
    assert "sliced_w2_to_training_data" in json.loads((tmp_path / "o2" / "metrics.json").read_text())["samples"]
    (bad / "data.json").write_text("{\"data\": 5}")
    assert main(["sample", "--model", str(bad), "--steps", "5", "--n", "50", "--no-progress",
                 "--out", str(tmp_path / "o3")]) == 2
    assert "data.json is not a valid data description" in capsys.readouterr().err


# -- every public entry point against a matrix of hostile values ----------------------------------------
def _hostile_cases():
    torch.set_default_dtype(torch.float64)
    q2 = sg.targets.mixture2d(); g2 = sg.targets.anisotropic_gaussian(2); ou = sg.processes.OU()
    E = sg.scores.exact(q2)
    grid = sg.grids.uniform(2.0, 1e-2, 5)
    X = torch.zeros(4, 2)
    bad_x = {"empty": torch.zeros(0, 2), "1d": torch.zeros(2), "wrongd": torch.zeros(4, 3), "nan": torch.full((4, 2), float("nan")),
             "inf": torch.full((4, 2), float("inf")), "huge": torch.full((4, 2), 1e300), "tiny": torch.full((4, 2), 1e-300),
             "half": torch.zeros(4, 2, dtype=torch.float16), "int": torch.zeros(4, 2, dtype=torch.int64), "bool": torch.zeros(4, 2, dtype=torch.bool),
             "list": [[0.0, 0.0]], "str": "x"}
    cases = []
    for name, x in bad_x.items():
        cases += [(f"mixture.score[{name}]", lambda x=x: q2.score(x)), (f"mixture.log_prob[{name}]", lambda x=x: q2.log_prob(x)),
                  (f"gaussian.score[{name}]", lambda x=x: g2.score(x)), (f"exact score[{name}]", lambda x=x: E(x, 0.5)),
                  (f"ei sampler x0[{name}]", lambda x=x: sg.samplers.exponential_integrator(E, x, grid)),
                  (f"dpm x0[{name}]", lambda x=x: sg.samplers.dpm_solver_pp_3m(E, x, grid)),
                  (f"metrics.w2[{name}]", lambda x=x: sg.metrics.w2(x, q2)), (f"metrics.mmd[{name}]", lambda x=x: sg.metrics.mmd(x, q2)),
                  (f"metrics.mode_tv[{name}]", lambda x=x: sg.metrics.mode_tv(x, q2)), (f"metrics.tv_histogram[{name}]", lambda x=x: sg.metrics.tv_histogram(x, q2)),
                  (f"metrics.sliced_w2[{name}]", lambda x=x: sg.metrics.sliced_w2(x, q2))]
    for name, t in {"neg": -0.5, "nan": float("nan"), "inf": float("inf"), "huge": 1e300, "tiny": 1e-300, "str": "a", "zero": 0.0}.items():
        cases += [(f"exact score t[{name}]", lambda t=t: E(X, t)), (f"ou.marginal t[{name}]", lambda t=t: ou.marginal(q2, t)),
                  (f"grids.uniform T[{name}]", lambda t=t: sg.grids.uniform(t, 1e-3, 5)), (f"grids.log_snr delta[{name}]", lambda t=t: sg.grids.log_snr(2.0, t, 5)),
                  (f"sg.sample nfe[{name}]", lambda t=t: sg.sample(E, 4, 2, nfe=t)), (f"tune nfe[{name}]", lambda t=t: sg.tune(E, 2, t)),
                  (f"perturbed eps[{name}]", lambda t=t: sg.scores.perturbed(E, q2, t)), (f"certified delta grid[{name}]", lambda t=t: sg.theory.certified_bound(g2, sg.scores.exact(g2), [2.0, t])),
                  (f"later_rates eps[{name}]", lambda t=t: sg.theory.later_rates(t, d=2)), (f"ddpm_theorem h[{name}]", lambda t=t: sg.theory.ddpm_theorem(L=1, d=2, m2=1, kl=1, h=t, T=1)),
                  (f"plan_certified eps[{name}]", lambda t=t: sg.theory.plan_certified(g2, t)), (f"default_plan nfe[{name}]", lambda t=t: sg.default_plan(t))]
    mats = {"nonsym": [[1.0, 0.5], [0.0, 1.0]], "nonpd": [[1.0, 2.0], [2.0, 1.0]], "neg": [[-1.0, 0], [0, 1.0]], "nan": [[float("nan"), 0], [0, 1.0]],
            "1x1": [[1.0]], "huge": [[1e300, 0], [0, 1e300]], "tiny": [[1e-300, 0], [0, 1e-300]], "empty": torch.zeros(0, 0)}
    for name, m in mats.items():
        cases += [(f"Gaussian cov[{name}]", lambda m=m: sg.targets.Gaussian([0.0, 0.0], m)),
                  (f"Mixture covs[{name}]", lambda m=m: sg.targets.GaussianMixture([1.0], [[0.0, 0.0]], [m]))]
    for name, w in {"neg": [1.5, -0.5], "unnorm": [1.0, 1.0], "nan": [float("nan"), 1.0], "zero": [0.0, 0.0], "wronglen": [1.0]}.items():
        cases.append((f"Mixture weights[{name}]", lambda w=w: sg.targets.GaussianMixture(w, [[0.0], [1.0]], [1.0, 1.0])))
        cases.append((f"Empirical weights[{name}]", lambda w=w: sg.targets.Empirical([[0.0], [1.0]], w)))
    for name, gr in {"increasing": [0.1, 1.0], "single": [1.0], "nan": [1.0, float("nan")], "neg": [1.0, -0.1], "dup": [1.0, 1.0, 0.1], "2d": [[1.0, 0.5]], "zero-end": [1.0, 0.0], "str": "abc"}.items():
        cases += [(f"ei grid[{name}]", lambda gr=gr: sg.samplers.exponential_integrator(E, X, gr)), (f"sg.sample grid[{name}]", lambda gr=gr: sg.sample(E, 4, 2, nfe=5, sampler=sg.samplers.dpm_solver_pp_2m, grid=gr)),
                  (f"certified grid[{name}]", lambda gr=gr: sg.theory.certified_bound(g2, sg.scores.exact(g2), gr))]
    for name, dev in {"cuda": "cuda", "nonsense": "nonsense", "cuda9": "cuda:9"}.items():
        cases += [(f"prior_sample device[{name}]", lambda dev=dev: ou.prior_sample(4, 2, device=dev))]
        continue
    for name in ("nope", "", None, 5):
        cases += [(f"builtin[{name}]", lambda name=name: sg.targets.builtin(name)), (f"process VP schedule[{name}]", lambda name=name: sg.processes.VP(name))]

    def classify(f):
        """clear (a ValueError/TypeError/FloatingPointError in the library's words), answer (no NaN or +inf),
        or unclear / traceback / silent."""
        try:
            r = f()
        except (ValueError, TypeError, FloatingPointError, KeyError, NotImplementedError, RuntimeError, ZeroDivisionError, IndexError, AttributeError, OverflowError, ImportError) as e:
            msg = str(e)
            internal = any(s in msg for s in ("not implemented for", "expected scalar type", "invalid combination of arguments", "must match the size", "size of tensor", "shape '[", "Expected all tensors", "linalg", "out of bounds", "unsupported operand", "object has no attribute", "division by zero", "can't convert", "could not be"))
            if type(e).__name__ in ("ValueError", "TypeError", "FloatingPointError") and not internal:
                return "clear", f"{type(e).__name__}: {msg[:100]}"
            return "unclear", f"{type(e).__name__}: {msg[:140]}"
        except Exception as e:
            return "traceback", f"{type(e).__name__}: {str(e)[:140]}"
        def bad(v):
            if isinstance(v, torch.Tensor): return v.is_floating_point() and bool(torch.isnan(v).any() | (v == float("inf")).any())
            if isinstance(v, float): return not math.isfinite(v)
            return False
        vals = [r] if isinstance(r, (torch.Tensor, float)) else [getattr(r, a) for a in ("value", "tv_bound", "path_kl", "grid", "mean", "cov", "this_paper", "total", "N") if hasattr(r, a)]
        if any(bad(v) for v in vals):
            return "silent", repr(vals)[:140]
        return "answer", type(r).__name__
    from sgmlab.learn import TrainConfig, load_data, train

    for name, kw in {"hidden0": {"hidden": 0}, "lr-nan": {"lr": float("nan")}, "ema1": {"ema": 1.0},
                     "net": {"net": "resnet"}, "T<delta": {"T": 1e-4, "delta": 1e-3}, "steps-float": {"steps": 2.5},
                     "process": {"process": "brownian"}}.items():
        cases.append((f"TrainConfig[{name}]", lambda kw=kw: TrainConfig(**kw)))
    for name, data in {"nan": torch.tensor([[float("nan"), 0.0]] * 8), "empty": torch.zeros(0, 2),
                       "1d": torch.zeros(8), "int": torch.zeros(8, 2, dtype=torch.int64),
                       "list": [[0.0, 1.0]]}.items():
        cases.append((f"train data[{name}]", lambda data=data: train(data, TrainConfig(steps=1, hidden=4, depth=1,
                                                                                          batch_size=4))))
    for name, spec in {"unknown": "no-such-data", "empty": "", "dir": "/"}.items():
        cases.append((f"load_data[{name}]", lambda spec=spec: load_data(spec)))
    from sgmlab.interop.scheduler import PlanScheduler

    for name, kw in {"beta": {"beta_schedule": "cosine"}, "pred": {"prediction_type": "flow"},
                     "grid-nan": {"plan_sampler": "unipc_3", "plan_grid": [1.0, float("nan")]},
                     "K0": {"num_train_timesteps": 0}}.items():
        cases.append((f"PlanScheduler[{name}]", lambda kw=kw: PlanScheduler(**kw)))
    import contextlib
    import io
    import tempfile

    from sgmlab.cli import main

    def cli(*argv):
        """The command's exit code and message: 2 with a one-line error is the clear answer."""
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(list(argv))
            except SystemExit as e:
                code = e.code
        if code == 2 and "error:" in err.getvalue() and "Traceback" not in err.getvalue():
            raise ValueError(err.getvalue().strip().splitlines()[-1])
        raise RuntimeError(f"exit {code}: {err.getvalue()[-200:]}")

    tmp = Path(tempfile.mkdtemp())
    (tmp / "file").write_text("x")
    for name, argv in {"steps0": ["sample", "--steps", "0"], "target": ["sample", "--target", "nope"],
                       "eps-nan": ["bound", "--eps-score", "nan"], "claims-seed": ["claims", "--seed", "x"],
                       "tune-nfe0": ["tune", "--target", "gaussian", "--nfe", "0"],
                       "model-missing": ["sample", "--model", str(tmp / "none")],
                       "out-under-file": ["sample", "--steps", "2", "--n", "10", "--out", str(tmp / "file" / "x")],
                       "plan-eps": ["plan", "--eps", "1.5"], "train-no-data": ["train", "--out", str(tmp / "t")],
                       "bench-budget": ["bench", "--budgets", "0"], "data-without-model": ["sample", "--data", "x.npy"],
                       "no-box-without-model": ["sample", "--no-box", "--steps", "2", "--n", "10"],
                       "train-reference": ["train", "--data", "mixture2d", "--out", str(tmp / "r"), "--reference", "-1"],
                       "train-warmup": ["train", "--data", "mixture2d", "--out", str(tmp / "w"), "--warmup", "1.5"],
                       "train-cld-reference": ["train", "--data", "mixture2d", "--n", "100", "--steps", "1", "--process",
                                               "cld", "--reference", "8", "--out", str(tmp / "c"), "--no-progress"],
                       }.items():
        cases.append((f"cli[{name}]", lambda argv=argv: cli(*argv)))
    return cases, classify


_CASES, _CLASSIFY = _hostile_cases()


@pytest.mark.parametrize("name", [n for n, _ in _CASES])
def test_hostile_input_gets_a_clear_error_or_a_correct_answer(name):  # 311 cases
    """Wrong shapes, empty input, NaN and inf, finite extremes (1e-300, 1e300), float16, integers and
    bool, non-symmetric and non-PD matrices, negative and non-normalised weights, bad grids, unknown
    names, devices that do not exist: a ValueError, TypeError or FloatingPointError in the library's
    own words, or an answer free of NaN and +inf."""
    kind, info = _CLASSIFY(dict(_CASES)[name])
    assert kind in ("clear", "answer"), f"{kind}: {info}"


# -- faults lose nothing -------------------------------------------------------------------------------
def _sgmlab(*args, preexec_fn=None, **kw):
    """``python -m sgmlab.cli *args`` as a user's terminal starts it: SIGINT at its default even where
    the tests themselves run with it ignored (a shell's background job), so Ctrl-C is KeyboardInterrupt."""
    import signal
    import subprocess
    import sys

    def start():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    return subprocess.Popen([sys.executable, "-m", "sgmlab.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
                            preexec_fn=start, **kw)


def _train_args(out, steps):
    return ["train", "--data", "mixture2d", "--n", "2000", "--steps", str(steps), "--eval-every", "10",
            "--hidden", "16", "--depth", "2", "--batch-size", "64", "--no-progress", "--out", str(out)]


def _wait_for(path, proc, pattern=None):
    """Poll until ``path`` exists (and holds a file matching ``pattern``), failing if ``proc`` ends first."""
    import time

    while not (path.exists() and (pattern is None or any(path.glob(pattern)))):
        assert proc.poll() is None, f"the process ended before {path} appeared: {proc.communicate()[1][-500:]}"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_a_killed_training_keeps_its_last_checkpoint_and_resumes(sig, tmp_path):
    """kill -9 or Ctrl-C during training: the last complete checkpoint loads, SIGINT says how to go
    on, and --resume says where it starts and finishes the run."""
    import signal
    import time

    from sgmlab.learn import load_model
    from sgmlab.learn.train import read_checkpoint

    out = tmp_path / "run"
    p = _sgmlab(*_train_args(out, 100_000))
    _wait_for(out / "checkpoint.safetensors", p)
    time.sleep(0.5)
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    step = int(read_checkpoint(out)[1]["step"])
    assert step >= 10 and (step % 10 == 0 or sig == "SIGINT")  # Ctrl-C checkpoints the step it arrived in
    load_model(out)
    if sig == "SIGINT":
        assert f"interrupted; the checkpoint at step {step}" in err and "--resume" in err and "Traceback" not in err
    q = _sgmlab(*_train_args(out, step + 20), "--resume")
    stdout, err = q.communicate(timeout=120)
    assert q.returncode == 0, err
    assert f"resuming from the checkpoint at step {step}" in stdout
    assert int(read_checkpoint(out)[1]["step"]) == step + 20


def test_a_full_disk_during_a_checkpoint_write_keeps_the_previous_one(tmp_path):
    """The checkpoint write fails (a file-size limit stands in for a full disk): the previous
    checkpoint is intact and loadable, no temporary file is left, and the error says so."""
    import resource
    import signal

    from sgmlab.learn import load_model
    from sgmlab.learn.train import read_checkpoint

    out = tmp_path / "run"
    p = _sgmlab(*_train_args(out, 20))
    assert p.wait(timeout=120) == 0
    before = (out / "checkpoint.safetensors").read_bytes()

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    q = _sgmlab(*_train_args(out, 40), "--resume", preexec_fn=limit)
    _, err = q.communicate(timeout=120)
    assert q.returncode == 1 and "could not write to" in err and "the checkpoint at step 20" in err, err
    assert (out / "checkpoint.safetensors").read_bytes() == before
    assert int(read_checkpoint(out)[1]["step"]) == 20 and not list(out.glob(".checkpoint.*"))
    load_model(out)


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_a_killed_bench_keeps_its_finished_methods_and_resumes(sig, tmp_path):
    """kill -9 or Ctrl-C during a bench: every method finished before is kept in partial/, loads,
    and --resume reads it back instead of running it again."""
    import signal

    out = tmp_path / "bench"
    args = ["bench", "--targets", "mixture2d", "gaussian10", "--budgets", "6", "20", "--n", "40000", "--no-peers",
            "--out", str(out)]
    p = _sgmlab(*args)
    _wait_for(out / "partial", p, "*.pt")
    p.send_signal(getattr(signal, sig))
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0
    kept = sorted((out / "partial").glob("*.pt"))
    assert kept and all(list(torch.load(f, weights_only=True)["config"]["targets"]) == ["mixture2d", "gaussian10"]
                        for f in kept)
    if sig == "SIGINT":
        assert "interrupted;" in err and "--resume" in err and "Traceback" not in err
    q = _sgmlab(*args, "--resume")
    _, err = q.communicate(timeout=300)
    assert q.returncode == 0, err
    assert err.count("(read back)") >= len(kept)


def test_data_too_large_for_float64_is_refused_naming_row_and_column(tmp_path):
    import numpy as np

    from sgmlab.learn import load_data

    x = np.ones((20, 3))
    x[7, 2] = 1e200
    np.save(tmp_path / "d.npy", x)
    with pytest.raises(ValueError, match="value 1e\\+200 at row 7, column 2 is too large to standardize"):
        load_data(str(tmp_path / "d.npy"))


def test_training_faults_are_refused_or_stopped_with_the_reason(tmp_path, capsys):
    """A diverging loss stops training (nonzero exit, the last good checkpoint kept); --resume names
    each setting that differs, refuses --force and fewer steps than done, and config.json tells the
    truth afterwards."""
    import json

    from sgmlab.cli import main
    from sgmlab.learn.train import read_checkpoint

    out = tmp_path / "run"
    base = ["train", "--data", "mixture2d", "--n", "500", "--eval-every", "10", "--hidden", "8", "--depth", "1",
            "--batch-size", "32", "--no-progress", "--out", str(out)]
    assert main([*base, "--steps", "20"]) == 0
    capsys.readouterr()
    for extra, match in ((["--steps", "40", "--lr", "0.01"], "settings differ from the checkpoint's: lr 0.01"),
                         (["--steps", "10"], "the checkpoint is at step 20, beyond the 10 steps"),
                         (["--steps", "40", "--force"], "--force would discard it")):
        assert main([*base, *extra, "--resume"]) == 2
        assert match in capsys.readouterr().err
    assert main([*base, "--steps", "30", "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 30
    with pytest.raises(SystemExit) as e:
        main([*base, "--steps", "200", "--lr", "1e12", "--force"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "training diverged: the loss is" in err and "smaller --lr" in err
    if (out / "checkpoint.safetensors").exists():  # the last good checkpoint of this run, not the old run's
        meta = read_checkpoint(out)[1]
        assert json.loads(meta["config"])["lr"] == 1e12 and int(meta["step"]) % 10 == 0


def test_a_failed_run_leaves_no_empty_folder_and_files_follow_the_umask(tmp_path, monkeypatch, capsys):
    import os
    import stat

    from sgmlab.cli import main
    from sgmlab.experiments import claims

    def fail(*a, **k):
        raise ValueError("a failure after the folder was made")

    monkeypatch.setattr(claims, "run_claims", fail)
    out = tmp_path / "deep" / "claims"
    assert main(["claims", "--quick", "--out", str(out), "--no-progress"]) == 2
    assert not out.exists() and not (tmp_path / "deep").exists()
    monkeypatch.undo()
    old = os.umask(0o027)
    try:
        assert main(["sample", "--steps", "3", "--n", "20", "--no-progress", "--out", str(out)]) == 0
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
    assert modes and all(m == 0o640 for m in modes.values()), modes


def test_sample_model_refuses_exact_score_options_and_warns_outside_the_trained_range(model_dir, tmp_path, capsys):
    from sgmlab.cli import main

    for opt in (["--target", "ring"], ["--process", "vp-linear"], ["--dim", "3"]):
        assert main(["sample", "--model", str(model_dir), "--steps", "3", "--n", "20", "--no-progress",
                     "--out", str(tmp_path / "x"), *opt]) == 2
        assert f"{opt[0]} describe an exact-score run" in capsys.readouterr().err
    assert main(["sample", "--model", str(model_dir), "--steps", "3", "--n", "20", "--no-progress", "--T", "50",
                 "--sampler", "exponential_integrator", "--out", str(tmp_path / "y")]) == 0
    assert "warning: sampling from T=50" in capsys.readouterr().out
    assert main(["sample", "--model", str(model_dir), "--steps", "3", "--n", "20", "--no-progress", "--no-box",
                 "--out", str(tmp_path / "nobox")]) == 0
    assert '"box": false' in (tmp_path / "nobox" / "config.json").read_text()
    assert main(["sample", "--model", str(model_dir), "--steps", "3", "--n", "20", "--no-progress", "--sampler",
                 "default", "--delta", "0.01", "--out", str(tmp_path / "z")]) == 2
    assert "--sampler default brings its own grid, T and delta; drop --delta" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


@pytest.mark.parametrize("text, delimiter, want", [
    ("a;b\n1,5;2\n3;4,25\n", None, [[1.5, 2.0], [3.0, 4.25]]),          # European: ; and decimal commas
    ("a\tb\n1.5\t2\n3\t4.25\n", None, [[1.5, 2.0], [3.0, 4.25]]),
    ("1.5,2\n3,4.25\n", None, [[1.5, 2.0], [3.0, 4.25]]),               # no header
    ("a;b\n1,5;2\n", ";", [[1.5, 2.0]]),
])
def test_csv_delimiters_and_decimal_commas(tmp_path, text, delimiter, want):
    from sgmlab.learn.data import read_csv

    (tmp_path / "d.csv").write_text(text)
    assert read_csv(tmp_path / "d.csv", None, delimiter).tolist() == want


@pytest.mark.parametrize("text, match", [
    ("a,b\n1,2\n3,x\n", "'x' at row 3, column 'b' is not a number"),
    ("a,b\n1,2\n3,\n", "missing value at row 3, column 'b'"),
    ("a,b\n1,2\n3\n", "row 3 has 1 values, the header 2"),
    ("\n\n", "the file is empty"),
    ("a,b\n1,2,9\n3,4\n", "row 2 has 3 values, the header 2"),          # a long row loses nothing silently
    ("a,a\n1,2\n", "names \\['a'\\] more than once"),
])
def test_csv_refuses_naming_row_and_column(tmp_path, text, match):
    from sgmlab.learn.data import read_csv

    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        read_csv(tmp_path / "d.csv", None)


def test_one_column_data_trains_and_samples(tmp_path):
    import numpy as np

    from sgmlab.cli import main

    np.save(tmp_path / "one.npy", np.random.default_rng(0).normal(size=(200, 1)))
    assert main(["train", "--data", str(tmp_path / "one.npy"), "--steps", "10", "--eval-every", "10", "--hidden", "8",
                 "--depth", "1", "--batch-size", "32", "--no-progress", "--out", str(tmp_path / "m")]) == 0
    assert main(["sample", "--model", str(tmp_path / "m"), "--steps", "3", "--n", "50", "--no-progress",
                 "--data", str(tmp_path / "one.npy"), "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "samples.png").stat().st_size > 0


def test_sample_model_says_how_long_sampling_should_take_before_it_starts(model_dir, tmp_path, capsys):
    from sgmlab.cli import main
    from sgmlab.experiments.learned import sampling_seconds

    assert main(["sample", "--model", str(model_dir), "--steps", "4", "--n", "100", "--metrics", "none",
                 "--out", str(tmp_path / "s")]) == 0
    assert "sampling should take about" in capsys.readouterr().err
    secs, chunks, rows = sampling_seconds(model_dir, 4, 100, batch_size=30)
    assert (chunks, rows) == (4, 30) and 0.0 <= secs < 60.0
    assert main(["sample", "--model", str(model_dir), "--steps", "4", "--n", "100", "--metrics", "none",
                 "--no-progress", "--out", str(tmp_path / "quiet")]) == 0
    assert "should take" not in capsys.readouterr().err


def test_sample_model_uses_the_default_plan_unless_asked_otherwise(model_dir, tmp_path):
    import json

    from sgmlab.cli import main

    for extra, want in (([], "default"), (["--grid", "uniform"], "exponential_integrator"),
                        (["--sampler", "unipc_3"], "unipc_3")):
        out = tmp_path / f"s{len(extra)}{want}"
        assert main(["sample", "--model", str(model_dir), "--steps", "8", "--n", "50", "--no-progress",
                     "--out", str(out), *extra]) == 0
        assert json.loads((out / "metrics.json").read_text())["sampler"] == want


@pytest.mark.parametrize("make, match", [
    (lambda np: np.ones((5, 2), dtype=np.complex128), "complex numbers"),
    (lambda np: np.ones((5, 2), dtype=np.longdouble), "at most 64 bits"),
    (lambda np: np.arange(10, dtype="timedelta64[s]").reshape(5, 2), "got dtype timedelta64"),
    (lambda np: np.array([["a", "b"]] * 5), "got dtype <U1"),
    (lambda np: np.ones((5, 2), dtype=bool), "got dtype bool"),
])
def test_data_dtypes_are_read_or_refused_naming_file_and_dtype(make, match, tmp_path):
    import numpy as np

    from sgmlab.learn import load_data

    arr = make(np)
    if arr.dtype == np.longdouble and arr.dtype.itemsize <= 8:
        pytest.skip("this platform's long double is float64")
    np.save(tmp_path / "d.npy", arr)
    with pytest.raises(ValueError, match=match) as e:
        load_data(str(tmp_path / "d.npy"))
    assert "d.npy" in str(e.value)
    for dtype in (np.int8, np.uint16, np.float16, np.float32, np.int64):  # read as float64
        np.save(tmp_path / "ok.npy", np.arange(10).reshape(5, 2).astype(dtype))
        assert load_data(str(tmp_path / "ok.npy")).x.dtype == torch.float64


def test_data_files_in_other_shapes_and_encodings(tmp_path):
    import numpy as np

    from sgmlab.learn import load_data
    from sgmlab.learn.data import read_csv

    np.savez(tmp_path / "a.npz", x=np.ones((5, 2)))
    (tmp_path / "a.npz").rename(tmp_path / "renamed.npy")
    with pytest.raises(ValueError, match="renamed.npy: holds an .npz archive of arrays \\['x'\\]"):
        load_data(str(tmp_path / "renamed.npy"))
    (tmp_path / "bom.csv").write_bytes("\ufeffa,b\n1,2\n".encode("utf-8"))
    assert read_csv(tmp_path / "bom.csv", ["a"]).tolist() == [[1.0]]  # the mark is not part of the first name
    (tmp_path / "u16.csv").write_bytes("a,b\n1,2\n".encode("utf-16"))
    assert read_csv(tmp_path / "u16.csv", None).tolist() == [[1.0, 2.0]]
    (tmp_path / "latin.csv").write_bytes("caf\xe9,b\n1,2\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.csv: not UTF-8 text"):
        read_csv(tmp_path / "latin.csv", None)
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="--columns names \\['a'\\] more than once"):
        read_csv(tmp_path / "d.csv", ["a", "a"])



@pytest.mark.parametrize("argv, match", [
    (["--T", "1e300"], "T=1e\\+300 is beyond OU time 100"),
    (["--T", "1000"], "T=1000 is beyond OU time 100"),
    (["--seed", str(2**70)], "expected an integer seed in \\[0, 2\\^62\\)"),
    (["--seed", "-1"], "expected an integer seed"),
    (["--target", "gaussian", "--dim", "1000000"], "dim=1000000 needs about 2.98e\\+04 GiB"),
])
def test_cli_extremes_are_refused_before_anything_is_allocated(argv, match, tmp_path, capsys):
    from sgmlab.cli import main

    out = tmp_path / "o"
    try:
        code = main(["sample", "--steps", "4", "--n", "10", *argv, "--out", str(out), "--no-progress"])
    except SystemExit as e:  # refused by the parser
        code = e.code
    assert code == 2 and re.search(match, capsys.readouterr().err)
    assert not out.exists()
