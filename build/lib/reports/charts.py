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


def line_chart(values: list[float | None], labels: list[str], current: int | None = None,
               marks: dict[int, str] | None = None, width: int = 420, height: int = 140,
               color: str = "#4f6bed") -> Markup:
    """A line through ``values`` (oldest first; None leaves a gap), each point titled by ``labels``.

    ``current`` is drawn as a larger ring labelled "this run" (a shape and a word, not a colour
    alone); ``marks`` maps a position to a label drawn with a dashed vertical line there.
    """
    known = [v for v in values if v is not None and np.isfinite(v)]
    if not known:
        return Markup('<p class="muted">no values</p>')
    low, high = min(known), max(known)
    flat = high <= low
    if flat:  # one value, or the same every run: a line across the middle, labelled once
        pad = abs(low) * 0.1 or 0.5
        low, high = low - pad, high + pad
    left, right, top, bottom = 46, 12, 30, 22  # room for y ticks on the left and two rows of labels above
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / (len(values) - 1) if len(values) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (high - v) / (high - low)

    parts = [f'<svg class="chart line-chart" viewBox="0 0 {width} {height}" role="img" aria-label="line chart">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#c9ced8"/>']
    ticks = [known[0]] if flat else [high, low]
    for v in ticks:
        parts.append(f'<text x="{left - 4}" y="{y(v) + 3:.1f}" class="tick" text-anchor="end">'
                     f'{escape(f"{v:.3g}")}</text>')
    for n, (i, text) in enumerate(sorted((marks or {}).items())):
        anchor, shift = ("start", 3) if x(i) < left + plot_w / 2 else ("end", -3)
        label_y = 10 if n % 2 == 0 else 21  # alternate rows, so labels of nearby marks do not overlap
        parts.append(f'<g class="mark"><title>{escape(text)}</title><line x1="{x(i):.1f}" y1="{label_y + 2}" '
                     f'x2="{x(i):.1f}" y2="{top + plot_h}" stroke="#8a4b00" stroke-dasharray="4 3"/>'
                     f'<text x="{x(i) + shift:.1f}" y="{label_y}" class="tick" text-anchor="{anchor}">'
                     f'{escape(text)}</text></g>')
    # One polyline per run of consecutive known values, so a run without the metric is a gap, not a dip.
    segment: list[str] = []
    for i, v in enumerate([*values, None]):
        if v is not None and np.isfinite(v):
            segment.append(f"{x(i):.1f},{y(v):.1f}")
            continue
        if len(segment) > 1:
            parts.append(f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        segment = []
    for i, (v, label) in enumerate(zip(values, labels, strict=True)):
        if v is None or not np.isfinite(v):
            continue
        title = f"<title>{escape(label)}</title>"
        if i == current:
            parts.append(f'<circle class="point current" cx="{x(i):.1f}" cy="{y(v):.1f}" r="6" fill="#fff" '
                         f'stroke="{color}" stroke-width="2.5">{title}</circle>')
            # Beside the ring, inside the plot: away from the edge and from the mark labels above it.
            anchor, dx = ("end", -9) if x(i) > left + plot_w / 2 else ("start", 9)
            dy = 16 if y(v) < top + plot_h / 2 else -8
            parts.append(f'<text x="{x(i) + dx:.1f}" y="{y(v) + dy:.1f}" class="tick" '
                         f'text-anchor="{anchor}">this run</text>')
        else:
            parts.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}">{title}</circle>')
    parts.append(f'<text x="{left}" y="{height - 4}" class="tick">{len(values)} runs, oldest first</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
