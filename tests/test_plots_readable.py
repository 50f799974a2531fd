"""Figures a user reads: a confusion matrix at 20 classes and more, and `make compare`'s group bars."""

from __future__ import annotations

import pytest
import torch

# VOC's 20 classes: the names a detection run's matrix carries (plus "background").
VOC = [
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def _rendered(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("classes", [[*VOC, "background"], [f"class_{i:03d}" for i in range(100)]])
def test_confusion_matrix_labels_are_legible_at_20_classes_and_more(classes: list[str]) -> None:
    """Every class name is drawn at >= 7 pt, none overlaps its neighbour, the counts are drawn at 21
    classes (VOC + background) and each count drawn fits inside its cell (3 digits here).
    Catches: the figure capped at 12 inches with the font shrunk to fit (3.2 pt at 100 classes), and
    counts drawn whatever the cell size (the digits-fit check removed: 18 px in a 15 px cell). The
    code before this test fails it too: no counts past 20 classes."""
    from litvision.utils.plots import MIN_FONT_PT, confusion_matrix_figure

    n = len(classes)
    g = torch.Generator().manual_seed(0)
    matrix = torch.randint(0, 30, (n, n), generator=g) + torch.diag(torch.full((n,), 400))
    fig = confusion_matrix_figure(matrix, classes)
    renderer = _rendered(fig)
    ax = fig.axes[0]
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        assert [t.get_text() for t in ticks] == classes
        assert min(t.get_fontsize() for t in ticks) >= MIN_FONT_PT
        boxes = [t.get_window_extent(renderer) for t in ticks]
        assert not any(_overlap(a, b) for a, b in zip(boxes, boxes[1:], strict=False))
    # Cells in pixels: the axes' width over n.
    cell = ax.get_window_extent(renderer).width / n
    counts = [t for t in ax.texts if t.get_text().isdigit()]
    assert counts or n > 30, "21 classes: the counts are drawn"
    for t in counts:
        assert t.get_fontsize() >= MIN_FONT_PT
        assert t.get_window_extent(renderer).width <= cell, (t.get_text(), cell)


def test_group_bars_start_near_the_data_with_the_interval_drawn(tmp_path) -> None:
    """Two groups at 0.97 and 0.99: the bar chart's axis starts near them, not at 0 (where both bars
    look the same), and each interval is drawn, clipped at 1.
    Catches: ylim left at matplotlib's default (from 0), and the error bars dropped."""
    from dataclasses import dataclass

    import matplotlib

    matplotlib.use("Agg")
    from litvision.aggregate import Group, describe
    from litvision.tracking.compare_plots import plot_bars

    @dataclass
    class R:
        summary: dict
        ok: bool = True

    values = {"lr=0.001": [0.968, 0.970, 0.972], "lr=0.01": [0.985, 0.995, 0.99]}
    groups = [
        Group(label=k, values={"lr": k}, runs=[R({"best_val": {"val/acc": v}}) for v in vs])
        for k, vs in values.items()
    ]
    agg = {"stats": {k: {"val/acc": describe(vs, bounded=True)} for k, vs in values.items()}}
    assert agg["stats"]["lr=0.01"]["val/acc"]["ci_high"] == 1.0  # clipped: the raw interval passes 1
    import matplotlib.pyplot as plt

    captured = {}
    close = plt.close
    plt.close = lambda fig=None: captured.setdefault("fig", fig)  # keep the figure to inspect it
    try:
        plot_bars(agg, groups, ["val/acc"], "acc", tmp_path / "bars.png")
    finally:
        plt.close = close
    ax = captured["fig"].axes[0]
    low, high = ax.get_ylim()
    assert 0.9 < low < 0.968 and 1.0 <= high < 1.01
    assert len(ax.containers) >= 2  # the bars and the error bars
    assert (tmp_path / "bars.png").stat().st_size > 5_000
