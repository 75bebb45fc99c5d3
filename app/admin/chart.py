"""The dashboard's chart of jobs done and failed per minute, as plain numbers for an SVG
drawn by the template (no script, no library): one pair of stacked bars per minute."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.store.dashboard import MinuteCount

WIDTH = 720
HEIGHT = 160
TOP = 10
BOTTOM = 20  # room for the time labels
LABEL_EVERY = 30  # minutes


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    done_y: float
    done_height: float
    failed_y: float
    failed_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[tuple[float, str]]
    peak: int
    done_total: int
    failed_total: int
    baseline: float


def build_chart(series: Sequence[MinuteCount]) -> Chart:
    peak = max((m.done + m.failed for m in series), default=0)
    scale = (HEIGHT - TOP - BOTTOM) / peak if peak else 0.0
    step = WIDTH / max(len(series), 1)
    baseline = float(HEIGHT - BOTTOM)
    bars, labels = [], []
    for index, minute in enumerate(series):
        x = index * step
        done_height = minute.done * scale
        failed_height = minute.failed * scale
        bars.append(
            Bar(
                x=round(x, 2),
                width=round(max(step - 0.5, 0.5), 2),
                done_y=round(baseline - done_height, 2),
                done_height=round(done_height, 2),
                failed_y=round(baseline - done_height - failed_height, 2),
                failed_height=round(failed_height, 2),
                title=f"{minute.minute:%H:%M} UTC: {minute.done} done, {minute.failed} failed",
            )
        )
        if minute.minute.minute % LABEL_EVERY == 0:
            labels.append((round(x, 2), f"{minute.minute:%H:%M}"))
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        labels,
        peak,
        sum(m.done for m in series),
        sum(m.failed for m in series),
        baseline,
    )
