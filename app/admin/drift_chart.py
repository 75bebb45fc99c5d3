"""Drift per category across the last runs, as numbers for an SVG the template draws (no
script): one stacked bar per run, a y-axis with ticks, run ids along the x-axis, and the same
figures as a table for a screen reader or a reader without colour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.store.reconciliation import RunRecord

WIDTH = 720
HEIGHT = 220
LEFT = 44  # room for the y-axis labels
TOP = 10
BOTTOM = 28  # room for the run ids
TICKS = 4


@dataclass(frozen=True)
class Segment:
    category: str
    y: float
    height: float
    count: int


@dataclass(frozen=True)
class RunBar:
    run_id: int
    x: float
    width: float
    segments: list[Segment]
    total: int
    title: str


@dataclass(frozen=True)
class DriftChart:
    width: int
    height: int
    left: int
    baseline: float
    categories: list[str]
    bars: list[RunBar]
    ticks: list[tuple[float, int]]
    peak: int


def _nice_top(peak: int) -> int:
    """The axis' top: the peak rounded up so the ticks are whole numbers."""
    if peak <= TICKS:
        return max(peak, 1)
    step = -(-peak // TICKS)
    magnitude = int("1" + "0" * (len(str(step)) - 1))  # 10 ** digits, typed as int
    step = -(-step // magnitude) * magnitude
    return step * TICKS


def build_drift_chart(runs: Sequence[RunRecord], categories: Sequence[str]) -> DriftChart:
    """`runs` newest first (as listed); drawn oldest on the left. Only finished runs."""
    finished = [run for run in reversed(runs) if run.status == "done"]
    shown = [c for c in categories if any(run.counts.get(c) for run in finished)]
    peak = max((sum(run.counts.get(c, 0) for c in shown) for run in finished), default=0)
    top = _nice_top(peak)
    baseline = float(HEIGHT - BOTTOM)
    scale = (baseline - TOP) / top
    step = (WIDTH - LEFT) / max(len(finished), 1)
    bars = []
    for index, run in enumerate(finished):
        y = baseline
        segments = []
        for category in shown:
            count = run.counts.get(category, 0)
            height = count * scale
            y -= height
            segments.append(Segment(category, round(y, 2), round(height, 2), count))
        total = sum(s.count for s in segments)
        parts = ", ".join(f"{s.count} {s.category.replace('_', ' ')}" for s in segments)
        bars.append(
            RunBar(
                run.id,
                round(LEFT + index * step + step * 0.15, 2),
                round(max(step * 0.7, 1.0), 2),
                segments,
                total,
                f"run {run.id} ({run.mode}): {parts or 'no drift'}",
            )
        )
    steps = min(TICKS, top)  # whole numbers only: a small top gets a tick per unit
    ticks = [
        (round(baseline - top * i / steps * scale, 2), top * i // steps) for i in range(steps + 1)
    ]
    return DriftChart(WIDTH, HEIGHT, LEFT, baseline, shown, bars, ticks, peak)
