"""The dashboard's charts over 1 h, 24 h and 7 d, from the minute samples
(app/store/timeseries.py), as shapes for an SVG the template draws: no script, no library,
nothing the Content-Security-Policy refuses.

Each chart has a y-axis with ticks and values, time labels on the x-axis, and a text twin
(the SVG's <title>/<desc>, and a table of every bucket). Series differ by more than colour:
failed jobs and 429s are hatched, a second line is dashed, the limit is a dotted rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

from app.store.timeseries import Sample

WIDTH = 720
HEIGHT = 190
LEFT = 56  # room for the y-axis values
RIGHT = 8
TOP = 10
BOTTOM = 24  # room for the time labels
X_LABELS = 6


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    minutes: int
    bucket_minutes: int
    time_format: str

    @property
    def refresh_seconds(self) -> int:
        """How often the page fetches the charts again: every 5 s for the hour; once a
        minute for longer ranges, whose buckets (15 and 60 minutes) take in a new sample
        once a minute and cost more to draw."""
        return 5 if self.bucket_minutes == 1 else 60

    @property
    def buckets(self) -> int:
        return self.minutes // self.bucket_minutes


RANGES = {
    r.key: r
    for r in (
        Range("1h", "1 hour", 60, 1, "%H:%M"),
        Range("24h", "24 hours", 24 * 60, 15, "%H:%M"),
        Range("7d", "7 days", 7 * 24 * 60, 60, "%a %H:%M"),
    )
}
DEFAULT_RANGE = "1h"


@dataclass(frozen=True)
class SeriesSpec:
    name: str
    style: str  # css class: done, failed, line, line2, limit, warn
    kind: str  # bar | line
    pick: Callable[[Sequence[Sample]], float | None]


@dataclass
class Shape:
    cls: str
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0
    points: str = ""
    title: str = ""


@dataclass
class Chart:
    key: str
    title: str
    unit: str
    description: str
    series_names: list[tuple[str, str]]  # (name, css class) for the legend and the table
    rows: list[tuple[str, list[str]]]  # the table: time, one value per series
    bars: list[Shape] = field(default_factory=list)
    lines: list[Shape] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: float = WIDTH - RIGHT
    baseline: float = HEIGHT - BOTTOM
    top: int = TOP


def _total(name: str) -> Callable[[Sequence[Sample]], float | None]:
    def pick(samples: Sequence[Sample]) -> float | None:
        values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
        return float(sum(values)) if values else None

    return pick


def _highest(name: str) -> Callable[[Sequence[Sample]], float | None]:
    def pick(samples: Sequence[Sample]) -> float | None:
        values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
        return float(max(values)) if values else None

    return pick


def _median(name: str) -> Callable[[Sequence[Sample]], float | None]:
    def pick(samples: Sequence[Sample]) -> float | None:
        values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
        return float(median(values)) if values else None

    return pick


def _limit(samples: Sequence[Sample]) -> float | None:
    # The limit over a bucket is the per-minute limit times its minutes (those sampled).
    return float(sum(s.hubspot_limit for s in samples)) if samples else None


CHARTS: list[tuple[str, str, str, list[SeriesSpec]]] = [
    (
        "jobs",
        "Jobs finished",
        "jobs",
        [
            SeriesSpec("done", "done", "bar", _total("jobs_done")),
            SeriesSpec("failed", "failed", "bar", _total("jobs_failed")),
        ],
    ),
    (
        "queue",
        "Queue depth (pending jobs, highest)",
        "jobs",
        [SeriesSpec("pending", "line", "line", _highest("queue_depth"))],
    ),
    (
        "wait",
        "Oldest wait in the queue (highest)",
        "s",
        [SeriesSpec("oldest wait", "line", "line", _highest("oldest_wait_seconds"))],
    ),
    (
        "webhooks",
        "Webhook events received",
        "events",
        [SeriesSpec("events", "done", "bar", _total("webhook_events"))],
    ),
    (
        "hubspot",
        "HubSpot requests against the limit",
        "requests",
        [
            SeriesSpec("requests", "done", "bar", _total("hubspot_requests")),
            SeriesSpec("limit", "limit", "line", _limit),
        ],
    ),
    (
        "rate-limited",
        "HubSpot 429 answers",
        "429s",
        [SeriesSpec("429s", "failed", "bar", _total("hubspot_429"))],
    ),
    (
        "latency",
        "Queue → HubSpot latency",
        "ms",
        [
            SeriesSpec("p50 (median minute)", "line", "line", _median("latency_p50_ms")),
            SeriesSpec("p99 (worst minute)", "line2", "line", _highest("latency_p99_ms")),
        ],
    ),
]


def bucket_starts(end: datetime, span: Range) -> list[datetime]:
    """The buckets' start times, oldest first, the last one holding `end`'s minute."""
    step = span.bucket_minutes * 60
    epoch = int(end.timestamp())
    last = datetime.fromtimestamp(epoch - epoch % step, tz=end.tzinfo)
    return [last - timedelta(seconds=step * i) for i in range(span.buckets - 1, -1, -1)]


def group(samples: Sequence[Sample], starts: list[datetime], span: Range) -> list[list[Sample]]:
    groups: list[list[Sample]] = [[] for _ in starts]
    if not starts:
        return groups
    first, step = starts[0], span.bucket_minutes * 60
    for sample in samples:
        index = int((sample.minute - first).total_seconds() // step)
        if 0 <= index < len(groups):
            groups[index].append(sample)
    return groups


def nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for factor in (1, 2, 5, 10):
        if factor * power >= value:
            return factor * power
    return 10 * power  # pragma: no cover -- the loop above always returns


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "ms" and value >= 1000:
        return f"{value / 1000:.3g} s"
    if unit == "s" and value >= 120:
        return f"{value / 60:.3g} min"
    text = f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"
    return f"{text} {unit}" if unit in {"ms", "s"} else text


def build_charts(samples: Sequence[Sample], end: datetime, span: Range) -> list[Chart]:
    starts = bucket_starts(end, span)
    groups = group(samples, starts, span)
    return [_chart(spec, starts, groups, span) for spec in CHARTS]


def _chart(
    chart_spec: tuple[str, str, str, list[SeriesSpec]],
    starts: list[datetime],
    groups: list[list[Sample]],
    span: Range,
) -> Chart:
    key, title, unit, specs = chart_spec
    values = [[spec.pick(g) for g in groups] for spec in specs]
    bar_tops = [
        sum(v[i] or 0.0 for spec, v in zip(specs, values, strict=True) if spec.kind == "bar")
        for i in range(len(starts))
    ]
    line_tops = [
        x for spec, v in zip(specs, values, strict=True) if spec.kind == "line" for x in v if x
    ]
    peak = nice_ceiling(max([*bar_tops, *line_tops, 0.0]))
    chart = Chart(
        key=key,
        title=title,
        unit=unit,
        description="",
        series_names=[(spec.name, spec.style) for spec in specs],
        rows=[
            (
                f"{start:%Y-%m-%d %H:%M}",
                [number(v[i], unit) for v in values],
            )
            for i, start in enumerate(starts)
        ],
    )
    plot_height = chart.baseline - TOP
    step = (chart.right - LEFT) / max(len(starts), 1)

    def y_of(value: float) -> float:
        return round(chart.baseline - value / peak * plot_height, 2)

    chart.y_ticks = [(y_of(peak * f), number(peak * f, unit)) for f in (0.0, 0.5, 1.0)]
    every = max(1, len(starts) // X_LABELS)
    chart.x_labels = [
        (round(LEFT + i * step, 2), f"{start:{span.time_format}}")
        for i, start in enumerate(starts)
        if i % every == 0
    ]
    for i, start in enumerate(starts):
        below = 0.0
        for spec, v in zip(specs, values, strict=True):
            if spec.kind != "bar" or not v[i]:
                continue
            value = v[i] or 0.0
            top = y_of(below + value)
            chart.bars.append(
                Shape(
                    cls=spec.style,
                    x=round(LEFT + i * step + 0.25, 2),
                    y=top,
                    width=round(max(step - 0.5, 0.5), 2),
                    height=round(y_of(below) - top, 2),
                    title=f"{start:%Y-%m-%d %H:%M} UTC: {number(value, unit)} {spec.name}",
                )
            )
            below += value
    for spec, v in zip(specs, values, strict=True):
        if spec.kind != "line":
            continue
        run: list[str] = []
        for i, point in enumerate([*v, None]):
            if point is not None:
                run.append(f"{round(LEFT + (i + 0.5) * step, 2)},{y_of(point)}")
                continue
            if run:
                if len(run) == 1:  # one point: a short flat stroke so it shows
                    x, y = run[0].split(",")
                    run = [f"{float(x) - step / 2},{y}", f"{float(x) + step / 2},{y}"]
                chart.lines.append(Shape(cls=spec.style, points=" ".join(run), title=spec.name))
                run = []
    totals = [
        f"{spec.name}: {_summary(spec, v, unit)}" for spec, v in zip(specs, values, strict=True)
    ]
    chart.description = f"{title} over the last {span.label}, per " + (
        f"{span.bucket_minutes} minutes" if span.bucket_minutes > 1 else "minute"
    )
    chart.description += f" (UTC). {'; '.join(totals)}."
    return chart


def _summary(spec: SeriesSpec, values: list[float | None], unit: str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "no data"
    if spec.kind == "bar":
        return f"{number(sum(known), unit)} in all, at most {number(max(known), unit)}"
    return f"highest {number(max(known), unit)}, latest {number(known[-1], unit)}"
