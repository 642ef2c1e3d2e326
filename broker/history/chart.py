"""A price chart drawn with plain characters, for ``broker history --chart`` (no plotting dependency)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

MARKS = "*o+x#%@&"


def _label(v: float) -> str:
    return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.2f}"


def draw(
    series: Sequence[tuple[str, Sequence[tuple[datetime, float]]]],
    *,
    width: int = 72,
    height: int = 16,
    unit: str = "",
    step: timedelta | None = None,
) -> str:
    """A price holds (marks run on) until the series' next point when that point is the next bucket (``step``;
    None: raw changes, always held); after a missing bucket the columns stay empty, so gaps show as gaps.
    Where series overlap, the later one in the legend wins."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return "(no prices in this range)"
    t0, t1 = min(t for t, _ in points), max(t for t, _ in points)
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    if hi == lo:
        lo, hi = lo * 0.95, hi * 1.05 if hi else 1.0
    span_t = max((t1 - t0).total_seconds(), 1.0)
    grid = [[" "] * width for _ in range(height)]

    def col(t: datetime) -> int:
        return min(width - 1, int((t - t0).total_seconds() / span_t * (width - 1) + 0.5))

    for i, (_, pts) in enumerate(series):
        mark = MARKS[i % len(MARKS)]
        for j, (t, v) in enumerate(pts):
            y = min(height - 1, int((v - lo) / (hi - lo) * (height - 1) + 0.5))
            x = col(t)
            held = j + 1 < len(pts) and (step is None or pts[j + 1][0] - t == step)
            for xx in range(x, max(x + 1, col(pts[j + 1][0])) if held else x + 1):
                grid[height - 1 - y][xx] = mark
    labels = [_label(hi - (hi - lo) * r / (height - 1)) for r in range(height)]
    pad = max(len(s) for s in labels)
    lines = [f"{labels[r]:>{pad}} |{''.join(row)}" for r, row in enumerate(grid)]
    lines.append(" " * pad + " +" + "-" * width)
    left, right = t0.strftime("%Y-%m-%d %H:%M"), t1.strftime("%Y-%m-%d %H:%M")
    lines.append(" " * (pad + 2) + left + right.rjust(width - len(left)))
    legend = "   ".join(f"{MARKS[i % len(MARKS)]} {name}" for i, (name, _) in enumerate(series))
    lines.append(" " * (pad + 2) + legend + (f"   ({unit}, UTC)" if unit else ""))
    return "\n".join(lines)
