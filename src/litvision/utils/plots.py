"""Matplotlib figures the tasks log: confusion matrices, sample grids."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def confusion_matrix_figure(matrix: Tensor, class_names: list[str]) -> Any:
    """Counts with row-normalised colours (rows: true class, columns: predicted)."""
    # A bare Figure needs no GUI backend and leaves pyplot's state (and notebooks' inline plots) alone.
    from matplotlib.figure import Figure

    m = matrix.detach().cpu().float()
    norm = m / m.sum(dim=1, keepdim=True).clamp(min=1)
    n = len(class_names)
    size = min(12, 2 + 0.45 * n)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    int(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    return fig
