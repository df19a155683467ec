"""Small matplotlib figures for docs/validation.md (rank 0 only; written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bonefe.outputs import atomic_path  # noqa: E402


def _save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def line_plot(path: Path, x, series: dict, xlabel: str, ylabel: str, band=None,
              points: dict | None = None, extra_x: tuple | None = None) -> None:
    """Lines `series` {label: y} over x, optional horizontal band (lo, hi) about 1 (labelled ± its
    half-width in per cent), scatter `points` {label: (x, y)} (published data, other elements) and
    lines over other abscissae extra_x = (x2, {label: y})."""
    figure, axes = plt.subplots(figsize=(6.0, 3.8))
    for label, y in series.items():
        axes.plot(x, y, marker="o", label=label)
    for label, y in (extra_x[1] if extra_x else {}).items():
        axes.plot(extra_x[0], y, marker="o", linestyle="--", label=label)
    for label, (px, py) in (points or {}).items():
        axes.scatter(px, py, marker="s", s=36, label=label, zorder=3)
    if band is not None:
        axes.axhspan(*band, color="0.85", zorder=0, label=f"±{50 * (band[1] - band[0]):.0f} %")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    _save(figure, path)
