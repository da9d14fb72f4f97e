"""TV to an empirical law up to a rounding tolerance (sg.metrics.atom_tv): unbiasedness of its two
estimates against closed forms, calibrated errors, coverage of its bounds, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sgmlab as sg
from helpers import z_threshold

ATOMS = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [4.0, 1.0]])
W = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.25])
PI = torch.tensor([0.15, 0.15, 0.25, 0.15, 0.2])   # an output law on the atoms; the rest, 0.1, blends


def draw(n: int, g: torch.Generator) -> torch.Tensor:
    """Samples of the output law: atom i with probability PI[i], else the midpoint of atoms 0 and 1."""
    probs = torch.cat([PI, (1 - PI.sum()).reshape(1)])
    k = torch.multinomial(probs, n, replacement=True, generator=g)
    x = torch.empty(n, 2)
    x[k < 5] = ATOMS[k[k < 5]] + 1e-9 * torch.randn(int((k < 5).sum()), 2, generator=g)  # rounding noise
    x[k == 5] = 0.5 * (ATOMS[0] + ATOMS[1])
    return x


def test_estimates_are_unbiased_and_errors_calibrated():
    q = sg.targets.Empirical(ATOMS, W)
    off = float(1 - PI.sum())
    chi2 = float(((PI - W) ** 2 / W).sum() + 0.0)  # the off mass enters through sum(pi) = 1 - off
    g = torch.Generator().manual_seed(0)
    R, n = 300, 400
    res = [sg.metrics.atom_tv(draw(n, g), q, groups=16) for _ in range(R)]
    c = torch.tensor([r.chi2 for r in res])
    o = torch.tensor([r.off_support for r in res])
    z = z_threshold(1e-3, 4)
    assert abs(float(c.mean()) - chi2) < z * float(c.std()) / math.sqrt(R)
    assert abs(float(o.mean()) - off) < z * float(o.std()) / math.sqrt(R)
    # the jackknife and binomial errors match the observed spread (ratio of standard deviations)
    assert 0.8 < float(torch.tensor([r.chi2_se for r in res]).mean()) / float(c.std()) < 1.4
    assert 0.9 < float(torch.tensor([r.off_support_se for r in res]).mean()) / float(o.std()) < 1.1


def test_bounds_cover_the_quantized_tv():
    q = sg.targets.Empirical(ATOMS, W)
    off = float(1 - PI.sum())
    tv = 0.5 * (float((PI - W).abs().sum()) + off)  # 0.15: within [off, (off + sqrt(chi2)) / 2]
    g = torch.Generator().manual_seed(1)
    res = [sg.metrics.atom_tv(draw(500, g), q) for _ in range(200)]
    # each bound fails with probability at most about 1-2% (one-sided p = 0.01 per part)
    assert sum(r.lower <= tv <= r.upper for r in res) >= 0.95 * len(res)
    assert all(0 <= r.lower <= r.upper <= 1 for r in res)


def test_uneven_frequencies_raise_the_lower_bound():
    """No blends, but the atoms reproduced unevenly: TV = 0.2, seen by the split-sample bound."""
    q = sg.targets.Empirical(ATOMS, W)
    pi = torch.tensor([0.3, 0.1, 0.3, 0.1, 0.2])
    g = torch.Generator().manual_seed(4)
    res = [sg.metrics.atom_tv(ATOMS[torch.multinomial(pi, 2000, replacement=True, generator=g)], q)
           for _ in range(50)]
    assert all(r.off_support == 0 for r in res)
    assert sum(r.lower <= 0.2 <= r.upper for r in res) >= 48
    assert float(torch.tensor([r.lower for r in res]).mean()) > 0.15


def test_exact_samples_are_on_the_support():
    q = sg.targets.Empirical(ATOMS, W)
    r = sg.metrics.atom_tv(q.sample(20_000, generator=torch.Generator().manual_seed(2)), q)
    assert r.off_support == 0 and r.lower == 0
    assert abs(r.chi2) < z_threshold(1e-3, 1) * r.chi2_se
    assert r.upper < 0.05


def test_radius_is_the_rounding_tolerance_and_repeated_points_merge():
    q = sg.targets.Empirical(ATOMS, W)
    x = ATOMS.repeat(20, 1)
    x[:10] += torch.tensor([0.3, 0.0])                # 0.3 away: on for radius 0.5, off for 0.1
    assert sg.metrics.atom_tv(x, q, radius=0.5).off_support == 0
    assert sg.metrics.atom_tv(x, q, radius=0.1).off_support == pytest.approx(0.1)
    twice = sg.targets.Empirical(torch.cat([ATOMS, ATOMS[:1]]), torch.cat([W[:1] / 2, W[1:], W[:1] / 2]))
    a, b = sg.metrics.atom_tv(x, q, radius=0.1), sg.metrics.atom_tv(x, twice, radius=0.1)
    assert a.chi2 == pytest.approx(b.chi2) and a.upper == pytest.approx(b.upper)
    assert sg.metrics.atom_separation(twice) == pytest.approx((2.0, 2.0))


@settings(max_examples=25, deadline=None)
@given(d=st.integers(1, 6), k=st.integers(2, 8), n=st.integers(4, 300), blend=st.floats(0, 1), seed=st.integers(0, 99))
def test_bounds_are_ordered_for_any_output(d, k, n, blend, seed):
    g = torch.Generator().manual_seed(seed)
    q = sg.targets.Empirical(3 * torch.randn(k, d, generator=g))
    x = q.sample(n, generator=g)
    m = int(blend * n)
    x[:m] = x[:m] + torch.randn(m, d, generator=g)
    r = sg.metrics.atom_tv(x, q)
    assert 0 <= r.lower <= r.upper <= 1
    assert r.off_support == pytest.approx(float((torch.cdist(x, q.points).min(1).values > r.radius).double().mean()))


def test_bad_input_names_the_problem():
    q = sg.targets.Empirical(ATOMS, W)
    x = q.sample(100, generator=torch.Generator().manual_seed(3))
    with pytest.raises(TypeError, match="Empirical"):
        sg.metrics.atom_tv(x, sg.targets.mixture2d())
    with pytest.raises(TypeError, match="Empirical"):
        sg.metrics.atom_separation(sg.targets.mixture2d())
    with pytest.raises(ValueError, match="disjoint"):
        sg.metrics.atom_tv(x, q, radius=1.0)
    for bad in (0.0, -1.0, math.nan, math.inf, "0.1", True):
        with pytest.raises(ValueError, match="radius"):
            sg.metrics.atom_tv(x, q, radius=bad)
    with pytest.raises(ValueError, match="NaN"):
        sg.metrics.atom_tv(torch.full((10, 2), math.nan), q)
    with pytest.raises(ValueError, match="at least 4"):
        sg.metrics.atom_tv(x[:3], q)
    with pytest.raises(ValueError):
        sg.metrics.atom_tv(torch.zeros(10, 3), q)
    with pytest.raises(ValueError):
        sg.metrics.atom_tv(torch.zeros(0, 2), q)
    with pytest.raises(TypeError):
        sg.metrics.atom_tv(x.tolist(), q)
