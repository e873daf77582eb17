"""Report figures, drawn with matplotlib's Agg backend (no display needed, safe in workers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DPI = 100
TIMELINE_SIZE = (1000, 400)  # width, height in pixels
LATENCY_SIZE = (600, 400)


def figure(size):
    """An Agg figure of ``size`` pixels (width, height) at DPI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def format_value(value, pct: bool = False) -> str:
    """A number for a report table: a percentage, one decimal, or n/a for a missing value."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.1%}" if pct else (f"{value:.1f}" if isinstance(value, float) else str(value))


def plot_confusion(confusion, class_names, path, title: str | None = None, *, dpi: int = 100) -> Path:
    """Write a confusion-matrix PNG: cells coloured by row-normalised recall, labelled with counts.

    Rows are true classes, columns predictions. Colouring by the row share keeps rare classes
    readable next to frequent ones; a class with no samples gets an empty (white) row.
    Returns the written path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg canvas, no pyplot global state
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=np.int64)
    names = [str(n) for n in class_names]
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(names):
        raise ValueError(f"confusion matrix of shape {cm.shape} does not match {len(names)} class names")
    support = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, support, out=np.zeros(cm.shape, dtype=float), where=support > 0)

    n = len(names)
    side = max(4.0, 0.7 * n + 2.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        if not support[i, 0]:
            ax.text((n - 1) / 2, i, "no samples", ha="center", va="center", fontsize=8, color="grey")
        for j in range(n):
            if support[i, 0]:
                ax.text(
                    j, i, f"{cm[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
