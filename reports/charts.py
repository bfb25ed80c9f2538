"""Inline SVG charts: no script, no external request, and every label escaped."""

from __future__ import annotations

from html import escape

import numpy as np
from markupsafe import Markup

WIDTH, HEIGHT, PAD = 320, 120, 22


def histogram(values: np.ndarray | list[float], bins: int = 20, value_range: tuple[float, float] | None = None,
              unit: str = "", color: str = "#4f6bed", overlay: np.ndarray | list[float] | None = None) -> Markup:
    """A histogram of ``values`` (NaN left out); ``overlay`` draws a second series (a baseline) as outlines."""
    clean = np.asarray(values, dtype=float)
    clean = clean[np.isfinite(clean)]
    if clean.size == 0:
        return Markup('<p class="muted">no values</p>')
    other = None if overlay is None else np.asarray(overlay, dtype=float)
    if other is not None:
        other = other[np.isfinite(other)]
    low, high = value_range or (float(clean.min()), float(clean.max()))
    if other is not None and other.size and value_range is None:
        low, high = min(low, float(other.min())), max(high, float(other.max()))
    if high <= low:
        high = low + 1.0
    counts, edges = np.histogram(clean, bins=bins, range=(low, high))
    base = np.histogram(other, bins=bins, range=(low, high))[0] if other is not None and other.size else None
    tallest = max(int(counts.max()), int(base.max()) if base is not None else 0, 1)
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    bar_w = plot_w / bins
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="histogram">']
    for i, count in enumerate(counts):
        h = plot_h * count / tallest
        x = PAD + i * bar_w
        label = escape(f"{edges[i]:.3g}–{edges[i + 1]:.3g}{unit}: {count} rows")
        parts.append(f'<rect x="{x:.1f}" y="{PAD + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
                     f'fill="{color}"><title>{label}</title></rect>')
    if base is not None:
        for i, count in enumerate(base):
            h = plot_h * count / tallest
            parts.append(f'<rect x="{PAD + i * bar_w:.1f}" y="{PAD + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="none" stroke="#9aa3b2" stroke-dasharray="3 2"/>')
    axis_y = PAD + plot_h
    parts.append(f'<line x1="{PAD}" y1="{axis_y}" x2="{PAD + plot_w}" y2="{axis_y}" stroke="#c9ced8"/>')
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 4}" class="tick">{escape(f"{low:.3g}{unit}")}</text>')
    parts.append(f'<text x="{PAD + plot_w}" y="{HEIGHT - 4}" class="tick" text-anchor="end">{escape(f"{high:.3g}{unit}")}</text>')
    parts.append(f'<text x="{PAD}" y="{PAD - 8}" class="tick">{tallest} rows</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
