"""Charts as inline SVG, drawn on the server: a queue's quota, fair share and allocation as a
bar, GPUs held per project over time as stacked areas, and GPU-hours per key as bullet bars.
Every label is escaped; nothing here needs JavaScript."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

from fairpool.domain.words import plural
from fairpool.schemas.usage import SeriesOut, UsageOut


def fmt(value: float) -> str:
    """A number of GPUs or hours, short: 2, 0.5, 1.25, 12.3."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def sig(value: float, digits: int = 3) -> str:
    """A quantity to ``digits`` significant digits, without exponents: 0.00347, 12.3, 1,234."""
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    decimals = min(6, max(0, digits - 1 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    top = max(top, 1e-9)
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if step < 1 and top >= 1:
        step = 1.0
    n = max(1, math.ceil(top / step - 1e-9))
    return [round(i * step, 6) for i in range(n + 1)]


def _svg(width: float, height: float, body: list[str], label: str, cls: str,
         stretch: bool = False) -> Markup:
    aspect = ' preserveAspectRatio="none"' if stretch else ""
    return Markup(f'<svg class="{cls}" viewBox="0 0 {width:g} {height:g}"{aspect} role="img" '
                  f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
                  + "".join(body) + "</svg>")


def queue_bar(*, quota: float, fair: float | None, allocated: float, pending: float,
              limit: float | None, scale: float, color: str, name: str) -> Markup:
    """Allocated (solid) and pending (pale) GPUs on a track, with quota (solid line), fair
    share (dashed) and limit (red) marks; ``scale`` GPUs span the width."""
    w, h = 1000.0, 20.0
    x = (lambda v: max(0.0, min(w, v / scale * w))) if scale > 0 else (lambda v: 0.0)
    a, p = x(allocated), x(allocated + pending)
    body = [f'<rect class="track" x="0" y="0" width="{w:g}" height="{h:g}"/>',
            f'<rect class="pending" x="{a:.1f}" y="0" width="{p - a:.1f}" height="{h:g}" '
            f'fill="{color}" fill-opacity="0.32"/>',
            f'<rect class="allocated" x="0" y="0" width="{a:.1f}" height="{h:g}" '
            f'fill="{color}"/>']
    marks = [("quota", quota, "#111827", ""), ("fair", fair, "#1f2937", ' stroke-dasharray="4 3"'),
             ("limit", limit, "#dc2626", "")]
    for cls, value, stroke, dash in marks:
        if value is None or value > scale:
            continue
        pos = min(max(x(value), 1.0), w - 1.0)
        body.append(f'<line class="{cls}" x1="{pos:.1f}" x2="{pos:.1f}" y1="-2" y2="{h + 2:g}" '
                    f'stroke="{stroke}" stroke-width="2" vector-effect="non-scaling-stroke"'
                    f'{dash}/>')
    label = (f"{name}: {fmt(allocated)} allocated, {fmt(pending)} pending, quota {fmt(quota)}"
             + ("" if fair is None else f", fair share {fmt(fair)}"))
    return _svg(w, h, body, label, "qbar", stretch=True)


def _ago(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    if seconds >= 2 * 86400:
        return f"−{fmt(seconds / 86400)} d"
    if seconds >= 3 * 3600:
        return f"−{fmt(seconds / 3600)} h"
    return f"−{seconds / 60:.0f} min"


def area_chart(data: SeriesOut, span_s: float, color: Callable[[str], str],
               capacity: float | None = None) -> Markup:
    """GPUs held per project over time, stacked, with the pool's capacity as a dashed line."""
    w, h, left, right, top, bottom = 1240.0, 300.0, 44.0, 16.0, 16.0, 30.0
    pw, ph = w - left - right, h - top - bottom
    names = sorted(data.series)
    n = max((len(v) for v in data.series.values()), default=0)
    lines = {name: v + [0.0] * (n - len(v)) for name, v in data.series.items()}
    totals = [sum(lines[name][i] for name in names) for i in range(n)]
    peak = max([*totals, capacity or 0.0, 1.0])
    ticks = nice_ticks(peak)
    ymax = ticks[-1]

    def px(i: int) -> float:  # the start of step i; step n - 1 ends at n
        return left + (i / max(n, 1)) * pw

    def py(v: float) -> float:
        return top + ph - v / ymax * ph

    body: list[str] = []
    for t in ticks:
        y = py(t)
        body.append(f'<line class="grid" x1="{left:g}" x2="{w - right:g}" y1="{y:.1f}" '
                    f'y2="{y:.1f}"/><text class="ylabel" x="{left - 8:g}" y="{y + 4:.1f}" '
                    f'text-anchor="end">{fmt(t)}</text>')
    for k in range(5):
        x = left + pw * k / 4
        anchor = "start" if k == 0 else "end" if k == 4 else "middle"
        body.append(f'<text class="xlabel" x="{x:.1f}" y="{h - 8:g}" text-anchor="{anchor}">'
                    f'{escape(_ago(span_s * (4 - k) / 4))}</text>')
    base = [0.0] * n
    for name in names:
        values = lines[name]
        upper = [base[i] + values[i] for i in range(n)]
        # each step is the mean over it: a flat stretch, so the areas are staircases
        pts = [f"{px(i + e):.1f},{py(upper[i]):.1f}" for i in range(n) for e in (0, 1)]
        low = [f"{px(i + e):.1f},{py(base[i]):.1f}" for i in reversed(range(n)) for e in (1, 0)]
        col = color(name)
        body.append(f'<g class="series" data-project="{escape(name)}"><title>{escape(name)}: '
                    f'peak {plural(max(values), "GPU", shown=fmt(max(values)))}, now '
                    f'{fmt(values[-1])}</title>'
                    f'<polygon points="{" ".join(pts + low)}" fill="{col}" fill-opacity="0.55"/>'
                    f'<polyline points="{" ".join(pts)}" fill="none" stroke="{col}" '
                    f'stroke-width="1.5" stroke-linejoin="round"/></g>')
        base = upper
    if capacity:
        y = py(capacity)
        body.append(f'<line class="capacity" x1="{left:g}" x2="{w - right:g}" y1="{y:.1f}" '
                    f'y2="{y:.1f}"/><text class="caplabel" x="{w - right - 4:g}" '
                    f'y="{y - 5:.1f}" text-anchor="end">capacity '
                    f'{plural(capacity, "GPU", shown=fmt(capacity))}</text>')
    if not names:
        body.append(f'<text class="empty" x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                    'text-anchor="middle">no GPUs were allocated in this period</text>')
    body.append(f'<line class="axis" x1="{left:g}" x2="{w - right:g}" y1="{top + ph:.1f}" '
                f'y2="{top + ph:.1f}"/>')
    return _svg(w, h, body, "GPUs allocated per project over time", "chart area")


def usage_bars(rows: Sequence[UsageOut], color: Callable[[UsageOut], str], limit: int = 20
               ) -> Markup:
    """Allocated GPU-hours (pale) with used GPU-hours (solid) inside, one row per key."""
    rows = list(rows)[:limit]
    w, label_w, value_w, row_h, top = 1240.0, 190.0, 240.0, 32.0, 8.0
    bar_w = w - label_w - value_w
    h = top * 2 + row_h * max(len(rows), 1)
    peak = max([r.allocated_gpu_hours for r in rows] + [1e-9])
    body: list[str] = []
    for i, r in enumerate(rows):
        y = top + i * row_h
        col = color(r)
        name = r.key if len(r.key) <= 22 else r.key[:21] + "…"
        alloc = r.allocated_gpu_hours / peak * bar_w
        used = r.used_gpu_hours / peak * bar_w
        eff = (f" ({r.used_gpu_hours / r.measured_gpu_hours:.0%} of measured)"
               if r.measured_gpu_hours > 0 else " (not measured)")
        body.append(
            f'<g class="urow" data-key="{escape(r.key)}"><title>{escape(r.key)}: '
            f'{sig(r.allocated_gpu_hours)} GPU-h allocated, {sig(r.used_gpu_hours)} GPU-h used'
            f'{escape(eff)}</title>'
            f'<text class="ulabel" x="{label_w - 10:g}" y="{y + row_h / 2 + 4:.1f}" '
            f'text-anchor="end">{escape(name)}</text>'
            f'<rect class="track" x="{label_w:g}" y="{y + 5:.1f}" width="{bar_w:.1f}" '
            f'height="{row_h - 10:g}" rx="3"/>'
            f'<rect x="{label_w:g}" y="{y + 5:.1f}" width="{max(alloc, 1):.1f}" '
            f'height="{row_h - 10:g}" rx="3" fill="{col}" fill-opacity="0.35"/>'
            f'<rect x="{label_w:g}" y="{y + 10:.1f}" width="{used:.1f}" height="{row_h - 20:g}" '
            f'rx="2" fill="{col}"/>'
            f'<text class="uvalue" x="{label_w + bar_w + 10:g}" y="{y + row_h / 2 + 4:.1f}">'
            f'{sig(r.allocated_gpu_hours)} GPU-h · used {sig(r.used_gpu_hours)}</text></g>')
    if not rows:
        body.append(f'<text class="empty" x="{w / 2:g}" y="{top + row_h / 2 + 4:g}" '
                    'text-anchor="middle">no usage recorded in this period</text>')
    return _svg(w, h, body, "GPU-hours allocated and used", "chart ubars")
