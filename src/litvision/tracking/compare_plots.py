"""`make compare`'s figures: every run's learning curves and the groups' means with their intervals.

    loss.png            train solid, val dashed, log axis, a star at each run's best epoch
    <metric>.png        the monitored metric of every run
    groups_<name>.png   group means, their 95% intervals drawn, the axis starting near the data
    groups_curves_*.png each group's mean curve with a +- one std band

Legends sit beside the plot, at most utils/plots.MAX_LEGEND entries; labels are one capped line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from litvision.utils.plots import legend_outside, save

if TYPE_CHECKING:
    from litvision.tracking.run_records import Run


def _best_point(df: Any, run: Run) -> tuple[float, float] | None:
    """(step, val loss) at the epoch whose monitored metric was best: marked on loss.png."""
    from litvision.aggregate import _mode
    from litvision.tracking.run_records import _curve

    steps, values = _curve(df, run.monitor)
    if not steps:
        return None
    pick = max if _mode([run], run.monitor) == "max" else min
    best_step = steps[values.index(pick(values))]
    loss_steps, losses = _curve(df, "val/loss")
    if best_step not in loss_steps:
        return None
    return best_step, losses[loss_steps.index(best_step)]


def plot_run_curves(
    runs: list[Run], names: dict[Path, str], out_dir: Path, sources: dict[str, str | None] | None = None
) -> list[Path]:
    """loss.png (train solid, val dashed, log axis, best epoch starred) and <metric>.png per main
    metric, every run overlaid, from whichever logger each run used (tracking/curves)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from litvision.tracking.run_records import _curve, read_curves_from

    read = [(r, *read_curves_from(r)) for r in runs]
    if sources is not None:
        sources.update({r.label: source for r, _, source in read})
    curves = [(r, df) for r, df, _ in read if df is not None and "step" in df]
    if not curves:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "-.", ":"]

    fig, ax = plt.subplots(figsize=(9, 5))
    positive = False
    for i, (r, df) in enumerate(curves):
        c = colours[i % len(colours)]
        # One legend entry per run (train and val share its colour); past 10 runs the style changes too.
        train = _curve(df, "train/loss")
        ax.plot(*train, color=c, alpha=0.7, linestyle=styles[(i // len(colours)) % 3], label=names[r.path])
        val = _curve(df, "val/loss")
        ax.plot(*val, color=c, linestyle="--", marker="o", markersize=3)
        best = _best_point(df, r)
        if best:
            ax.plot(*best, marker="*", markersize=12, color=c, markeredgecolor="black", linestyle="none")
        positive |= any(v > 0 for v in train[1] + val[1])
    if positive:
        # Losses fall by orders of magnitude: on a linear axis every curve lies on the floor after 100 steps.
        ax.set_yscale("log")
    ax.set(
        xlabel="step",
        ylabel="loss (log)",
        title="loss: train solid, val dashed, ★ best epoch by the monitored metric",
    )
    legend_outside(ax)
    written.append(out_dir / "loss.png")
    save(fig, written[-1])
    plt.close(fig)

    for metric in sorted({r.monitor for r, _ in curves}):
        fig, ax = plt.subplots(figsize=(9, 5))
        for i, (r, df) in enumerate(curves):
            if r.monitor == metric:
                ax.plot(
                    *_curve(df, metric),
                    color=colours[i % len(colours)],
                    linestyle=styles[(i // len(colours)) % 3],
                    marker="o",
                    markersize=3,
                    label=names[r.path],
                )
        ax.set(xlabel="step", ylabel=metric, title=metric)
        legend_outside(ax)
        written.append(out_dir / (metric.replace("/", "_") + ".png"))
        save(fig, written[-1])
        plt.close(fig)
    return written


def plot_groups(agg: dict[str, Any], out_dir: Path) -> list[Path]:
    """groups_<metric>.png: group means with 95% CI error bars (val and test side by side);
    groups_curves_<metric>.png: each group's mean learning curve with a +- std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from litvision.tracking.run_records import _curve, read_curves

    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    name = agg["monitor"].split("/", 1)[-1]
    bars = [m for m in agg["metrics"] if m.split("/", 1)[-1] == name]
    groups = agg["groups"]
    if bars:
        written.append(out_dir / f"groups_{name}.png")
        plot_bars(agg, groups, bars, name, written[-1])

    monitor = agg["monitor"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False
    for i, g in enumerate(groups):
        curves = []
        for r in g.ok_runs:
            df = read_curves(r)
            if df is not None and "step" in df:
                steps, values = _curve(df, monitor)
                if steps:
                    curves.append(dict(zip(steps, values, strict=True)))
        if not curves:
            continue
        # Steps every run of the group logged: replicates share a schedule, so that is all of them.
        steps = sorted(set.intersection(*(set(c) for c in curves)))
        if not steps:
            continue
        values = np.array([[c[s] for s in steps] for c in curves])
        mean = values.mean(0)
        std = values.std(0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
        c = colours[i % len(colours)]
        ax.plot(steps, mean, color=c, marker="o", markersize=3, label=f"{g.label} (n={len(curves)})")
        ax.fill_between(steps, mean - std, mean + std, color=c, alpha=0.2)
        drawn = True
    if drawn:
        ax.set(xlabel="step", ylabel=monitor, title=f"{monitor}: group mean ± one std across runs")
        legend_outside(ax)
        written.append(out_dir / f"groups_curves_{monitor.replace('/', '_')}.png")
        save(fig, written[-1])
    plt.close(fig)
    return written


def plot_bars(agg: dict[str, Any], groups: list[Any], bars: list[str], name: str, path: Path) -> None:
    """Group means with their 95% intervals drawn, the axis starting near the data (not at 0, which
    hid 0.97 against 0.99), one capped label per group, at most ~12 inches wide."""
    import matplotlib.pyplot as plt
    import numpy as np

    from litvision.aggregate import _n, cap, is_bounded

    width = 0.8 / len(bars)
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(min(12, max(5, 1.1 * len(groups) * len(bars) + 2)), 4.8))
    lows, highs = [], []
    for i, m in enumerate(bars):
        st = [agg["stats"][g.label][m] for g in groups]
        means = np.array([s["mean"] if s["mean"] is not None else np.nan for s in st], dtype=float)
        # A group of one has no interval: its bar has no error bar.
        low = np.array([s["ci_low"] if s["ci_low"] is not None else np.nan for s in st], dtype=float)
        high = np.array([s["ci_high"] if s["ci_high"] is not None else np.nan for s in st], dtype=float)
        low, high = np.where(np.isfinite(low), low, means), np.where(np.isfinite(high), high, means)
        lows += list(low[np.isfinite(low)])
        highs += list(high[np.isfinite(high)])
        ax.bar(x + i * width, means, width, label=m, alpha=0.85)
        ax.errorbar(
            x + i * width, means, yerr=[means - low, high - means], fmt="none", ecolor="black", capsize=4
        )
    if lows and highs:
        lo, hi = min(lows), max(highs)
        pad = max((hi - lo) * 0.15, abs(hi) * 1e-3, 1e-6)
        top = hi + pad
        bottom = lo - pad
        if is_bounded(bars[0], lows + highs):
            top, bottom = min(top, 1.0 + pad / 3), max(bottom, 0.0)
        ax.set_ylim(bottom, top)
    labels = [f"{cap(g.label, 28)}\n(n={_n(len(g.ok_runs))})" for g in groups]
    ax.set_xticks(
        x + width * (len(bars) - 1) / 2,
        labels,
        rotation=30 if len(groups) > 4 else 0,
        ha="right" if len(groups) > 4 else "center",
        fontsize=8,
    )
    ax.set(ylabel=name, title=f"{name}: group means, 95% interval (axis not from 0)")
    legend_outside(ax)
    save(fig, path)
    plt.close(fig)
