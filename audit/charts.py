"""Bar charts as inline SVG, drawn on the server: no CDN, no JavaScript, and they print.

Every label is escaped; numbers are the only other input.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 640
LABEL_WIDTH = 170
VALUE_WIDTH = 56
ROW_HEIGHT = 26
BAR_HEIGHT = 16
LEGEND_HEIGHT = 24
PALETTE = ("#15803d", "#ca8a04", "#b91c1c", "#7f1d1d", "#94a3b8", "#7c3aed", "#1f4fd1", "#0e7490")


def _scale(maximum: float) -> float:
    return (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / maximum if maximum > 0 else 0.0


def _svg(title: str, height: int, parts: list[str]) -> SafeString:
    safe_title = escape(title)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" aria-label="{safe_title}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'font-family="system-ui, sans-serif" font-size="12"><title>{safe_title}</title>'
    )
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308 - every label above is escaped


def _row_label(y: float, label: str) -> str:
    return (
        f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT - 4}" text-anchor="end" fill="#1d2433">{escape(label)}</text>'
    )


def bar_chart(*, title: str, rows: Sequence[tuple[str, float]], unit: str = "") -> SafeString:
    """One horizontal bar per ``(label, value)``."""
    scale = _scale(max((v for _, v in rows), default=0))
    parts = []
    for i, (label, value) in enumerate(rows):
        y = i * ROW_HEIGHT + 4
        width = value * scale
        parts.append(_row_label(y, label))
        parts.append(f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" fill="{PALETTE[6]}"/>')
        shown = f"{value:g}{escape(unit)}"
        parts.append(f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + BAR_HEIGHT - 4}" fill="#5b6475">{shown}</text>')
    return _svg(title, max(len(rows), 1) * ROW_HEIGHT + 8, parts)


def stacked_bar_chart(*, title: str, series: tuple[str, ...], rows: list[tuple[str, list[int]]]) -> SafeString:
    """One bar per row, split into ``series`` (same order as each row's values), with a legend."""
    scale = _scale(max((sum(values) for _, values in rows), default=0))
    parts = []
    x = 0
    for i, name in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{x + 16}" y="14" fill="#1d2433">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    for i, (label, values) in enumerate(rows):
        y = LEGEND_HEIGHT + i * ROW_HEIGHT + 4
        parts.append(_row_label(y, label))
        offset = float(LABEL_WIDTH)
        for j, value in enumerate(values):
            if value:
                width = value * scale
                colour = PALETTE[j % len(PALETTE)]
                parts.append(
                    f'<rect x="{offset:.1f}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT}" fill="{colour}">'
                    f"<title>{escape(label)}: {escape(series[j])} {value}</title></rect>"
                )
                offset += width
        parts.append(f'<text x="{offset + 6:.1f}" y="{y + BAR_HEIGHT - 4}" fill="#5b6475">{sum(values)}</text>')
    return _svg(title, LEGEND_HEIGHT + max(len(rows), 1) * ROW_HEIGHT + 8, parts)
