"""Matplotlib helpers: confusion matrices (the tasks), legends outside the plot and saving without
`tight_layout` (the tasks and `make compare`: tracking/compare_plots.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `make compare` uses the helpers here and must not import torch (one second)
    from torch import Tensor

# A legend longer than this lists the first entries and says how many more there are.
MAX_LEGEND = 12
# Tick labels and cell counts of a confusion matrix: never smaller than this (points), whatever
# the number of classes; the figure grows instead, up to MAX_MATRIX_INCHES.
MIN_FONT_PT = 7.0
MAX_MATRIX_INCHES = 16.0


def legend_outside(ax: Any, max_entries: int = MAX_LEGEND, fontsize: float = 8) -> Any:
    """The legend to the right of the plot (never over the curves), at most `max_entries` entries
    plus one saying how many were left out."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    if len(handles) > max_entries:
        rest = len(handles) - (max_entries - 1)
        handles = [*handles[: max_entries - 1], Line2D([], [], linestyle="none")]
        labels = [*labels[: max_entries - 1], f"… and {rest} more (runs.md)"]
    return ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=fontsize, frameon=False
    )


def save(fig: Any, path: Path, dpi: int = 100) -> None:
    """Saved with the outside legend in the picture (bbox_inches="tight"): no `tight_layout`, whose
    "not compatible" warning reached the console with long tick labels."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")


# -- tasks -----------------------------------------------------------------------------------------
def confusion_matrix_figure(matrix: Tensor, class_names: list[str]) -> Any:
    """Counts with row-normalised colours (rows: true class, columns: predicted).

    The figure grows with the classes so that labels keep MIN_FONT_PT at 20 classes and more (at
    12 inches for 20 classes they were 8 pt in 0.6-inch cells, but counts overlapped past 99):
    cell counts are drawn only while they fit their cell."""
    # A bare Figure needs no GUI backend and leaves pyplot's state (and notebooks' inline plots) alone.
    from matplotlib.figure import Figure

    m = matrix.detach().cpu().float()
    norm = m / m.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(class_names)
    longest = max((len(str(c)) for c in class_names), default=1)
    # Room for the labels (about 0.6 character-widths per point) plus ~0.45 inch per cell.
    label_in = min(3.0, 0.08 * longest + 0.3)
    size = min(MAX_MATRIX_INCHES, max(4.0, label_in + 0.45 * n + 1.0))
    cell_in = (size - label_in - 1.0) / max(n, 1)
    font = max(MIN_FONT_PT, min(10.0, cell_in * 72 * 0.45))
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.subplots()
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), [str(c) for c in class_names], rotation=90 if n > 10 else 0, fontsize=font)
    ax.set_yticks(range(n), [str(c) for c in class_names], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    digits = len(str(int(m.max().item()))) if m.numel() else 1
    # A count fits its cell when its digits (~0.6 em each) take at most 90% of the cell's width.
    if digits * 0.6 * font / 72 <= 0.9 * cell_in:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    int(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=font,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    return fig
