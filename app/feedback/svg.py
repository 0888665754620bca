"""Charts drawn on the server as inline SVG: horizontal bars with the national median marked,
and a timeline of messages per month. No script, no fonts from outside; every chart has a
table beside it with the same figures (the pages), so the SVG is `aria-hidden`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH = 640
LABEL = 230
ROW = 22


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | None  # None: suppressed or nothing to show
    text: str
    median: float | None = None


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def bars(title: str, rows: Sequence[Bar], *, maximum: float = 100.0) -> Markup:
    """Horizontal bars, 0..maximum; the median as a dark tick."""
    height = ROW * len(rows) + 28
    span = WIDTH - LABEL - 60
    top = max([maximum, *(r.value or 0 for r in rows), *(r.median or 0 for r in rows)]) or 1.0
    parts = [
        f'<svg class="chart" role="img" aria-hidden="true" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, r in enumerate(rows):
        y = 4 + i * ROW
        label = r.label if len(r.label) <= 34 else r.label[:33] + "…"
        parts.append(
            f'<text x="{LABEL - 6}" y="{y + 15}" text-anchor="end" class="lbl">'
            f"{escape(label)}</text>"
        )
        parts.append(
            f'<rect x="{LABEL}" y="{y + 3}" width="{span}" height="{ROW - 8}" class="track"/>'
        )
        if r.value is not None:
            w = span * r.value / top
            parts.append(
                f'<rect x="{LABEL}" y="{y + 3}" width="{_fmt(w)}" height="{ROW - 8}" class="bar"/>'
            )
        if r.median is not None:
            x = LABEL + span * r.median / top
            parts.append(
                f'<line x1="{_fmt(x)}" x2="{_fmt(x)}" y1="{y}" y2="{y + ROW - 2}" class="median"/>'
            )
        parts.append(
            f'<text x="{LABEL + span + 6}" y="{y + 15}" class="val">{escape(r.text)}</text>'
        )
    y = 4 + len(rows) * ROW + 16
    parts.append(
        f'<line x1="{LABEL}" x2="{LABEL + 14}" y1="{y - 4}" y2="{y - 4}" class="median"/>'
        f'<text x="{LABEL + 20}" y="{y}" class="lbl">nasjonal median</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()


def timeline(title: str, months: Sequence[Bar]) -> Markup:
    """Messages per month as columns, the national median as a line of dots."""
    height, base, left = 200, 170, 40
    n = max(1, len(months))
    step = (WIDTH - left - 10) / n
    top = max([1.0, *(m.value or 0 for m in months), *(m.median or 0 for m in months)])
    parts = [
        f'<svg class="chart" role="img" aria-hidden="true" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" x2="{WIDTH - 10}" y1="{base}" y2="{base}" class="axis"/>',
        f'<text x="{left - 4}" y="14" text-anchor="end" class="lbl">{int(top)}</text>',
        f'<text x="{left - 4}" y="{base}" text-anchor="end" class="lbl">0</text>',
    ]
    for i, m in enumerate(months):
        x = left + i * step
        if m.value is not None:
            h = (base - 10) * m.value / top
            parts.append(
                f'<rect x="{_fmt(x + 2)}" y="{_fmt(base - h)}" width="{_fmt(max(step - 4, 1))}" '
                f'height="{_fmt(h)}" class="bar"/>'
            )
        else:
            parts.append(
                f'<text x="{_fmt(x + step / 2)}" y="{base - 4}" text-anchor="middle" '
                f'class="lbl">{escape(m.text)}</text>'
            )
        if m.median is not None:
            y = base - (base - 10) * m.median / top
            parts.append(f'<circle cx="{_fmt(x + step / 2)}" cy="{_fmt(y)}" r="3" class="dot"/>')
        if n <= 16 or i % max(1, n // 12) == 0:
            parts.append(
                f'<text x="{_fmt(x + step / 2)}" y="{base + 16}" text-anchor="middle" '
                f'class="lbl">{escape(m.label)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through escape()
