"""Server-rendered SVG charts: no JavaScript, print well, every value written on the
chart (a manager reads numbers, not bar heights)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

FONT = "font-family:system-ui,sans-serif"


def column_chart(
    values: Sequence[tuple[str, int]], *, title: str, color: str = "#2563eb", chart_id: str = ""
) -> str:
    """Vertical columns (e.g. calls by hour of day) with the value above each column."""
    width, height = 760, 240
    left, right, top, bottom = 36, 8, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((v for _, v in values), default=0)
    scale = max(peak, 1)
    slot = plot_w / max(len(values), 1)
    bar_w = slot * 0.72
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" id="{escape(chart_id)}" '
        f'style="{FONT};max-width:100%;height:auto">',
        f'<text x="{left}" y="16" font-size="14" font-weight="600" fill="#1f2933">'
        f"{escape(title)}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#9aa5b1"/>',
    ]
    for index, (label, value) in enumerate(values):
        x = left + index * slot + (slot - bar_w) / 2
        h = plot_h * value / scale
        y = top + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
            f'fill="{color}" data-label="{escape(label)}" data-value="{value}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        if value:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" font-size="10" '
                f'text-anchor="middle" fill="#1f2933">{value}</text>'
            )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - 10}" font-size="10" '
            f'text-anchor="middle" fill="#52606d">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Segment:
    name: str
    color: str


def stacked_bars(
    rows: Sequence[tuple[str, Sequence[int]]],
    segments: Sequence[Segment],
    *,
    title: str,
    chart_id: str = "",
) -> str:
    """Horizontal stacked bars, one per row (e.g. per subject), segments and total
    written on the bar, with a legend."""
    label_w, bar_area, row_h = 210, 440, 30
    width = label_w + bar_area + 70
    height = 52 + row_h * max(len(rows), 1)
    peak = max((sum(v) for _, v in rows), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" id="{escape(chart_id)}" '
        f'style="{FONT};max-width:100%;height:auto">',
        f'<text x="0" y="16" font-size="14" font-weight="600" fill="#1f2933">'
        f"{escape(title)}</text>",
    ]
    x: float = label_w
    for seg in segments:
        parts.append(f'<rect x="{x}" y="26" width="12" height="12" fill="{seg.color}"/>')
        parts.append(
            f'<text x="{x + 16}" y="36" font-size="11" fill="#52606d">{escape(seg.name)}</text>'
        )
        x += 24 + 7 * len(seg.name)
    if not rows:
        parts.append('<text x="0" y="70" font-size="12" fill="#52606d">Sem dados no período</text>')
    for index, (label, values) in enumerate(rows):
        y = 48 + index * row_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" font-size="12" text-anchor="end" '
            f'fill="#1f2933">{escape(label[:32])}</text>'
        )
        x = float(label_w)
        for seg, value in zip(segments, values, strict=True):
            w = bar_area * value / peak
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="20" '
                    f'fill="{seg.color}" data-row="{escape(label)}" '
                    f'data-segment="{escape(seg.name)}" data-value="{value}">'
                    f"<title>{escape(label)} – {escape(seg.name)}: {value}</title></rect>"
                )
                if w >= 18:
                    parts.append(
                        f'<text x="{x + w / 2:.1f}" y="{y + 18}" font-size="11" '
                        f'text-anchor="middle" fill="#ffffff">{value}</text>'
                    )
            x += w
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + 18}" font-size="12" font-weight="600" '
            f'fill="#1f2933">{sum(values)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
