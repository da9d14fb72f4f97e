"""Figures. Kept out of the mathematics; matplotlib is imported lazily with the Agg backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .targets.base import Target


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def samples_over_density(x: torch.Tensor, law: Target, title: str, max_points: int = 5000) -> Any:
    """Samples (first two coordinates) over the contours of the law's density there.

    For d > 2 the density shown is the exact 2-D marginal of the first two coordinates; for d = 1
    a histogram against the density.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5) if law.dim > 1 else (6, 4))
    x = x[:max_points].detach().cpu().double()
    if law.dim == 1:
        lo, hi = float(x.min()) - 1, float(x.max()) + 1
        grid = torch.linspace(lo, hi, 400, dtype=torch.float64)[:, None]
        ax.hist(x[:, 0].numpy(), bins=80, density=True, alpha=0.5, label="samples")
        ax.plot(grid[:, 0].numpy(), law.log_prob(grid).exp().numpy(), "k", label="exact density")
        ax.legend()
    else:
        marg = law.project([0, 1]) if law.dim > 2 else law
        x = x[:, :2]
        ref = marg.sample(20_000, generator=torch.Generator().manual_seed(0))
        lo = torch.minimum(ref.quantile(0.001, 0), x.quantile(0.001, 0)) - 1
        hi = torch.maximum(ref.quantile(0.999, 0), x.quantile(0.999, 0)) + 1
        gx = torch.linspace(float(lo[0]), float(hi[0]), 200, dtype=torch.float64)
        gy = torch.linspace(float(lo[1]), float(hi[1]), 200, dtype=torch.float64)
        X, Y = torch.meshgrid(gx, gy, indexing="xy")
        dens = marg.log_prob(torch.stack([X.reshape(-1), Y.reshape(-1)], 1)).exp().reshape(X.shape)
        ax.contourf(X.numpy(), Y.numpy(), dens.numpy(), levels=20, cmap="Blues")
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2, c="crimson", alpha=0.35, linewidths=0, label="samples")
        ax.contour(X.numpy(), Y.numpy(), dens.numpy(), levels=6, colors="k", linewidths=0.6)
        ax.set_xlim(float(lo[0]), float(hi[0]))
        ax.set_ylim(float(lo[1]), float(hi[1]))
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title, fontsize=9)
    return fig


def samples_vs_data(x: torch.Tensor, data: torch.Tensor | None, title: str, max_points: int = 5000,
                    columns: Sequence[str] | None = None, max_columns: int = 11) -> Any:
    """Samples beside the data (when there is data), every axis named by its column (``columns``, or
    x_1, x_2, ...): a histogram in 1-D; otherwise a scatter of the first two columns and the
    marginal histogram of each column (the first ``max_columns`` of them, the title says so)."""
    plt = _plt()
    d = x.shape[1]
    names = list(columns) if columns is not None and len(columns) == d else [f"x_{i + 1}" for i in range(d)]
    sets = [("samples", x[:max_points].detach().cpu().double())]
    if data is not None:
        sets.append(("data", data[:max_points].detach().cpu().double()))
    if d == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, v in sets:
            ax.hist(v[:, 0].numpy(), bins=60, density=True, histtype="step", label=label)
        ax.set_xlabel(names[0])
        ax.set_ylabel("density")
        ax.set_title(title, fontsize=9)
        ax.legend()
        return fig
    shown = min(d, max_columns)
    cols = min(4, shown + 1)
    rows = -(-(shown + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    ax = axes[0, 0]
    for label, v in sets:
        ax.scatter(v[:, 0].numpy(), v[:, 1].numpy(), s=2, alpha=0.4, label=label)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.legend(fontsize=7, markerscale=4)
    for j, ax in enumerate(axes.flat[1:]):
        if j >= shown:
            ax.axis("off")
            continue
        for label, v in sets:
            ax.hist(v[:, j].numpy(), bins=40, density=True, histtype="step", label=label)
        ax.set_xlabel(names[j])
        ax.set_ylabel("density")
    more = f" (the first {shown} of {d} columns)" if shown < d else ""
    fig.suptitle(title + more, fontsize=9)
    fig.tight_layout()
    return fig


def image_grid(x: torch.Tensor, shape: tuple[int, int], title: str, rows: int = 8, cols: int = 12) -> Any:
    """The first rows*cols samples as grey images."""
    plt = _plt()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + 0.4))
    imgs = x[: rows * cols].detach().cpu().double().reshape(-1, *shape).numpy()
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(imgs[i], cmap="gray_r", vmin=0, vmax=16)
    fig.suptitle(title, fontsize=9)
    return fig


def score_error_profile(times: torch.Tensor, eps2: torch.Tensor, stderr: torch.Tensor, title: str) -> Any:
    """eps_score(t)^2 against t on log-log axes with 2-standard-error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(times.numpy(), eps2.numpy(), yerr=2 * stderr.numpy(), fmt="o-", ms=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("forward time t")
    ax.set_ylabel("eps_score(t)^2 = E|s - grad log q_t|^2")
    ax.set_title(title, fontsize=9)
    return fig


def plan_figure(plan: Any, title: str, default_grid: Any = None) -> Any:
    """A tuned plan's grid against the fixed default's for the same budget (``default_grid``, the
    one the plan was measured against; default ``default_plan(plan.evaluations)``'s): the log-SNR
    log(alpha/sigma) at each step (OU time; the final denoising step, at infinite log-SNR, is not
    drawn)."""
    from .defaults import default_plan
    from .grids import _log_snr

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    default_grid = default_plan(plan.evaluations).grid if default_grid is None else default_grid
    for grid, label, style in ((plan.grid, "tuned plan", "o-"), (default_grid, "fixed default", "x--")):
        g = grid[grid > 0]
        ax.plot(range(g.shape[0]), _log_snr(g).tolist(), style, ms=3, label=label)
    ax.set_xlabel("grid index")
    ax.set_ylabel("log-SNR log(alpha/sigma)")
    ax.set_title(f"{title}: W2(plan, reference) <= {plan.certificate.w2_upper:.3g}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def readable_log_axes(fig: Any) -> Any:
    """Log axes whose labels do not collide: ticks at 1, 2 and 5 x 10^k where an axis spans under two
    decades, at powers of ten otherwise, labelled as plain numbers (``0.2``, ``1e-05``); minor ticks
    unlabelled. Applied to every figure a result saves."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log":
                continue
            lo, hi = sorted(axis.get_view_interval())
            few = lo > 0 and hi / lo < 100
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if few else (1.0,)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
    return fig
